//! Reading event facts (id, type, time) out of a body that has already been verified.
//! Everything here is best effort and answers `None` rather than failing: a provider that
//! changes its payload must not turn verified requests into rejected ones.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The body as JSON, when it is JSON.
pub(crate) fn json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// The body as `application/x-www-form-urlencoded` pairs, in their order.
pub(crate) fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(crate) fn form_value(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

/// A string (or number, written out) at a JSON pointer such as `/event/type`.
pub(crate) fn text(doc: &Value, pointer: &str) -> Option<String> {
    match doc.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A time given as UNIX seconds (a number or a numeric string).
pub(crate) fn unix_seconds(doc: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    let seconds = integer(doc.pointer(pointer)?)?;
    DateTime::from_timestamp(seconds, 0)
}

/// A time given as UNIX milliseconds.
pub(crate) fn unix_millis(doc: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(integer(doc.pointer(pointer)?)?)
}

/// A time given as an RFC 3339 string.
pub(crate) fn rfc3339(doc: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    parse_rfc3339(doc.pointer(pointer)?.as_str()?)
}

pub(crate) fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `"{kind}.{action}"` when both are known, else whichever is.
pub(crate) fn dotted(kind: Option<String>, action: Option<String>) -> Option<String> {
    match (kind, action) {
        (Some(kind), Some(action)) => Some(format!("{kind}.{action}")),
        (kind, None) => kind,
        (None, action) => action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_come_in_three_shapes() {
        let doc = json!({"s": 1557933657, "ss": "1557933657", "ms": 1654503849680_i64,
                         "t": "2023-03-29T18:00:27.877041743Z", "bad": "yesterday"});
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        assert_eq!(unix_seconds(&doc, "/s"), at("2019-05-15T15:20:57Z"));
        assert_eq!(unix_seconds(&doc, "/ss"), at("2019-05-15T15:20:57Z"));
        assert_eq!(unix_millis(&doc, "/ms"), at("2022-06-06T08:24:09.680Z"));
        assert_eq!(rfc3339(&doc, "/t"), at("2023-03-29T18:00:27.877041743Z"));
        assert_eq!(rfc3339(&doc, "/bad"), None);
        assert_eq!(unix_seconds(&doc, "/missing"), None);
    }

    #[test]
    fn dotted_joins_what_is_known() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(dotted(s("Comment"), s("create")), s("Comment.create"));
        assert_eq!(dotted(s("push"), None), s("push"));
        assert_eq!(dotted(None, None), None);
    }
}
