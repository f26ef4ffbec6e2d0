//! A test mix: the tests of one suite that a run picks from, each with a weight
//! (`loads run blog::browse=70 blog::search=25`, or `loads run blog` for all of a suite's tests
//! with their `#[loads(weight = N)]`). A single `SUITE::TEST` is a mix of one. Every hit of a
//! virtual user draws its test by weight ([`Mix::pick`]); all tests belong to one suite, so a
//! user keeps one suite state across them. Specs enter as text; a checked [`Mix`] leaves, or a
//! [`MixError`] that names the problem. [`NamedMix`] is the same choice among names this binary
//! does not know, for external runners.

use std::sync::Arc;

use super::registry::{SuiteEntry, TestRef, UnknownTest, find_in, suites};
use crate::config::UsageError;

/// Largest weight of one test.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// One test of a mix.
#[derive(Debug, Clone)]
pub struct MixEntry {
    /// The test.
    pub test: TestRef,
    /// Its full name, `SUITE::TEST` (the name its statistics are kept under).
    pub name: Arc<str>,
    /// Its weight.
    pub weight: u32,
}

/// The tests a run picks from, by weight.
#[derive(Debug, Clone)]
pub struct Mix {
    entries: Vec<MixEntry>,
    /// Running sums of the weights, to pick by.
    cumulative: Vec<u64>,
}

/// Why a mix could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// A name matches no test or suite.
    #[error(transparent)]
    Unknown(#[from] UnknownTest),
    /// A bad weight, tests of two suites, a test given twice, nothing given.
    #[error(transparent)]
    Usage(#[from] UsageError),
}

fn usage(message: String) -> MixError {
    MixError::Usage(UsageError::new("TEST", message))
}

impl Mix {
    /// The mix of `specs`: each `NAME` or `NAME=WEIGHT`, where `NAME` is `SUITE::TEST`, a test
    /// name only one suite has, or a suite's name (all its tests, with their default weights).
    pub fn parse(specs: &[String]) -> Result<Mix, MixError> {
        Mix::parse_in(&suites(), specs)
    }

    /// [`Mix::parse`] among `suites`.
    pub(super) fn parse_in(
        suites: &[&'static SuiteEntry],
        specs: &[String],
    ) -> Result<Mix, MixError> {
        let tests: Vec<TestRef> = suites
            .iter()
            .flat_map(|&suite| (0..suite.tests.len()).map(move |index| TestRef { suite, index }))
            .collect();
        if specs.is_empty() {
            return Err(usage(
                "no test given: `loads run SUITE::TEST` (`loads list` shows the tests)".into(),
            ));
        }
        let mut entries: Vec<MixEntry> = Vec::new();
        for spec in specs {
            let (name, weight) = split_weight(spec).map_err(MixError::Usage)?;
            let found: Vec<(TestRef, u32)> = match find_in(&tests, name) {
                Ok(t) => vec![(t, weight.unwrap_or(1))],
                Err(unknown) => match suites.iter().find(|s| s.name == name) {
                    Some(suite) => (0..suite.tests.len())
                        .map(|index| {
                            let t = TestRef { suite, index };
                            (t, weight.unwrap_or(t.info().weight.max(1)))
                        })
                        .collect(),
                    None => return Err(unknown.into()),
                },
            };
            for (test, weight) in found {
                let full = test.full_name();
                if entries.iter().any(|e| *e.name == *full) {
                    return Err(usage(format!(
                        "{full} is given twice in the mix: give each test once, with its weight"
                    )));
                }
                if let Some(first) = entries.first()
                    && !std::ptr::eq(first.test.suite, test.suite)
                {
                    return Err(usage(format!(
                        "{} and {full} belong to different suites: a mix's tests share one suite (a virtual user keeps one suite state); run the suites as separate runs or separate [[scenario]] tables",
                        first.name
                    )));
                }
                entries.push(MixEntry {
                    test,
                    name: Arc::from(full),
                    weight,
                });
            }
        }
        let cumulative = running_sums(entries.iter().map(|e| e.weight));
        Ok(Mix {
            entries,
            cumulative,
        })
    }

    /// The suite of the mix's tests.
    pub fn suite(&self) -> &'static SuiteEntry {
        self.entries[0].test.suite
    }

    /// The tests, in the order given.
    pub fn entries(&self) -> &[MixEntry] {
        &self.entries
    }

    /// The mix as it is written: `SUITE::TEST` for a single test, else `A=70 B=30`.
    pub fn describe(&self) -> String {
        if let [one] = self.entries.as_slice() {
            return one.name.to_string();
        }
        self.entries
            .iter()
            .map(|e| format!("{}={}", e.name, e.weight))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The test of a hit whose draw is `draw` (any 64-bit value, well spread: see
    /// [`draw`]); a mix of one always gives its test.
    pub fn pick(&self, draw: u64) -> &MixEntry {
        if self.entries.len() == 1 {
            return &self.entries[0];
        }
        &self.entries[pick_index(&self.cumulative, draw)]
    }
}

/// `NAME` or `NAME=WEIGHT` (1 to [`MAX_WEIGHT`]): the name and the weight given.
fn split_weight(spec: &str) -> Result<(&str, Option<u32>), UsageError> {
    match spec.rsplit_once('=') {
        Some((n, w)) => match w
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|w| (1..=MAX_WEIGHT).contains(w))
        {
            Some(w) => Ok((n.trim(), Some(w))),
            None => Err(UsageError::new(
                "TEST",
                format!(
                    "invalid weight in {spec:?}: a weight is a whole number from 1 to {MAX_WEIGHT}, e.g. blog::browse=70"
                ),
            )),
        },
        None => Ok((spec.trim(), None)),
    }
}

/// Running sums of `weights`.
fn running_sums(weights: impl Iterator<Item = u32>) -> Vec<u64> {
    let mut sum = 0u64;
    weights
        .map(|w| {
            sum += u64::from(w);
            sum
        })
        .collect()
}

/// The index a `draw` picks among weights of running sums `cumulative` (not empty).
fn pick_index(cumulative: &[u64], draw: u64) -> usize {
    let total = cumulative[cumulative.len() - 1];
    // Multiply-shift: uniform over 0..total without a division's bias worth counting.
    let at = ((u128::from(draw) * u128::from(total)) >> 64) as u64;
    cumulative
        .partition_point(|c| *c <= at)
        .min(cumulative.len() - 1)
}

/// A weighted choice among test names that are not registered in this binary: the tests of an
/// external runner (`--test-runner`), which gets the name picked for each virtual user.
#[derive(Debug, Clone)]
pub struct NamedMix {
    names: Vec<(String, u32)>,
    cumulative: Vec<u64>,
}

impl NamedMix {
    /// The mix of `specs`, each `NAME` or `NAME=WEIGHT` (no weight: 1), each name once.
    pub fn parse(specs: &[String]) -> Result<NamedMix, UsageError> {
        if specs.is_empty() {
            return Err(UsageError::new(
                "TEST",
                "no test given: `loads run TEST --test-runner \"CMD {test}\"`",
            ));
        }
        let mut names: Vec<(String, u32)> = Vec::new();
        for spec in specs {
            let (name, weight) = split_weight(spec)?;
            if name.is_empty() {
                return Err(UsageError::new(
                    "TEST",
                    format!("{spec:?} has no test name: write NAME=WEIGHT, e.g. checkout=30"),
                ));
            }
            if names.iter().any(|(n, _)| n == name) {
                return Err(UsageError::new(
                    "TEST",
                    format!(
                        "{name} is given twice in the mix: give each test once, with its weight"
                    ),
                ));
            }
            names.push((name.to_owned(), weight.unwrap_or(1)));
        }
        let cumulative = running_sums(names.iter().map(|(_, w)| *w));
        Ok(NamedMix { names, cumulative })
    }

    /// The name a `draw` picks.
    pub fn pick(&self, draw: u64) -> &str {
        &self.names[pick_index(&self.cumulative, draw)].0
    }

    /// The mix as it is written: the name alone for one test, else `A=70 B=30`.
    pub fn describe(&self) -> String {
        if let [(one, _)] = self.names.as_slice() {
            return one.clone();
        }
        self.names
            .iter()
            .map(|(n, w)| format!("{n}={w}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A well-spread 64-bit draw for hit `hit` of user `user` in the part `part` of a run (an
/// agent's share), from splitmix64: each (part, user, hit) gives its own value.
pub fn draw(part: u64, user: u64, hit: u64) -> u64 {
    let mut z = part
        .wrapping_mul(0xD6E8_FEB8_6659_FD93)
        .wrapping_add(user.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(hit.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::case::{TestInfo, UserState};

    fn no_user() -> Box<dyn UserState> {
        unreachable!("the mix tests make no user")
    }

    static DEMO: SuiteEntry = SuiteEntry {
        name: "demo",
        doc: "",
        tests: &[
            TestInfo {
                name: "a",
                doc: "",
                weight: 3,
                data: &[],
            },
            TestInfo {
                name: "b",
                doc: "",
                weight: 1,
                data: &[],
            },
        ],
        new_user: no_user,
        server_url: None,
    };
    static OTHER: SuiteEntry = SuiteEntry {
        name: "other",
        doc: "",
        tests: &[TestInfo {
            name: "c",
            doc: "",
            weight: 1,
            data: &[],
        }],
        new_user: no_user,
        server_url: None,
    };

    fn mix(specs: &[&str]) -> Result<Mix, MixError> {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        Mix::parse_in(&[&DEMO, &OTHER], &specs)
    }

    #[test]
    fn weights_give_each_test_its_share() {
        let m = mix(&["demo::a=70", "demo::b=30"]).expect("mix");
        let mut a = 0;
        for hit in 0..10_000 {
            if &*m.pick(draw(0, hit % 37, hit)).name == "demo::a" {
                a += 1;
            }
        }
        assert!((6800..=7200).contains(&a), "{a} of 10000");
        assert_eq!(m.describe(), "demo::a=70 demo::b=30");
    }

    #[test]
    fn a_suite_name_is_all_its_tests() {
        let m = mix(&["demo"]).expect("suite");
        assert_eq!(m.describe(), "demo::a=3 demo::b=1");
        assert_eq!(mix(&["demo::a"]).expect("one").describe(), "demo::a");
    }

    #[test]
    fn bad_mixes_are_refused_with_the_fix() {
        for (specs, needle) in [
            (vec!["demo::a=0"], "invalid weight"),
            (vec!["demo::a=x"], "invalid weight"),
            (vec!["demo::a", "demo::a=2"], "given twice"),
            (vec!["demo::a", "other::c"], "different suites"),
            (vec![], "no test given"),
        ] {
            let e = mix(&specs).expect_err("refused").to_string();
            assert!(e.contains(needle), "{specs:?}: {e}");
        }
        assert!(matches!(mix(&["demo::nope"]), Err(MixError::Unknown(_))));
    }
}
