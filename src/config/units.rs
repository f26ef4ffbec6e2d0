//! Units of the command line and of reports: durations as options take them (`30`, `30s`,
//! `1m30s`, `500ms`), checked against one bound, and microseconds and bytes as reports print them.
//! Text enters through the `parse_*` functions; numbers leave through the `format_*` ones.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

use super::ValueError;

/// The longest duration accepted anywhere (a run step, a timeout): 366 days.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

pub(crate) const DURATION_FORMS: &str = "expected e.g. 30, 30s, 1m30s or 500ms";

/// Checks a duration given in seconds: positive, finite, at most [`MAX_DURATION`].
pub fn duration_from_secs(secs: f64) -> Result<Duration, ValueError> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{secs} is not a valid duration; {DURATION_FORMS}").into());
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{secs} s is too long: at most {}",
            humantime::format_duration(MAX_DURATION)
        )
        .into());
    }
    let d = Duration::from_secs_f64(secs);
    if d.is_zero() {
        return Err("a duration must be longer than zero, e.g. 30s".into());
    }
    Ok(d)
}

/// Parses a duration: `30` (seconds), `30s`, `1m30s`, `500ms`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
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

/// A duration option's value in seconds, as it travels in a job (a number). It parses from the
/// command line as `parse_duration` does (`30`, `30s`, `1m30s`), and from a config file as a
/// number of seconds or such a string; it is checked when parsed or decoded
/// (`duration_from_secs`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Secs(pub f64);

impl std::str::FromStr for Secs {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse_duration(s).map(|d| Secs(d.as_secs_f64()))
    }
}

impl Serialize for Secs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "a duration: a number of seconds or a string such as \"30s\" or \"1m30s\""
        )]
        enum Repr {
            Seconds(f64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Seconds(s) => duration_from_secs(s)
                .map(|_| Secs(s))
                .map_err(serde::de::Error::custom),
            Repr::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Secs {
    /// As a duration (zero for a value that is not one; values that come through parsing or
    /// decoding are checked).
    pub fn duration(self) -> Duration {
        duration_from_secs(self.0).unwrap_or_default()
    }
}
