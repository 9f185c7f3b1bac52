//! GitLab's human durations (`timeout: 1h 30m`, `3 hours`, `90 minutes`, `3600`).

use std::time::Duration;

/// Parse a duration the way GitLab's `timeout` accepts it. A bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: f64 = 0.0;
    let mut rest = text;
    let mut parts = 0;
    while !rest.is_empty() {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        if let Some(after_and) = rest.strip_prefix("and ") {
            rest = after_and;
            continue;
        }
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("`{text}` is not a duration like `1h 30m`"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("`{}` is not a number", &rest[..num_len]))?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit.to_ascii_lowercase().as_str() {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "wk" | "wks" | "week" | "weeks" => 7.0 * 86400.0,
            other => return Err(format!("`{other}` is not a unit of time (use s, m, h, d)")),
        };
        total += number * seconds;
        parts += 1;
    }
    if parts == 0 {
        return Err(format!("`{text}` is not a duration like `1h 30m`"));
    }
    // A long enough number overflows Duration (or f64 itself): an error, not a panic.
    Duration::try_from_secs_f64(total).map_err(|_| format!("`{text}` is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_forms() {
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("3 hours").unwrap(), Duration::from_secs(10800));
        assert_eq!(parse("90 minutes").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse("1 hour and 5 minutes").unwrap(),
            Duration::from_secs(3900)
        );
        assert_eq!(parse("1.5m").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(parse("").is_err());
        assert!(parse("soon").is_err());
        assert!(parse("5 parsecs").is_err());
    }

    // Found by fuzzing pipeline::load: this used to panic in Duration::from_secs_f64.
    #[test]
    fn rejects_durations_too_long_to_hold() {
        let huge = format!("{}m", "4".repeat(90));
        assert!(parse(&huge).is_err_and(|e| e.contains("too long")));
        let overflow_f64 = format!("{}s 1m", "9".repeat(400));
        assert!(parse(&overflow_f64).is_err());
    }
}
