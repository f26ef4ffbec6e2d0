//! The suites linked into the binary: the [`Suite`] trait that `#[loads::suite]` implements,
//! the per-user state behind it ([`UserState`]), the registry the macro fills through `inventory`
//! ([`SuiteEntry`], [`suites`], [`all_tests`]) and test lookup by name with suggestions
//! (`find_in`, which [`Mix`](super::Mix) uses).

use std::fmt;

use super::context::TestCase;
use super::outcome::Outcome;
use super::slot::{FutureSlot, Placed};

/// A test of a suite: its name and the first line of its doc comment.
#[derive(Debug, Clone, Copy)]
pub struct TestInfo {
    /// The test's name within its suite.
    pub name: &'static str,
    /// What it does (its doc comment).
    pub doc: &'static str,
    /// Its weight when the whole suite runs as a mix (`#[loads(weight = N)]`; default 1).
    pub weight: u32,
    /// The data sources it (or its suite's set-up and tear-down) asks for by a literal name,
    /// `t.data("NAME")`: a run must declare them (`--data NAME=FILE`).
    pub data: &'static [&'static str],
}

/// A suite: per-user state whose async methods are tests. Implemented by `#[loads::suite]`.
pub trait Suite: Send + 'static {
    /// The suite's name (snake case of the type name unless given).
    const NAME: &'static str;
    /// The suite's doc comment.
    const DOC: &'static str;
    /// The tests, in source order.
    const TESTS: &'static [TestInfo];
    /// The server URL the suite's tests use when a run gives none (`#[loads::suite(server_url =
    /// "http://…")]`, the seed system's `server_url` attribute); `--server-url` and, under
    /// `cargo test`, `LOADS_SERVER_URL` win over it.
    const SERVER_URL: Option<&'static str> = None;
    /// The data sources of the suite's functional tests under `cargo test`, as `--data` takes
    /// them, separated by spaces (`#[loads::suite(data = "...")]`; `LOADS_DATA` overrides it).
    const DATA: &'static str = "";
    /// Creates the state of a new virtual user.
    fn new_user() -> Self
    where
        Self: Sized;
    /// Runs test number `index`, its future placed in the user's `slot` (one block per user,
    /// reused on every hit, instead of a box per hit).
    fn run_test<'a>(
        &'a mut self,
        index: usize,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Placed<'a, Outcome>;
    /// Runs before each hit (the suite's `setup` method, if any).
    fn setup<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>> {
        let _ = (t, slot);
        None
    }
    /// Runs after each hit whose set-up succeeded (the suite's `teardown` method, if any).
    fn teardown<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>> {
        let _ = (t, slot);
        None
    }
    /// Runs once when a virtual user starts, before its first hit (the suite's `on_start`
    /// method, if any): log in, fetch a token. A user whose `on_start` fails runs no hits.
    fn on_start<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>> {
        let _ = (t, slot);
        None
    }
    /// Runs once when a virtual user whose `on_start` succeeded ends (the suite's `on_stop`
    /// method, if any): after its last hit, at the end of the duration, at Ctrl-C, or when the
    /// stages remove it.
    fn on_stop<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>> {
        let _ = (t, slot);
        None
    }
}

/// The object-safe face of a suite's per-user state.
pub trait UserState: Send {
    /// Runs test number `index`.
    fn run_test<'a>(
        &'a mut self,
        index: usize,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Placed<'a, Outcome>;
    /// The set-up hook, if any.
    fn setup<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>>;
    /// The tear-down hook, if any.
    fn teardown<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>>;
    /// The user's start hook, if any.
    fn on_start<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>>;
    /// The user's stop hook, if any.
    fn on_stop<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>>;
}

impl<S: Suite> UserState for S {
    fn run_test<'a>(
        &'a mut self,
        index: usize,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Placed<'a, Outcome> {
        Suite::run_test(self, index, t, slot)
    }
    fn setup<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>> {
        Suite::setup(self, t, slot)
    }
    fn teardown<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>> {
        Suite::teardown(self, t, slot)
    }
    fn on_start<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>> {
        Suite::on_start(self, t, slot)
    }
    fn on_stop<'a>(
        &'a mut self,
        t: &'a mut TestCase,
        slot: &'a mut FutureSlot,
    ) -> Option<Placed<'a, Outcome>> {
        Suite::on_stop(self, t, slot)
    }
}

pub(super) fn new_user_boxed<S: Suite>() -> Box<dyn UserState> {
    Box::new(S::new_user())
}

/// A suite as the registry knows it.
pub struct SuiteEntry {
    /// The suite's name.
    pub name: &'static str,
    /// Its doc comment.
    pub doc: &'static str,
    /// Its tests.
    pub tests: &'static [TestInfo],
    /// Creates a virtual user's state.
    pub new_user: fn() -> Box<dyn UserState>,
    /// The suite's default server URL ([`Suite::SERVER_URL`]).
    pub server_url: Option<&'static str>,
}

impl SuiteEntry {
    /// The entry of suite `S`.
    pub const fn of<S: Suite>() -> SuiteEntry {
        SuiteEntry {
            name: S::NAME,
            doc: S::DOC,
            tests: S::TESTS,
            new_user: new_user_boxed::<S>,
            server_url: S::SERVER_URL,
        }
    }
}

inventory::collect!(SuiteEntry);

/// One test of one suite.
#[derive(Clone, Copy)]
pub struct TestRef {
    /// The suite.
    pub suite: &'static SuiteEntry,
    /// The test's index in the suite.
    pub index: usize,
}

impl TestRef {
    /// `suite::test`.
    pub fn full_name(&self) -> String {
        format!("{}::{}", self.suite.name, self.info().name)
    }

    /// Name and doc of the test.
    pub fn info(&self) -> &'static TestInfo {
        &self.suite.tests[self.index]
    }
}

impl fmt::Debug for TestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_name())
    }
}

/// Every suite linked into this binary, sorted by name.
pub fn suites() -> Vec<&'static SuiteEntry> {
    let mut v: Vec<_> = inventory::iter::<SuiteEntry>.into_iter().collect();
    v.sort_by_key(|s| s.name);
    v
}

/// Every test linked into this binary, sorted by suite then source order.
pub fn all_tests() -> Vec<TestRef> {
    suites()
        .into_iter()
        .flat_map(|suite| (0..suite.tests.len()).map(move |index| TestRef { suite, index }))
        .collect()
}

/// A test name that matches no registered test.
#[derive(Debug, thiserror::Error)]
pub struct UnknownTest {
    /// The name asked for.
    pub name: String,
    /// Registered names close to it, closest first.
    pub suggestions: Vec<String>,
    /// Several tests share this bare name.
    pub ambiguous: bool,
}

impl fmt::Display for UnknownTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ambiguous {
            write!(
                f,
                "test name {:?} is ambiguous; use the full SUITE::TEST name:",
                self.name
            )?;
        } else {
            write!(f, "no test named {:?}", self.name)?;
            if self.suggestions.is_empty() {
                return write!(f, " (`loads list` shows the registered tests)");
            }
            write!(f, "; the closest names are:")?;
        }
        for s in &self.suggestions {
            write!(f, "\n  {s}")?;
        }
        write!(f, "\n(`loads list` shows every registered test)")
    }
}

/// Finds a test by its full name `suite::test`, or by a bare test name that only one suite has,
/// among `tests`.
pub(super) fn find_in(tests: &[TestRef], name: &str) -> Result<TestRef, UnknownTest> {
    if let Some(t) = tests.iter().find(|t| t.full_name() == name) {
        return Ok(*t);
    }
    if !name.contains("::") {
        let bare: Vec<_> = tests.iter().filter(|t| t.info().name == name).collect();
        match bare.as_slice() {
            [one] => return Ok(**one),
            [] => {}
            many => {
                return Err(UnknownTest {
                    name: name.to_owned(),
                    suggestions: many.iter().map(|t| t.full_name()).collect(),
                    ambiguous: true,
                });
            }
        }
    }
    let mut scored: Vec<(f64, String)> = tests
        .iter()
        .map(|t| {
            let full = t.full_name();
            let score =
                strsim::jaro_winkler(name, &full).max(strsim::jaro_winkler(name, t.info().name));
            (score, full)
        })
        .filter(|(s, _)| *s > 0.6)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    Err(UnknownTest {
        name: name.to_owned(),
        suggestions: scored.into_iter().take(3).map(|(_, n)| n).collect(),
        ambiguous: false,
    })
}
