//! The `junit` output: JUnit XML for CI systems, written when the run ends. One test suite
//! `loads` with a test case per test (failed when a hit failed, errored when a hit errored,
//! with the most frequent messages), one per threshold in a suite `thresholds`, and a test case
//! `run` for problems of the run itself (a lost agent, an abort).

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::write_error;
use crate::result::{Observer, OutputError, ProblemKind, TestResult};

/// Writes JUnit XML.
pub struct JunitOutput {
    file: Option<File>,
    path: PathBuf,
}

impl JunitOutput {
    /// An output writing to `file`, opened at `path`.
    pub fn new(file: File, path: PathBuf) -> Self {
        JunitOutput {
            file: Some(file),
            path,
        }
    }
}

/// Builds the report of `result`.
fn report(result: &TestResult) -> Report {
    let stats = result.stats();
    let secs = result.duration();
    let mut tests = TestSuite::new("loads");
    tests.set_timestamp(result.started().fixed_offset());
    tests.set_time(secs);
    for (name, counts) in &stats.tests {
        let (suite, test) = name.rsplit_once("::").unwrap_or(("", name.as_str()));
        let kind = if counts.errors > 0 {
            Some((NonSuccessKind::Error, ProblemKind::Error, counts.errors))
        } else if counts.failures > 0 {
            Some((
                NonSuccessKind::Failure,
                ProblemKind::Failure,
                counts.failures,
            ))
        } else {
            None
        };
        let status = match kind {
            None => TestCaseStatus::success(),
            Some((junit_kind, outcome, n)) => {
                // The headline is of the element's kind; the description lists every kind
                // (a test can both fail and error).
                let mut problems: Vec<_> =
                    stats.problems.iter().filter(|p| &p.test == name).collect();
                problems.sort_by_key(|p| (p.outcome != outcome, std::cmp::Reverse(p.count)));
                let mut s = TestCaseStatus::non_success(junit_kind);
                let word = if outcome == ProblemKind::Error {
                    "errored"
                } else {
                    "failed"
                };
                let first = problems.first().map_or("", |p| p.message.as_str());
                let also = if outcome == ProblemKind::Error && counts.failures > 0 {
                    format!(" (and {} failed)", counts.failures)
                } else {
                    String::new()
                };
                s.set_message(format!("{n} of {} hits {word}{also}: {first}", counts.hits));
                if let Some(p) = problems.first() {
                    s.set_type(p.kind.clone());
                }
                let mut d = String::new();
                for p in problems.iter().take(10) {
                    let what = if p.outcome == ProblemKind::Error {
                        "error"
                    } else {
                        "failure"
                    };
                    let _ = writeln!(d, "{}× {what} [{}] {}", p.count, p.kind, p.message);
                    for l in p.traceback.lines().take(20) {
                        let _ = writeln!(d, "    {l}");
                    }
                }
                s.set_description(d);
                s
            }
        };
        let mut case = TestCase::new(test, status);
        case.set_classname(suite);
        case.set_assertions(counts.hits as usize);
        case.set_system_out(format!(
            "{} hits: {} successes, {} failures, {} errors",
            counts.hits, counts.successes, counts.failures, counts.errors
        ));
        tests.add_test_case(case);
    }
    let mut run_problems: Vec<String> = result.run_problems().to_vec();
    if let Some(why) = result.aborted() {
        run_problems.push(format!("aborted: {why}"));
    }
    if result.interrupted() {
        run_problems.push("the run was interrupted before the end of its plan".into());
    }
    let mut run_case = TestCase::new(
        "run",
        if run_problems.is_empty() {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(run_problems[0].clone());
            s.set_description(run_problems.join("\n"));
            s
        },
    );
    run_case.set_classname(result.meta().test.clone());
    run_case.set_time(secs);
    tests.add_test_case(run_case);

    let mut report = Report::new(format!("loads {}", result.meta().test));
    report.set_timestamp(result.started().fixed_offset());
    report.set_time(secs);
    report.add_test_suite(tests);
    let verdicts = result.verdicts();
    if !verdicts.is_empty() {
        let mut suite = TestSuite::new("thresholds");
        suite.set_time(Duration::ZERO);
        for v in verdicts {
            let status = if v.pass {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!(
                    "{} is false: actual {}",
                    v.expression, v.actual_text
                ));
                s.set_type("threshold");
                s
            };
            let mut case = TestCase::new(v.expression.clone(), status);
            case.set_classname("thresholds");
            case.set_system_out(format!("actual: {}", v.actual_text));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report
}

impl Observer for JunitOutput {
    fn on_finish(&mut self, result: &TestResult) -> Result<(), OutputError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let xml = report(result)
            .to_string()
            .map_err(|e| write_error("junit", &self.path, e))?;
        file.write_all(xml.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| write_error("junit", &self.path, e))
    }
}
