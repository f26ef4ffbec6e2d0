//! Running a suite's tests as ordinary functional tests under `cargo test`: one user (with its
//! `on_start` and `on_stop`), one hit, and a failure or error fails the cargo test. `#[loads::suite]` generates one `#[test]` per
//! test that calls [`run_test`].

use std::sync::Arc;

use crate::case::{
    FutureSlot, Hook, Suite, SuiteEntry, TestCase, TestError, TestRef, run_hit, run_hook,
};
use crate::config::RunArgs;
use crate::result::{Recorder, Stats, UserRecorder};

/// The outcome a functional test expects: `#[loads(expected = "failure")]` on a test that
/// demonstrates failures makes its cargo test pass only when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The test succeeds (the default).
    Success,
    /// The test fails (an assertion does not hold).
    Failure,
    /// The test errors.
    Error,
}

/// Runs test `name` of suite `S` once, with one user, against `LOADS_SERVER_URL` or, when that
/// is unset, the URL `server` returns, with the data sources of `LOADS_DATA` or, when that is
/// unset, of the suite's `data` option (`NAME=FILE[:STRATEGY]`, separated by spaces). Panics, so that the cargo test fails, when the outcome is
/// not the `expected` one.
pub fn run_test<S: Suite>(name: &str, server: Option<fn() -> String>, expected: Expect) {
    let outcome = try_run_test::<S>(name, server);
    match (expected, outcome) {
        (Expect::Success, Ok(_)) => {}
        (Expect::Failure, Err(e)) if e.is_failure() => {}
        (Expect::Error, Err(e)) if !e.is_failure() => {}
        (Expect::Success, Err(e)) => panic!("{}::{name} {e}", S::NAME),
        (expected, Err(e)) => panic!(
            "{}::{name} was expected to end with {expected:?}, got {e}",
            S::NAME
        ),
        (expected, Ok(_)) => panic!(
            "{}::{name} was expected to end with {expected:?}, but it succeeded",
            S::NAME
        ),
    }
}

/// Like [`run_test`], but returns the outcome and the recorded statistics instead of panicking.
pub fn try_run_test<S: Suite>(
    name: &str,
    server: Option<fn() -> String>,
) -> Result<Stats, TestError> {
    static ENTRIES: std::sync::Mutex<Vec<&'static SuiteEntry>> = std::sync::Mutex::new(Vec::new());
    let entry: &'static SuiteEntry = {
        let mut entries = ENTRIES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.iter().find(|e| e.name == S::NAME) {
            Some(e) => e,
            None => {
                let e: &'static SuiteEntry = Box::leak(Box::new(SuiteEntry::of::<S>()));
                entries.push(e);
                e
            }
        }
    };
    let index = S::TESTS
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| TestError::error(format!("suite {} has no test {name}", S::NAME)))?;
    let test = TestRef {
        suite: entry,
        index,
    };
    let server_url = std::env::var("LOADS_SERVER_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| server.map(|f| f()));
    let data_text = std::env::var("LOADS_DATA")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| S::DATA.to_owned());
    let data = data_text
        .split_whitespace()
        .map(|s| s.parse::<crate::config::DataSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestError::error(format!("LOADS_DATA: {e}")))?;
    let data_set = crate::data::DataSet::load(&data, std::path::Path::new("."), (0, 1))
        .map_err(|e| TestError::error(e.to_string()))?;
    let args = Arc::new(RunArgs {
        plan: crate::config::PlanArgs {
            tests: vec![test.full_name()],
            server_url,
            data,
            ..Default::default()
        },
        ..RunArgs::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TestError::from)?;
    let recorder = Arc::new(Recorder::new(1));
    let user = UserRecorder::new(recorder.clone(), 0);
    let outcome = runtime.block_on(async {
        let mut case = TestCase::new(Arc::from(test.full_name()), args, user)?;
        case.set_data(Arc::new(data_set));
        case.set_status(crate::result::LoadsStatus {
            hits: 1,
            users: 1,
            current_hit: 1,
            current_user: 1,
        });
        let mut state = (entry.new_user)();
        let mut slot = FutureSlot::new();
        // One user's whole life: its `on_start`, the hit, its `on_stop` (whose failure fails
        // the test only when the hit itself succeeded, as a tear-down's does).
        if let Some(started) = run_hook(&mut *state, Hook::Start, &mut case, &mut slot).await {
            started?;
        }
        let outcome = run_hit(&mut *state, index, &mut case, &mut slot).await;
        let stopped = run_hook(&mut *state, Hook::Stop, &mut case, &mut slot)
            .await
            .unwrap_or(Ok(()));
        outcome.and(stopped)
    });
    let mut stats = Stats::default();
    recorder.drain_into(&mut stats);
    outcome.map(|()| stats)
}
