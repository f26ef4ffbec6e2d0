//! The load plan: cycles of users and hits, or a duration (DESIGN.md, "Load plan").
//!
//! For each users value, in order, that many virtual users start together; each runs, for each
//! hits value in order, the test that many times — or loops until the duration is over. The
//! total number of hits is the sum over users values and hits values of users × hits.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A list of positive whole numbers written `10:20:30`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CyclesRepr", into = "String")]
pub struct Cycles(Vec<u64>);

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a whole number of at least 1, cycles such as \"10:20:30\", or a list such as [10, 20, 30]"
)]
enum CyclesRepr {
    Number(u64),
    Text(String),
    List(Vec<u64>),
}

impl TryFrom<CyclesRepr> for Cycles {
    type Error = String;
    fn try_from(r: CyclesRepr) -> Result<Self, String> {
        match r {
            CyclesRepr::Number(n) => Cycles::new(vec![n]),
            CyclesRepr::Text(t) => t.parse(),
            CyclesRepr::List(v) => Cycles::new(v),
        }
    }
}

impl From<Cycles> for String {
    fn from(c: Cycles) -> String {
        c.to_string()
    }
}

impl Cycles {
    /// Cycles from values, each at least 1.
    pub fn new(values: Vec<u64>) -> Result<Self, String> {
        if values.is_empty() {
            return Err("expected at least one value, e.g. 10 or 10:20:30".into());
        }
        if values.contains(&0) {
            return Err(
                "each value must be a whole number of at least 1, e.g. 10 or 10:20:30".into(),
            );
        }
        Ok(Cycles(values))
    }

    /// A single value.
    pub fn one(n: u64) -> Self {
        Cycles(vec![n.max(1)])
    }

    /// The values, in order.
    pub fn values(&self) -> &[u64] {
        &self.0
    }
}

impl Default for Cycles {
    fn default() -> Self {
        Cycles(vec![1])
    }
}

impl FromStr for Cycles {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let values = s
            .split(':')
            .map(|p| {
                p.trim().parse::<u64>().map_err(|e| match e.kind() {
                    std::num::IntErrorKind::PosOverflow => format!("{p} is too large"),
                    _ => {
                        format!("{p:?} is not a whole number; expected values like 10 or 10:20:30")
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Cycles::new(values)
    }
}

impl fmt::Display for Cycles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join(":"))
    }
}

/// The longest duration accepted anywhere (a run step, a timeout): 366 days.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

const DURATION_FORMS: &str = "expected e.g. 30, 30s, 1m30s or 500ms";

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

/// Most virtual users in one cycle step of one process.
pub const MAX_USERS: u64 = 1_000_000;

/// When the virtual users of a cycle step stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// After these hits, in order.
    Hits(Cycles),
    /// After this long.
    Duration(Duration),
}

/// A validated load plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Virtual users of each cycle step.
    pub users: Cycles,
    /// When each step's users stop.
    pub stop: Stop,
}

impl Plan {
    /// Total hits of the plan (on one agent), when it is made of hits; `None` for a duration
    /// plan or when the total does not fit in 64 bits (see [`Plan::check`]).
    pub fn total_hits(&self) -> Option<u64> {
        match &self.stop {
            Stop::Hits(h) => {
                let per_user = h.values().iter().try_fold(0u64, |a, b| a.checked_add(*b))?;
                self.users
                    .values()
                    .iter()
                    .try_fold(0u64, |a, u| a.checked_add(u.checked_mul(per_user)?))
            }
            Stop::Duration(_) => None,
        }
    }

    /// Total duration of the plan (every cycle step runs for the duration).
    pub fn total_duration(&self) -> Option<Duration> {
        match &self.stop {
            Stop::Duration(d) => d.checked_mul(self.users.values().len() as u32),
            Stop::Hits(_) => None,
        }
    }

    /// Checks the plan's size: at most [`MAX_USERS`] users per step and totals that fit.
    pub fn check(&self) -> Result<(), String> {
        if let Some(u) = self.users.values().iter().find(|u| **u > MAX_USERS) {
            return Err(format!(
                "--users {u} is too many: at most {MAX_USERS} virtual users per cycle step (spread a larger load over agents)"
            ));
        }
        match &self.stop {
            Stop::Hits(_) if self.total_hits().is_none() => {
                Err("the plan is too large: users × hits does not fit in 64 bits".into())
            }
            Stop::Duration(_) if self.total_duration().is_none_or(|d| d > MAX_DURATION * 10) => {
                Err("the plan is too long: the cycle steps add up to more than ten years".into())
            }
            _ => Ok(()),
        }
    }

    /// A human description: `5 users × 4 hits = 20 hits`, `users 1:2 × hits 1:2 = 9 hits`,
    /// `10 users for 30s`.
    pub fn describe(&self) -> String {
        let users = match self.users.values() {
            [1] => "1 user".to_owned(),
            [n] => format!("{n} users"),
            _ => format!("users {}", self.users),
        };
        match &self.stop {
            Stop::Hits(h) => {
                let hits = match h.values() {
                    [1] => "1 hit".to_owned(),
                    [n] => format!("{n} hits"),
                    _ => format!("hits {h}"),
                };
                let total = self.total_hits().unwrap_or(0);
                format!(
                    "{users} × {hits} = {total} hit{}",
                    if total == 1 { "" } else { "s" }
                )
            }
            Stop::Duration(d) => {
                let each = if self.users.values().len() > 1 {
                    " each"
                } else {
                    ""
                };
                format!("{users} for {}{each}", humantime::format_duration(*d))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(users: &str, hits: &str) -> Plan {
        Plan {
            users: users.parse().expect("users"),
            stop: Stop::Hits(hits.parse().expect("hits")),
        }
    }

    #[test]
    fn totals_are_sums_of_users_times_hits() {
        assert_eq!(plan("5", "4").total_hits(), Some(20));
        assert_eq!(plan("1:2", "1:2").total_hits(), Some(9));
        assert_eq!(plan("10:20:30", "1").total_hits(), Some(60));
        assert_eq!(plan("3", "2:5").total_hits(), Some(21));
        assert_eq!(plan("1", "1").describe(), "1 user × 1 hit = 1 hit");
        assert_eq!(
            plan("1:2", "1:2").describe(),
            "users 1:2 × hits 1:2 = 9 hits"
        );
        let d = Plan {
            users: "2:4".parse().expect("users"),
            stop: Stop::Duration(Duration::from_secs(3)),
        };
        assert_eq!(d.total_hits(), None);
        assert_eq!(d.total_duration(), Some(Duration::from_secs(6)));
        assert_eq!(d.describe(), "users 2:4 for 3s each");
    }

    #[test]
    fn oversized_plans_are_refused() {
        assert!(
            "99999999999999999999"
                .parse::<Cycles>()
                .expect_err("big")
                .contains("too large")
        );
        let p = plan("18446744073709551615", "2");
        assert_eq!(p.total_hits(), None);
        assert!(p.check().expect_err("too many").contains("--users"));
        let p = plan("1000", "18446744073709551615");
        assert!(p.check().expect_err("overflow").contains("too large"));
        assert!(plan("10:20", "5").check().is_ok());
    }

    #[test]
    fn bad_cycles_are_explained() {
        assert!(
            "0".parse::<Cycles>()
                .expect_err("zero")
                .contains("at least 1")
        );
        assert!(
            "10:x"
                .parse::<Cycles>()
                .expect_err("x")
                .contains("\"x\" is not a whole number")
        );
        assert!("".parse::<Cycles>().is_err());
        assert_eq!(
            "10:20:30".parse::<Cycles>().expect("ok").values(),
            &[10, 20, 30]
        );
    }

    #[test]
    fn cycles_deserialise_from_numbers_text_and_lists() {
        #[derive(Deserialize)]
        struct C {
            a: Cycles,
            b: Cycles,
            c: Cycles,
        }
        let c: C = toml::from_str("a = 5\nb = \"1:2\"\nc = [3, 4]").expect("toml");
        assert_eq!(c.a.values(), &[5]);
        assert_eq!(c.b.values(), &[1, 2]);
        assert_eq!(c.c.values(), &[3, 4]);
        assert!(toml::from_str::<C>("a = 0\nb = 1\nc = 1").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2").expect("2"), Duration::from_secs(2));
        assert_eq!(
            parse_duration("1.5").expect("1.5"),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration("1m30s").expect("1m30s"),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration("500ms").expect("ms"),
            Duration::from_millis(500)
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(
            parse_duration("1e30")
                .expect_err("huge")
                .contains("too long")
        );
        assert!(
            parse_duration("1000y")
                .expect_err("huge")
                .contains("too long")
        );
        assert!(duration_from_secs(f64::NAN).is_err());
    }
}
