//! Units of the command line and of reports: durations as options take them (`30`, `30s`,
//! `1m30s`, `500ms`), checked against one bound, and microseconds and bytes as reports print them.
//! Text enters through the `parse_*` functions; numbers leave through the `format_*` ones.

use std::time::Duration;

/// The longest duration accepted anywhere (a run step, a timeout): 366 days.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

pub(crate) const DURATION_FORMS: &str = "expected e.g. 30, 30s, 1m30s or 500ms";

/// Checks a duration given in seconds: positive, finite, at most [`MAX_DURATION`].
pub fn duration_from_secs(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{secs} is not a valid duration; {DURATION_FORMS}"));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{secs} s is too long: at most {}",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    let d = Duration::from_secs_f64(secs);
    if d.is_zero() {
        return Err("a duration must be longer than zero, e.g. 30s".into());
    }
    Ok(d)
}

/// Parses a duration: `30` (seconds), `30s`, `1m30s`, `500ms`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return duration_from_secs(secs);
    }
    let d = humantime::parse_duration(s).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => format!("{s:?} is too long"),
        _ => format!("{s:?} is not a valid duration; {DURATION_FORMS}"),
    })?;
    duration_from_secs(d.as_secs_f64())
}

/// A latency in microseconds, human-readable: `850 µs`, `1.23 ms`, `2.50 s`.
pub fn format_micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// A byte count, human-readable: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
