//! Resource ids: a type prefix and a ULID (`ep_01J...`), so ids sort by creation time and a
//! reader can tell what an id names. Keyset pagination relies on that order.

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", next_ulid())
}

/// ULIDs made in this process increase strictly, even within one millisecond, so that the
/// id order is the creation order (request logs and health read "the most recent" by id).
fn next_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    // Overflow needs 2^80 ids in one millisecond; a fresh random id is then fine.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

pub const TENANT: &str = "tn";
pub const API_KEY: &str = "key";
pub const ENDPOINT: &str = "ep";
pub const EVENT: &str = "msg";
pub const DELIVERY: &str = "dlv";
pub const ATTEMPT: &str = "atm";
pub const OPERATIONAL_EVENT: &str = "op";
pub const SOURCE: &str = "src";
pub const INBOUND_REQUEST: &str = "req";
