//! Outputs: observers of the [`TestResult`] that report a run. Each is
//! chosen by name with `--output NAME` (repeatable) and takes its options as
//! `--output-NAME-OPTION` ([`OutputOptions`]); [`create`] builds one from its name and the run's
//! arguments, and [`build_result`] builds a run's test result with its outputs, thresholds and
//! baseline. Outputs only read the test result, so they work the same for local, distributed
//! and stored runs (`loads report`).
//!
//! File outputs open their file when they are created, so that a path that cannot be written
//! is a usage error before the run starts, not a lost report after it.

mod csv;
mod file;
mod format;
mod html;
mod json;
mod junit;
mod stdout;

pub use stdout::StdoutOutput;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::config::{OutputOptions, ReportArgs, UsageError};
use crate::result::{Observer, OutputError, RunMeta, Summary, TestResult, threshold};

/// The outputs this build knows, with a line of help each.
pub const OUTPUTS: &[(&str, &str)] = &[
    (
        "stdout",
        "live progress on the terminal and a summary at the end (the default)",
    ),
    (
        "html",
        "a self-contained HTML report with charts (--output-html-path, default loads-report.html)",
    ),
    (
        "json",
        "the summary as one JSON document, readable by --baseline (--output-json-path, default loads-summary.json)",
    ),
    (
        "junit",
        "JUnit XML for CI: a test case per test and per threshold (--output-junit-path, default loads-junit.xml)",
    ),
    (
        "csv",
        "PREFIX_stats.csv (per URL), PREFIX_history.csv (per second) and PREFIX_tests.csv (per test, scenario and lifecycle hook) (--output-csv-path PREFIX, default loads)",
    ),
    (
        "file",
        "every event as one JSON line, streamed as it happens (--output-file-path, default loads-events.jsonl)",
    ),
    (
        "null",
        "nothing: for runs whose results are read another way",
    ),
];

/// The usage error for an output name this build does not know.
pub fn unknown_output(name: &str) -> UsageError {
    UsageError::new(
        "--output",
        format!(
            "unknown output {name:?}; available outputs: {}",
            OUTPUTS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// Builds the output called `name` with the output options of `args`. A file output says
/// where it wrote (one line on stderr when it is done) unless the run is quiet (`args`'
/// outputs, resolved, have no `stdout`).
pub fn create(name: &str, args: &ReportArgs) -> Result<Box<dyn Observer>, UsageError> {
    let output = create_quiet(name, args)?;
    let wrote = match name {
        "stdout" | "null" => return Ok(output),
        "html" => "the HTML report",
        "json" => "the JSON summary",
        "junit" => "the JUnit report",
        "csv" => "the CSV files",
        _ => "the events",
    };
    if !args.outputs.iter().any(|o| o == "stdout") {
        return Ok(output);
    }
    let o = &args.output_options;
    let place = match name {
        "html" => o.html_path.clone().unwrap_or("loads-report.html".into()),
        "json" => o.json_path.clone().unwrap_or("loads-summary.json".into()),
        "junit" => o.junit_path.clone().unwrap_or("loads-junit.xml".into()),
        "csv" => {
            let p = o.csv_path.as_deref().unwrap_or("loads");
            format!("{p}_stats.csv, {p}_history.csv and {p}_tests.csv")
        }
        _ => o.file_path.clone().unwrap_or("loads-events.jsonl".into()),
    };
    Ok(Box::new(Announced {
        inner: output,
        line: format!("Wrote {wrote} to {place}"),
    }))
}

/// A file output that says where it wrote once it is done.
struct Announced {
    inner: Box<dyn Observer>,
    line: String,
}

impl Observer for Announced {
    fn on_start(&mut self, result: &TestResult) -> Result<(), OutputError> {
        self.inner.on_start(result)
    }
    fn on_event(&mut self, event: &crate::result::Event, result: &TestResult) {
        self.inner.on_event(event, result)
    }
    fn on_tick(&mut self, result: &TestResult) {
        self.inner.on_tick(result)
    }
    fn on_finish(&mut self, result: &TestResult) -> Result<(), OutputError> {
        self.inner.on_finish(result)?;
        eprintln!("{}", self.line);
        Ok(())
    }
}

/// [`create`], without the line that says where a file output wrote.
fn create_quiet(name: &str, args: &ReportArgs) -> Result<Box<dyn Observer>, UsageError> {
    let o: &OutputOptions = &args.output_options;
    let path = |given: &Option<String>, default: &str| -> PathBuf {
        PathBuf::from(given.as_deref().unwrap_or(default))
    };
    Ok(match name {
        "stdout" => Box::new(StdoutOutput::new()),
        "null" => Box::new(NullOutput),
        "html" => {
            let p = path(&o.html_path, "loads-report.html");
            Box::new(html::HtmlOutput::new(open("html", "html-path", &p)?, p))
        }
        "json" => {
            let p = path(&o.json_path, "loads-summary.json");
            Box::new(json::JsonOutput::new(open("json", "json-path", &p)?, p))
        }
        "junit" => {
            let p = path(&o.junit_path, "loads-junit.xml");
            Box::new(junit::JunitOutput::new(open("junit", "junit-path", &p)?, p))
        }
        "csv" => {
            let prefix = o.csv_path.as_deref().unwrap_or("loads");
            let stats = PathBuf::from(format!("{prefix}_stats.csv"));
            let history = PathBuf::from(format!("{prefix}_history.csv"));
            let tests = PathBuf::from(format!("{prefix}_tests.csv"));
            Box::new(csv::CsvOutput::new(
                open("csv", "csv-path", &stats)?,
                open("csv", "csv-path", &history)?,
                open("csv", "csv-path", &tests)?,
                (stats, history, tests),
            ))
        }
        "file" => {
            let p = path(&o.file_path, "loads-events.jsonl");
            Box::new(file::FileOutput::new(open("file", "file-path", &p)?, p))
        }
        other => return Err(unknown_output(other)),
    })
}

/// Creates (truncates) an output's file now, so that a bad path stops the run before it starts.
fn open(output: &str, option: &str, path: &Path) -> Result<File, UsageError> {
    File::create(path).map_err(|e| {
        UsageError::new(
            format!("--output-{option}"),
            format!(
                "output {output}: cannot write {}: {e}; choose another file with --output-{option}",
                path.display()
            ),
        )
    })
}

/// An output error from an I/O error while writing `path`.
pub(crate) fn write_error(output: &str, path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError {
        output: output.into(),
        message: format!("cannot write {}: {e}", path.display()),
    }
}

/// Builds the test result of a run described by `meta`, with the outputs, thresholds and
/// baseline that `args` asks for. Thresholds come from `args`, or else from `meta` (a stored
/// run's own).
///
/// With `abort_on_threshold`, the result stops the run as soon as a threshold can no longer
/// pass.
pub fn build_result(
    mut meta: RunMeta,
    args: &ReportArgs,
    abort_on_threshold: bool,
) -> Result<TestResult, UsageError> {
    if !args.thresholds.is_empty() {
        meta.thresholds = args.thresholds.clone();
    }
    let thresholds = threshold::parse_all(&meta.thresholds)
        .map_err(|e| UsageError::new("--threshold", e.to_string()))?;
    let baseline = match &args.baseline {
        Some(p) => Some(Summary::read(Path::new(p)).map_err(|e| UsageError::new("--baseline", e))?),
        None => None,
    };
    let mut result = TestResult::new(meta);
    result.set_thresholds(thresholds, abort_on_threshold);
    if let Some(b) = baseline {
        result.set_baseline(b);
    }
    for name in &args.outputs {
        result.add_observer(create(name, args)?);
    }
    // The live dashboard, when `--web` serves one.
    crate::web::attach(&mut result);
    Ok(result)
}

/// The `null` output: reports nothing.
pub struct NullOutput;

impl Observer for NullOutput {}
