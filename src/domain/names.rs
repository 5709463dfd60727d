//! Names users choose: tenant uids and event type names.

use super::Invalid;

/// `contact.created`, `invoice.paid_v2`: letters, digits, `_`, `-` and `.`, not starting or
/// ending with a dot, at most 128 characters. `*` is reserved for filters.
pub fn parse_event_type_name(s: &str) -> Result<String, Invalid> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Invalid::new(
            "invalid_event_type_name",
            format!(
                "event type name `{}` is invalid: use 1-128 letters, digits, `_`, `-` and `.` (e.g. `contact.created`)",
                truncate(s, 64)
            ),
        ))
    }
}

/// A tenant's user-chosen unique id: 1-64 letters, digits, `_` or `-`. It must not look like a
/// generated tenant id (`tn_...`), since `{tenant}` in a path accepts either.
pub fn parse_tenant_uid(s: &str) -> Result<String, Invalid> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with("tn_")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Invalid::new(
            "invalid_uid",
            "uid must be 1-64 letters, digits, `_` or `-`, and must not start with `tn_`",
        ))
    }
}

pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names() {
        assert!(parse_event_type_name("contact.created").is_ok());
        assert!(parse_event_type_name("a-b_c.d2").is_ok());
        for bad in ["", ".a", "a.", "a..b", "a b", "a.*", &"x".repeat(129)] {
            assert!(parse_event_type_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_uids() {
        assert!(parse_tenant_uid("acme-1").is_ok());
        assert!(parse_tenant_uid("tn_abc").is_err());
        assert!(parse_tenant_uid("a/b").is_err());
    }
}
