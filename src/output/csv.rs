//! The `csv` output, like Locust's `--csv`: `PREFIX_stats.csv` with a row per URL and method
//! plus an `Aggregated` row (request times in milliseconds, percentiles from the merged HDR
//! histograms), `PREFIX_history.csv` with a row per second of the run, and `PREFIX_tests.csv`
//! with a row per test, per scenario and per lifecycle hook (a `Kind` column says which: `test`,
//! `scenario`, `lifecycle`): outcome counts and hit durations in milliseconds. Written when the
//! run ends.

use std::fs::File;
use std::path::PathBuf;

use super::write_error;
use crate::result::{Observer, OutputError, RequestStats, TestResult, TestStats};

/// Percentile columns of the stats file.
const PERCENTILES: [(f64, &str); 11] = [
    (0.50, "50%"),
    (0.66, "66%"),
    (0.75, "75%"),
    (0.80, "80%"),
    (0.90, "90%"),
    (0.95, "95%"),
    (0.98, "98%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
    (1.0, "100%"),
];

/// Writes the three CSV files.
pub struct CsvOutput {
    files: Option<(File, File, File)>,
    paths: (PathBuf, PathBuf, PathBuf),
}

impl CsvOutput {
    /// An output writing the stats to `stats`, the history to `history` and the per-test
    /// figures to `tests` (opened at `paths`, in that order).
    pub fn new(
        stats: File,
        history: File,
        tests: File,
        paths: (PathBuf, PathBuf, PathBuf),
    ) -> Self {
        CsvOutput {
            files: Some((stats, history, tests)),
            paths,
        }
    }
}

/// The row of one test, scenario or hook in the tests file.
fn test_row(kind: &str, name: &str, t: &TestStats, secs: f64) -> Vec<String> {
    let c = &t.counts;
    let d = &t.duration;
    let q = |v: f64| if d.is_empty() { String::new() } else { ms(v) };
    let mut row = vec![
        kind.to_owned(),
        name.to_owned(),
        c.hits.to_string(),
        c.successes.to_string(),
        c.failures.to_string(),
        c.errors.to_string(),
        if secs > 0.0 {
            format!("{:.3}", c.hits as f64 / secs)
        } else {
            "0".into()
        },
        d.len().to_string(),
        q(d.quantile(0.5) as f64),
        q(d.mean()),
        q(d.0.min() as f64),
        q(d.max() as f64),
    ];
    for (p, _) in PERCENTILES {
        row.push(q(d.quantile(p) as f64));
    }
    row
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

fn stats_row(kind: &str, name: &str, r: &RequestStats, secs: f64) -> Vec<String> {
    let failures = r.http_errors();
    let per_s = |n: u64| {
        if secs > 0.0 {
            format!("{:.3}", n as f64 / secs)
        } else {
            "0".into()
        }
    };
    let l = &r.latency;
    let empty = l.is_empty();
    let q = |v: f64| if empty { "0".into() } else { ms(v) };
    let mut row = vec![
        kind.to_owned(),
        name.to_owned(),
        r.count.to_string(),
        failures.to_string(),
        q(l.quantile(0.5) as f64),
        q(l.mean()),
        q(l.0.min() as f64),
        q(l.max() as f64),
        per_s(r.count),
        per_s(failures),
    ];
    for (p, _) in PERCENTILES {
        row.push(q(l.quantile(p) as f64));
    }
    row
}

fn write_csv(
    file: File,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(file);
    w.write_record(header)?;
    for r in rows {
        w.write_record(&r)?;
    }
    w.flush()?;
    Ok(())
}

impl Observer for CsvOutput {
    fn on_finish(&mut self, result: &TestResult) -> Result<(), OutputError> {
        let Some((stats_file, history_file, tests_file)) = self.files.take() else {
            return Ok(());
        };
        let stats = result.stats();
        let secs = result.duration().as_secs_f64();
        let mut header = vec![
            "Type",
            "Name",
            "Request Count",
            "Failure Count",
            "Median Response Time",
            "Average Response Time",
            "Min Response Time",
            "Max Response Time",
            "Requests/s",
            "Failures/s",
        ];
        header.extend(PERCENTILES.iter().map(|(_, n)| *n));
        let mut rows = Vec::new();
        for (url, methods) in &stats.urls {
            for (method, r) in methods {
                rows.push(stats_row(method, url, r, secs));
            }
        }
        rows.push(stats_row("", "Aggregated", &stats.requests, secs));
        write_csv(stats_file, &header, rows).map_err(|e| write_error("csv", &self.paths.0, e))?;

        let mut header = vec![
            "Kind",
            "Name",
            "Hits",
            "Successes",
            "Failures",
            "Errors",
            "Hits/s",
            "Measured Hits",
            "Median Hit Time",
            "Average Hit Time",
            "Min Hit Time",
            "Max Hit Time",
        ];
        header.extend(PERCENTILES.iter().map(|(_, n)| *n));
        let rows = [
            ("test", &stats.tests),
            ("scenario", &stats.scenarios),
            ("lifecycle", &stats.lifecycle),
        ]
        .into_iter()
        .flat_map(|(kind, m)| m.iter().map(move |(name, t)| test_row(kind, name, t, secs)));
        write_csv(tests_file, &header, rows).map_err(|e| write_error("csv", &self.paths.2, e))?;

        let summary = result.summary();
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        let rows = summary.timeline.iter().map(|s| {
            vec![
                s.time.to_string(),
                s.users.to_string(),
                s.hits.to_string(),
                s.successes.to_string(),
                s.failures.to_string(),
                s.errors.to_string(),
                s.requests.to_string(),
                s.socket_messages.to_string(),
                opt(s.p50),
                opt(s.p95),
                opt(s.p99),
                opt(s.mean),
            ]
        });
        write_csv(
            history_file,
            &[
                "Timestamp",
                "User Count",
                "Hits/s",
                "Successes/s",
                "Failures/s",
                "Errors/s",
                "Requests/s",
                "WebSocket Messages/s",
                "50%",
                "95%",
                "99%",
                "Average Response Time",
            ],
            rows,
        )
        .map_err(|e| write_error("csv", &self.paths.1, e))
    }
}
