//! The `junit` output: JUnit XML for CI systems, written when the run ends. One test suite
//! `loads` with a test case per test (failed when a hit failed, errored when a hit errored,
//! with the most frequent messages; its counts and hit durations as properties and in its
//! system-out), one per threshold in a suite `thresholds`, and a test case `run` for problems
//! of the run itself (a lost agent, an abort). Runs with scenarios add a suite `scenarios`
//! (a case per scenario), runs whose suites have lifecycle hooks a suite `lifecycle` (a case per
//! `suite::on_start` / `suite::on_stop`).

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::format::format_micros;
use super::write_error;
use crate::result::stats::Problem;
use crate::result::{Observer, OutputError, ProblemKind, TestResult, TestStats};

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

/// The test case of one test, scenario or hook `name` (shown as `classname::case`): failed or
/// errored as its hits were, with `problems` (its own, most frequent first) in the description,
/// its counts and hit durations (ms) as properties and in its system-out. `hits` names what is
/// counted (`hits`, or `runs` for a hook).
fn case_of(
    classname: &str,
    case: &str,
    t: &TestStats,
    problems: &[&Problem],
    hits: &str,
    secs: f64,
) -> TestCase {
    let counts = &t.counts;
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
            let mut problems = problems.to_vec();
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
            s.set_message(format!(
                "{n} of {} {hits} {word}{also}: {first}",
                counts.hits
            ));
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
    let mut case = TestCase::new(case, status);
    case.set_classname(classname);
    case.set_assertions(counts.hits as usize);
    let rate = if secs > 0.0 {
        counts.hits as f64 / secs
    } else {
        0.0
    };
    let mut out = format!(
        "{} {hits}: {} successes, {} failures, {} errors; {rate:.1} {hits}/s",
        counts.hits, counts.successes, counts.failures, counts.errors
    );
    for (k, v) in [
        ("hits", counts.hits),
        ("successes", counts.successes),
        ("failures", counts.failures),
        ("errors", counts.errors),
    ] {
        case.add_property(Property::new(k, v.to_string()));
    }
    case.add_property(Property::new("hits_per_second", format!("{rate:.3}")));
    let d = &t.duration;
    if !d.is_empty() {
        let ms = |us: f64| format!("{:.3}", us / 1000.0);
        let figures = [
            ("mean", d.mean()),
            ("p50", d.quantile(0.50) as f64),
            ("p90", d.quantile(0.90) as f64),
            ("p95", d.quantile(0.95) as f64),
            ("p99", d.quantile(0.99) as f64),
            ("max", d.max() as f64),
        ];
        out.push_str("\nhit duration:");
        for (k, us) in figures {
            case.add_property(Property::new(format!("duration_{k}_ms"), ms(us)));
            let _ = write!(out, " {k} {}", format_micros(us));
        }
    }
    case.set_system_out(out);
    case
}

/// Builds the report of `result`.
fn report(result: &TestResult) -> Report {
    let stats = result.stats();
    let secs = result.duration();
    let secs_f = secs.as_secs_f64();
    let mut tests = TestSuite::new("loads");
    tests.set_timestamp(result.started().fixed_offset());
    tests.set_time(secs);
    let problems_of = |name: &str| -> Vec<&Problem> {
        stats.problems.iter().filter(|p| p.test == name).collect()
    };
    for (name, t) in &stats.tests {
        let (suite, test) = name.rsplit_once("::").unwrap_or(("", name.as_str()));
        tests.add_test_case(case_of(suite, test, t, &problems_of(name), "hits", secs_f));
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
    if !stats.scenarios.is_empty() {
        // Problems are kept per test, not per scenario: the cases carry counts and durations.
        let mut suite = TestSuite::new("scenarios");
        suite.set_time(secs);
        for (name, t) in &stats.scenarios {
            suite.add_test_case(case_of("scenarios", name, t, &[], "hits", secs_f));
        }
        report.add_test_suite(suite);
    }
    if !stats.lifecycle.is_empty() {
        let mut suite = TestSuite::new("lifecycle");
        suite.set_time(secs);
        for (name, t) in &stats.lifecycle {
            let (class, hook) = name.rsplit_once("::").unwrap_or(("", name.as_str()));
            suite.add_test_case(case_of(class, hook, t, &problems_of(name), "runs", secs_f));
        }
        report.add_test_suite(suite);
    }
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
