//! Which events an endpoint wants: exact names (`invoice.paid`), prefix wildcards
//! (`contact.*` matches `contact.created` and `contact.note.added`) and `*` for all.

use super::Invalid;
use super::names::parse_event_type_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypePattern {
    All,
    Prefix(String),
    Exact(String),
}

impl EventTypePattern {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s == "*" {
            return Ok(Self::All);
        }
        if let Some(prefix) = s.strip_suffix(".*") {
            let prefix = parse_event_type_name(prefix).map_err(|_| bad_pattern(s))?;
            return Ok(Self::Prefix(prefix));
        }
        parse_event_type_name(s)
            .map(Self::Exact)
            .map_err(|_| bad_pattern(s))
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Exact(name) => name == event_type,
            Self::Prefix(prefix) => event_type
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }
}

fn bad_pattern(s: &str) -> Invalid {
    Invalid::new(
        "invalid_event_type_filter",
        format!(
            "`{}` is not an event type filter: use a name (`a.b`), a prefix wildcard (`a.*`) or `*`",
            super::names::truncate(s, 64)
        ),
    )
}

/// An endpoint's filter: the event matches when any pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeFilter(Vec<EventTypePattern>);

impl EventTypeFilter {
    pub fn parse(patterns: &[String]) -> Result<Self, Invalid> {
        if patterns.is_empty() {
            return Err(Invalid::new(
                "invalid_event_type_filter",
                "event_types must name at least one event type, wildcard or `*`",
            ));
        }
        if patterns.len() > 256 {
            return Err(Invalid::new(
                "invalid_event_type_filter",
                "event_types may hold at most 256 entries",
            ));
        }
        patterns
            .iter()
            .map(|p| EventTypePattern::parse(p))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn matches(&self, event_type: &str) -> bool {
        self.0.iter().any(|p| p.matches(event_type))
    }

    /// The exact names in the filter: each must be a registered event type.
    pub fn exact_names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            EventTypePattern::Exact(n) => Some(n.as_str()),
            _ => None,
        })
    }
}

/// Channels narrow delivery further: an endpoint with channels receives only events that
/// carry at least one of them; an endpoint without channels receives events regardless.
pub fn channels_match(endpoint_channels: &[String], event_channels: &[String]) -> bool {
    endpoint_channels.is_empty() || endpoint_channels.iter().any(|c| event_channels.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(p: &[&str]) -> EventTypeFilter {
        EventTypeFilter::parse(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn matches_exact_prefix_and_all() {
        let f = filter(&["invoice.paid", "contact.*"]);
        assert!(f.matches("invoice.paid"));
        assert!(!f.matches("invoice.paid.late"));
        assert!(f.matches("contact.created"));
        assert!(f.matches("contact.note.added"));
        assert!(!f.matches("contact"));
        assert!(!f.matches("contacts.created"));
        assert!(filter(&["*"]).matches("anything.at.all"));
    }

    #[test]
    fn rejects_malformed_patterns() {
        for bad in ["", "a*", "*.a", "a.*.b", "a..*", " "] {
            assert!(EventTypePattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(EventTypeFilter::parse(&[]).is_err());
    }

    #[test]
    fn channels_narrow_only_when_set() {
        assert!(channels_match(&[], &["eu".into()]));
        assert!(channels_match(&["eu".into()], &["eu".into(), "us".into()]));
        assert!(!channels_match(&["eu".into()], &[]));
    }
}
