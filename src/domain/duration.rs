//! Human durations such as `500ms`, `5s`, `5m`, `2h`, `5d` in configuration and the API.

use std::time::Duration;

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` needs a unit: ms, s, m, h or d"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 500ms, 5s, 5m, 2h or 1d"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(format!("`{s}` has an unknown unit: use ms, s, m, h or d")),
    }
    .ok_or_else(|| format!("`{s}` is too large"))?;
    Ok(Duration::from_millis(ms))
}

pub fn parse_duration_list(items: &[String]) -> Result<Vec<Duration>, String> {
    items.iter().map(|s| parse_duration(s)).collect()
}

/// The shortest exact spelling: 300000 ms → `5m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for s in ["500ms", "5s", "5m", "2h", "5d", "0ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
