//! Figures per test, per scenario and per lifecycle hook: [`TestStats`] (the outcome counts of
//! [`TestCounts`] and an HDR histogram of each run's whole duration), the description of one
//! ended hit ([`Hit`], [`HitOutcome`]) that [`Stats::record_hit`](super::Stats::record_hit)
//! takes, and the bounds of the maps that hold them.
//!
//! A *hit duration* is the time of the whole test, from just before its suite's set-up to just
//! after its tear-down, as the runner measures it (Goose calls it a transaction); request times
//! stay per URL. Data enters through [`TestStats::record`] / [`TestStats::add`] (the
//! [`Stats`](super::Stats) that owns the maps calls them through [`entry`]) and through serde,
//! where a decoded map holds at most its bound plus the overflow entry ([`bounded`]); it leaves
//! through the public fields and serde (an empty histogram is not written, and a missing one
//! reads as empty: batches of earlier versions decode).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::latency::{LATENCY_SIGFIG, Latency};

/// Distinct tests with figures of their own; hits of more are counted under [`OTHER_TEST`].
pub const MAX_TESTS: usize = 100;
/// The entry under which tests beyond [`MAX_TESTS`] are counted.
pub const OTHER_TEST: &str = "(other tests)";
/// Distinct scenarios with figures of their own; more are counted under [`OTHER_SCENARIO`].
pub const MAX_SCENARIOS: usize = crate::config::MAX_SCENARIOS;
/// The entry under which scenarios beyond [`MAX_SCENARIOS`] are counted.
pub const OTHER_SCENARIO: &str = "(other scenarios)";
/// Distinct lifecycle hooks (`suite::on_start`, `suite::on_stop`) with figures of their own;
/// more are counted under [`OTHER_HOOK`].
pub const MAX_HOOKS: usize = 32;
/// The entry under which hooks beyond [`MAX_HOOKS`] are counted.
pub const OTHER_HOOK: &str = "(other hooks)";

/// Whether a problem is a failure or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// An assertion did not hold.
    Failure,
    /// Any other error.
    Error,
}

/// Outcome counts of one test (or scenario, or lifecycle hook: there a "hit" is one run of
/// the hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TestCounts {
    /// Hits started (`startTest`; a local run counts them when they end or are abandoned).
    pub started: u64,
    /// Hits finished (`stopTest`): the test runs.
    pub hits: u64,
    /// Successful hits.
    pub successes: u64,
    /// Hits whose assertion did not hold.
    pub failures: u64,
    /// Hits that ended with any other error.
    pub errors: u64,
}

impl TestCounts {
    /// Adds the counts of `o`.
    pub fn add(&mut self, o: &TestCounts) {
        self.started = self.started.saturating_add(o.started);
        self.hits = self.hits.saturating_add(o.hits);
        self.successes = self.successes.saturating_add(o.successes);
        self.failures = self.failures.saturating_add(o.failures);
        self.errors = self.errors.saturating_add(o.errors);
    }

    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        *self == TestCounts::default()
    }

    /// Counts the start and the end of one hit with `outcome`.
    fn count(&mut self, outcome: &HitOutcome<'_>) {
        for n in [&mut self.started, &mut self.hits] {
            *n = n.saturating_add(1);
        }
        let n = match outcome.problem_kind() {
            None => &mut self.successes,
            Some(ProblemKind::Failure) => &mut self.failures,
            Some(ProblemKind::Error) => &mut self.errors,
        };
        *n = n.saturating_add(1);
    }
}

/// The figures of one test, one scenario or one lifecycle hook: outcome counts (the JSON fields
/// of [`TestCounts`], flattened) and `duration`, the whole duration of each hit in µs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestStats {
    /// Outcome counts.
    #[serde(flatten)]
    pub counts: TestCounts,
    /// Hit durations (µs; empty for hits that never ran or whose producer sent no duration).
    #[serde(default = "no_durations", skip_serializing_if = "Latency::is_empty")]
    pub duration: Latency,
}

fn no_durations() -> Latency {
    Latency::new(LATENCY_SIGFIG)
}

impl Default for TestStats {
    fn default() -> Self {
        TestStats {
            counts: TestCounts::default(),
            duration: no_durations(),
        }
    }
}

impl TestStats {
    /// Counts one ended hit (its start too) and records its duration, if it has one.
    pub fn record(&mut self, outcome: &HitOutcome<'_>, micros: Option<u64>) {
        self.counts.count(outcome);
        if let Some(us) = micros {
            self.duration.record(us);
        }
    }

    /// Adds the counts and durations of `o`.
    pub fn add(&mut self, o: &TestStats) {
        self.counts.add(&o.counts);
        self.duration.add(&o.duration);
    }

    /// Clears the counts and durations, keeping the histogram's allocation.
    pub fn reset(&mut self) {
        self.counts = TestCounts::default();
        self.duration.reset();
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.counts.is_zero() && self.duration.is_empty()
    }
}

/// How a hit (or a lifecycle hook) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitOutcome<'a> {
    /// It succeeded.
    Success,
    /// It failed or errored.
    Problem {
        /// Failure (an assertion) or error (anything else).
        outcome: ProblemKind,
        /// The message.
        message: &'a str,
        /// The kind (assertion macro, `panic`, error type).
        kind: &'a str,
        /// Where it happened.
        traceback: &'a str,
    },
}

impl HitOutcome<'_> {
    /// `None` for a success.
    pub fn problem_kind(&self) -> Option<ProblemKind> {
        match self {
            HitOutcome::Success => None,
            HitOutcome::Problem { outcome, .. } => Some(*outcome),
        }
    }
}

/// One ended hit, as [`Stats::record_hit`](super::Stats::record_hit) records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The test's full name, `suite::test`.
    pub test: &'a str,
    /// The scenario the hit belongs to, in a run of scenarios.
    pub scenario: Option<&'a str>,
    /// Its whole duration in µs, from just before the set-up to just after the tear-down;
    /// `None` for a hit that never ran (its virtual user could not be made).
    pub micros: Option<u64>,
    /// The unix second in which it ended.
    pub second: i64,
    /// How it ended.
    pub outcome: HitOutcome<'a>,
}

/// The entry of `name` in `map`: at most `max` names, then `other` for every further one.
/// Two lookups for a known name; allocates only for an entry made for the first time.
pub(crate) fn entry<'m>(
    map: &'m mut BTreeMap<String, TestStats>,
    name: &str,
    max: usize,
    other: &str,
) -> &'m mut TestStats {
    let name = super::stats::cut(name, super::stats::MAX_NAME_BYTES);
    let name = &*name;
    if !map.contains_key(name) {
        let has_other = map.contains_key(other);
        if map.len() - usize::from(has_other) < max {
            return map.entry(name.to_owned()).or_default();
        }
        if !has_other {
            map.insert(other.to_owned(), TestStats::default());
        }
        return map.get_mut(other).expect("present");
    }
    map.get_mut(name).expect("present")
}

/// Decoding of the maps of [`TestStats`], refusing a map with more entries than a [`Stats`]
/// (super::Stats) can hold before decoding (allocating) the entry over the bound.
pub(crate) mod bounded {
    use super::{MAX_HOOKS, MAX_SCENARIOS, MAX_TESTS, TestStats};
    use serde::Deserializer;
    use serde::de::{Error as _, MapAccess, Visitor};
    use std::collections::BTreeMap;
    use std::fmt;

    type Map = BTreeMap<String, TestStats>;

    struct Bounded {
        max: usize,
        what: &'static str,
    }

    impl<'de> Visitor<'de> for Bounded {
        type Value = Map;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a map of {} to their figures", self.what)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Map, A::Error> {
            let mut out = Map::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.len() >= self.max && !out.contains_key(&name) {
                    return Err(A::Error::custom(format!(
                        "more than {} {}",
                        self.max, self.what
                    )));
                }
                out.insert(name, map.next_value::<TestStats>()?);
            }
            Ok(out)
        }
    }

    /// `tests`: at most [`MAX_TESTS`] entries and the overflow one.
    pub fn tests<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        d.deserialize_map(Bounded {
            max: MAX_TESTS + 1,
            what: "tests",
        })
    }

    /// `scenarios`: at most [`MAX_SCENARIOS`] entries and the overflow one.
    pub fn scenarios<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        d.deserialize_map(Bounded {
            max: MAX_SCENARIOS + 1,
            what: "scenarios",
        })
    }

    /// `lifecycle`: at most [`MAX_HOOKS`] entries and the overflow one.
    pub fn lifecycle<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        d.deserialize_map(Bounded {
            max: MAX_HOOKS + 1,
            what: "lifecycle hooks",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_bounded_with_an_overflow_entry() {
        let mut m = BTreeMap::new();
        for i in 0..(MAX_TESTS + 5) {
            entry(&mut m, &format!("s::t{i}"), MAX_TESTS, OTHER_TEST)
                .record(&HitOutcome::Success, Some(10));
        }
        assert_eq!(m.len(), MAX_TESTS + 1);
        assert_eq!(m[OTHER_TEST].counts.hits, 5);
        // Known names keep their own entry.
        entry(&mut m, "s::t0", MAX_TESTS, OTHER_TEST).record(&HitOutcome::Success, None);
        assert_eq!(m["s::t0"].counts.hits, 2);
        assert_eq!(m["s::t0"].duration.len(), 1);
    }

    #[test]
    fn counts_follow_outcomes() {
        let mut t = TestStats::default();
        t.record(&HitOutcome::Success, Some(1_000));
        let p = |outcome| HitOutcome::Problem {
            outcome,
            message: "m",
            kind: "k",
            traceback: "",
        };
        t.record(&p(ProblemKind::Failure), Some(2_000));
        t.record(&p(ProblemKind::Error), None);
        let c = t.counts;
        assert_eq!(
            (c.started, c.hits, c.successes, c.failures, c.errors),
            (3, 3, 1, 1, 1)
        );
        assert_eq!(t.duration.len(), 2);
        let mut sum = TestStats::default();
        sum.add(&t);
        sum.add(&t);
        assert_eq!(sum.counts.hits, 6);
        assert_eq!(sum.duration.len(), 4);
        sum.reset();
        assert!(sum.is_empty());
    }

    #[test]
    fn old_counts_decode_and_empty_durations_are_not_written() {
        // A batch's test entry from before durations.
        let old = r#"{"started":2,"hits":2,"successes":1,"failures":1,"errors":0}"#;
        let t: TestStats = serde_json::from_str(old).expect("old entry");
        assert_eq!(t.counts.hits, 2);
        assert!(t.duration.is_empty());
        assert_eq!(serde_json::to_string(&t).expect("ser"), old);
        // An older reader of counts only ignores the new field.
        let mut t = t;
        t.duration.record(1234);
        let text = serde_json::to_string(&t).expect("ser");
        let counts: TestCounts = serde_json::from_str(&text).expect("as counts");
        assert_eq!(counts, t.counts);
        let back: TestStats = serde_json::from_str(&text).expect("back");
        assert_eq!(back, t);
    }

    #[test]
    fn decoded_maps_are_bounded() {
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "bounded::scenarios")]
            s: BTreeMap<String, TestStats>,
        }
        let map = |n: usize| {
            let entries: Vec<String> = (0..n).map(|i| format!("\"x{i}\":{{\"hits\":1}}")).collect();
            format!("{{\"s\":{{{}}}}}", entries.join(","))
        };
        let ok: W = serde_json::from_str(&map(MAX_SCENARIOS + 1)).expect("at the bound");
        assert_eq!(ok.s.len(), MAX_SCENARIOS + 1);
        let e = serde_json::from_str::<W>(&map(MAX_SCENARIOS + 2))
            .err()
            .expect("over the bound");
        assert!(e.to_string().contains("more than 33 scenarios"), "{e}");
    }
}
