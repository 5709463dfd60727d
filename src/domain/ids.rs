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

/// The smallest id of kind `prefix` that can be made at or after `at`: every id made before
/// `at` sorts below it. Retention deletes by id range, on the primary key.
pub fn first_id_at(prefix: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let ms = at.timestamp_millis().max(0) as u64;
    format!("{prefix}_{}", ulid::Ulid::from_parts(ms, 0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_before_a_time_sort_below_its_first_id() {
        let before = new_id(EVENT);
        std::thread::sleep(std::time::Duration::from_millis(3));
        let cut = first_id_at(EVENT, chrono::Utc::now());
        std::thread::sleep(std::time::Duration::from_millis(3));
        let after = new_id(EVENT);
        assert!(before < cut, "{before} < {cut}");
        assert!(cut < after, "{cut} < {after}");
    }
}
