//! Resource ids: a type prefix and a ULID (`ep_01J...`), so ids sort by creation time and a
//! reader can tell what an id names. Keyset pagination relies on that order.

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

pub const TENANT: &str = "tn";
pub const API_KEY: &str = "key";
pub const ENDPOINT: &str = "ep";
pub const EVENT: &str = "msg";
pub const DELIVERY: &str = "dlv";
pub const ATTEMPT: &str = "atm";
pub const OPERATIONAL_EVENT: &str = "op";
