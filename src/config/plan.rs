//! The load plan (README, "Load models"), in one of three [`Model`]s:
//!
//! - **cycles** (the seed system's): for each users value, in order, that many virtual users
//!   start (together, or spread over `--ramp-up`); each runs, for each hits value in order, the
//!   test that many times — or loops until the duration is over. The total number of hits is the
//!   sum over users values and hits values of users × hits.
//! - **stages** (`--stages 10:30s,50:1m,0:20s`, closed model): the number of virtual users moves
//!   linearly from 0 to each stage's count over the stage's duration.
//! - **rate** (`--rate 200/s`, `--rate-stages`, open model): hits start at a given arrival rate
//!   whatever the service's latency, served by a pool of at most `--max-users` virtual users.
//!
//! `--think-time` pauses a closed-model user between its hits.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::units::{MAX_DURATION, parse_duration};
use super::{UsageError, ValueError};
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
    type Error = ValueError;
    fn try_from(r: CyclesRepr) -> Result<Self, ValueError> {
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
    pub fn new(values: Vec<u64>) -> Result<Self, ValueError> {
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
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
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

/// Most virtual users in one cycle step of one process.
pub const MAX_USERS: u64 = 1_000_000;

/// The shape of the load.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Model {
    /// Users × hits cycles, or users for a duration (with `users` and `stop`).
    #[default]
    Cycles,
    /// Closed model: users move linearly from the previous count (0 at first) to each stage's
    /// count over its duration.
    Stages(Vec<(u64, Duration)>),
    /// Open model: hits start at a rate (per second) moving linearly from `start` through each
    /// stage's rate over its duration; at most `max_users` virtual users serve them.
    Rate {
        /// The rate at the start.
        start: f64,
        /// `(rate reached at the end, duration)` of each stage.
        stages: Vec<(f64, Duration)>,
        /// Most virtual users in the pool.
        max_users: u64,
        /// Phase of this process's arrivals, as a fraction of one arrival (agent i of n takes
        /// i/n), so that a cluster's agents start their hits in turn rather than together.
        offset: f64,
    },
}

/// Default `--max-users` of the open model.
pub const DEFAULT_MAX_USERS: u64 = 1000;
/// Highest arrival rate accepted, per second and process.
pub const MAX_RATE: f64 = 1_000_000.0;

/// Parses stages `USERS:DURATION,…` (`10:30s,50:1m,0:20s`).
pub fn parse_stages(s: &str) -> Result<Vec<(u64, Duration)>, ValueError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (u, d) = part.split_once(':').ok_or_else(|| {
            format!("stage {part:?} is not USERS:DURATION (e.g. --stages 10:30s,50:1m,0:20s)")
        })?;
        let users: u64 = u
            .trim()
            .parse()
            .map_err(|_| format!("stage {part:?}: {u:?} is not a number of users (e.g. 10:30s)"))?;
        if users > MAX_USERS {
            return Err(
                format!("stage {part:?}: at most {MAX_USERS} virtual users per process").into(),
            );
        }
        let d = parse_duration(d.trim()).map_err(|e| format!("stage {part:?}: {e}"))?;
        if d.is_zero() {
            return Err(format!("stage {part:?}: the duration must be more than 0").into());
        }
        out.push((users, d));
    }
    if out.is_empty() {
        return Err("no stage given: expected USERS:DURATION,… (e.g. 10:30s,50:1m,0:20s)".into());
    }
    Ok(out)
}

/// Parses an arrival rate: `200`, `200/s`, `600/m`, `36000/h`; returns hits per second.
pub fn parse_rate(s: &str) -> Result<f64, ValueError> {
    let s = s.trim();
    let (n, per) = match s.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                other => {
                    return Err(
                        format!("{s:?}: unknown rate unit {other:?}; use N/s, N/m or N/h").into(),
                    );
                }
            };
            (n, per)
        }
        None => (s, 1.0),
    };
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a rate such as 200/s"))?;
    let rate = n / per;
    if !rate.is_finite() || !(0.0..=MAX_RATE).contains(&rate) {
        return Err(format!("{s:?}: a rate is between 0 and {MAX_RATE}/s").into());
    }
    Ok(rate)
}

/// Parses rate stages `RATE:DURATION,…` (`50/s:30s,200:1m`).
pub fn parse_rate_stages(s: &str) -> Result<Vec<(f64, Duration)>, ValueError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (r, d) = part.rsplit_once(':').ok_or_else(|| {
            format!(
                "rate stage {part:?} is not RATE:DURATION (e.g. --rate-stages 50/s:30s,200/s:1m)"
            )
        })?;
        let rate = parse_rate(r).map_err(|e| format!("rate stage {part:?}: {e}"))?;
        let d = parse_duration(d.trim()).map_err(|e| format!("rate stage {part:?}: {e}"))?;
        if d.is_zero() {
            return Err(format!("rate stage {part:?}: the duration must be more than 0").into());
        }
        out.push((rate, d));
    }
    if out.is_empty() {
        return Err("no rate stage given: expected RATE:DURATION,… (e.g. 50/s:30s)".into());
    }
    Ok(out)
}

/// Parses a think time: `DURATION` or `MIN..MAX` (uniform).
pub fn parse_think_time(s: &str) -> Result<(Duration, Duration), ValueError> {
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (parse_duration(a.trim())?, parse_duration(b.trim())?),
        None => {
            let d = parse_duration(s.trim())?;
            (d, d)
        }
    };
    if b < a {
        return Err(format!("{s:?}: MIN..MAX with MIN above MAX").into());
    }
    Ok((a, b))
}

/// The time (seconds from the start) of arrival number `n` (1-based) for a rate moving
/// linearly from `start` through `stages`; `None` when the plan ends before it.
#[cfg(test)]
pub fn arrival_time(start: f64, stages: &[(f64, Duration)], n: u64) -> Option<f64> {
    arrival_at(start, stages, n as f64)
}

/// The time at which the hits of the plan reach `target` (which may be fractional).
pub fn arrival_at(start: f64, stages: &[(f64, Duration)], target: f64) -> Option<f64> {
    let (mut t0, mut count, mut r0) = (0.0, 0.0, start);
    for (r1, d) in stages {
        let len = d.as_secs_f64();
        let segment = (r0 + r1) / 2.0 * len;
        // Arrival n falls in this stage when the stage's hits reach it (a small tolerance
        // keeps an arrival due exactly at the stage's end).
        if count + segment + 1e-9 >= target {
            let need = target - count;
            let a = (r1 - r0) / (2.0 * len);
            let x = if a.abs() < 1e-12 {
                if r0 <= 0.0 {
                    return None;
                }
                need / r0
            } else {
                // a·x² + r0·x − need = 0, the root in [0, len].
                let disc = (r0 * r0 + 4.0 * a * need).max(0.0);
                (-r0 + disc.sqrt()) / (2.0 * a)
            };
            return Some(t0 + x.clamp(0.0, len));
        }
        count += segment;
        t0 += len;
        r0 = *r1;
    }
    None
}

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
    /// Virtual users of each cycle step (cycles model).
    pub users: Cycles,
    /// When each step's users stop (for stages and rate: the whole plan's duration).
    pub stop: Stop,
    /// The shape of the load.
    pub model: Model,
    /// Cycles model: the users of a step start evenly over this time instead of together.
    pub ramp_up: Option<Duration>,
    /// Closed models: a pause between a user's hits, uniform between the two bounds.
    pub think: Option<(Duration, Duration)>,
}

impl Plan {
    /// A cycles plan of `users` and `stop`, without ramp-up or think time.
    pub fn cycles(users: Cycles, stop: Stop) -> Plan {
        Plan {
            users,
            stop,
            model: Model::Cycles,
            ramp_up: None,
            think: None,
        }
    }

    /// Total hits of the plan (on one agent), when it is made of hits; `None` for a duration
    /// plan or when the total does not fit in 64 bits (see [`Plan::check`]).
    pub fn total_hits(&self) -> Option<u64> {
        if self.model != Model::Cycles {
            return None;
        }
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
        if self.model != Model::Cycles {
            let Stop::Duration(d) = self.stop else {
                return None;
            };
            return Some(d);
        }
        match &self.stop {
            Stop::Duration(d) => d.checked_mul(self.users.values().len() as u32),
            Stop::Hits(_) => None,
        }
    }

    /// Checks the plan's size: at most [`MAX_USERS`] users per step and totals that fit.
    pub fn check(&self) -> Result<(), UsageError> {
        if let Some(u) = self.users.values().iter().find(|u| **u > MAX_USERS) {
            return Err(UsageError::new(
                "--users",
                format!(
                    "--users {u} is too many: at most {MAX_USERS} virtual users per cycle step (spread a larger load over agents)"
                ),
            ));
        }
        match &self.stop {
            Stop::Hits(_) if self.total_hits().is_none() => Err(UsageError::new(
                "--hits",
                "the plan is too large: users × hits does not fit in 64 bits",
            )),
            Stop::Duration(_) if self.total_duration().is_none_or(|d| d > MAX_DURATION * 10) => {
                Err(UsageError::new(
                    "--duration",
                    "the plan is too long: the cycle steps add up to more than ten years",
                ))
            }
            _ => Ok(()),
        }
    }

    /// A human description: `5 users × 4 hits = 20 hits`, `users 1:2 × hits 1:2 = 9 hits`,
    /// `10 users for 30s`.
    pub fn describe(&self) -> String {
        let mut extra = String::new();
        if let Some(r) = self.ramp_up {
            extra.push_str(&format!(", ramp-up {}", humantime::format_duration(r)));
        }
        if let Some((a, b)) = self.think {
            if a == b {
                extra.push_str(&format!(", think {}", humantime::format_duration(a)));
            } else {
                extra.push_str(&format!(
                    ", think {}..{}",
                    humantime::format_duration(a),
                    humantime::format_duration(b)
                ));
            }
        }
        format!("{}{extra}", self.describe_load())
    }

    fn describe_load(&self) -> String {
        match &self.model {
            Model::Cycles => {}
            Model::Stages(stages) => {
                let list: Vec<String> = stages
                    .iter()
                    .map(|(u, d)| format!("{u}:{}", humantime::format_duration(*d)))
                    .collect();
                return format!("stages {}", list.join(","));
            }
            Model::Rate {
                start,
                stages,
                max_users,
                ..
            } => {
                let rates: Vec<String> = stages
                    .iter()
                    .map(|(r, d)| format!("{r}/s:{}", humantime::format_duration(*d)))
                    .collect();
                let pool = match max_users {
                    1 => "1 user".to_owned(),
                    n => format!("{n} users"),
                };
                return if stages.len() == 1 && (stages[0].0 - start).abs() < 1e-9 {
                    format!(
                        "{start}/s for {}, at most {pool}",
                        humantime::format_duration(stages[0].1)
                    )
                } else {
                    format!("rate from {start}/s: {}, at most {pool}", rates.join(","))
                };
            }
        }
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
    use crate::config::units::duration_from_secs;

    fn plan(users: &str, hits: &str) -> Plan {
        Plan::cycles(
            users.parse().expect("users"),
            Stop::Hits(hits.parse().expect("hits")),
        )
    }

    #[test]
    fn models_parse() {
        assert_eq!(
            parse_stages("10:30s, 50:1m,0:20s").expect("stages"),
            vec![
                (10, Duration::from_secs(30)),
                (50, Duration::from_secs(60)),
                (0, Duration::from_secs(20))
            ]
        );
        assert!(parse_stages("10").is_err());
        assert!(parse_stages("x:1s").is_err());
        assert!(parse_stages("1:0s").is_err());
        assert_eq!(parse_rate("200/s"), Ok(200.0));
        assert_eq!(parse_rate("600/m"), Ok(10.0));
        assert_eq!(parse_rate("5"), Ok(5.0));
        assert!(parse_rate("5/day").is_err());
        assert!(parse_rate("-1").is_err());
        assert_eq!(
            parse_rate_stages("50/s:30s,200:1m").expect("rate stages"),
            vec![
                (50.0, Duration::from_secs(30)),
                (200.0, Duration::from_secs(60))
            ]
        );
        assert_eq!(
            parse_think_time("100ms..300ms"),
            Ok((Duration::from_millis(100), Duration::from_millis(300)))
        );
        assert!(parse_think_time("3s..1s").is_err());
    }

    #[test]
    fn arrivals_follow_the_rate() {
        let constant = [(200.0, Duration::from_secs(5))];
        assert_eq!(arrival_time(200.0, &constant, 1), Some(0.005));
        let t = arrival_time(200.0, &constant, 1000).expect("last");
        assert!((t - 5.0).abs() < 1e-9, "{t}");
        assert_eq!(arrival_time(200.0, &constant, 1001), None);
        // A ramp from 0 to 100/s over 10 s makes 500 hits; half of them in the last 2.93 s.
        let ramp = [(100.0, Duration::from_secs(10))];
        let t = arrival_time(0.0, &ramp, 250).expect("t");
        assert!((t - 50f64.sqrt()).abs() < 1e-6, "{t}");
        assert!(arrival_time(0.0, &ramp, 500).is_some());
        assert_eq!(arrival_time(0.0, &ramp, 501), None);
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
        let d = Plan::cycles(
            "2:4".parse().expect("users"),
            Stop::Duration(Duration::from_secs(3)),
        );
        assert_eq!(d.total_hits(), None);
        assert_eq!(d.total_duration(), Some(Duration::from_secs(6)));
        assert_eq!(d.describe(), "users 2:4 for 3s each");
        // The open model's pool of one user is "1 user" too (it said "at most 1 users").
        let open = |max_users, end: f64| Plan {
            model: Model::Rate {
                start: 200.0,
                stages: vec![(end, Duration::from_secs(2))],
                max_users,
                offset: 0.0,
            },
            ..plan("1", "1")
        };
        assert_eq!(open(1, 200.0).describe(), "200/s for 2s, at most 1 user");
        assert_eq!(open(5, 200.0).describe(), "200/s for 2s, at most 5 users");
        assert_eq!(
            open(1, 100.0).describe(),
            "rate from 200/s: 100/s:2s, at most 1 user"
        );
    }

    #[test]
    fn oversized_plans_are_refused() {
        assert!(
            "99999999999999999999"
                .parse::<Cycles>()
                .expect_err("big")
                .to_string()
                .contains("too large")
        );
        let p = plan("18446744073709551615", "2");
        assert_eq!(p.total_hits(), None);
        assert!(
            p.check()
                .expect_err("too many")
                .to_string()
                .contains("--users")
        );
        let p = plan("1000", "18446744073709551615");
        assert!(
            p.check()
                .expect_err("overflow")
                .to_string()
                .contains("too large")
        );
        assert!(plan("10:20", "5").check().is_ok());
    }

    #[test]
    fn bad_cycles_are_explained() {
        assert!(
            "0".parse::<Cycles>()
                .expect_err("zero")
                .to_string()
                .contains("at least 1")
        );
        assert!(
            "10:x"
                .parse::<Cycles>()
                .expect_err("x")
                .to_string()
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
                .to_string()
                .contains("too long")
        );
        assert!(
            parse_duration("1000y")
                .expect_err("huge")
                .to_string()
                .contains("too long")
        );
        assert!(duration_from_secs(f64::NAN).is_err());
    }
}
