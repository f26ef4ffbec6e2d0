//! Plain-text rendering of a test result: the end-of-run summary and the number formats that
//! every text output shares.

use std::fmt::Write as _;

pub use crate::config::units::{format_bytes, format_micros};
use std::collections::BTreeMap;

use crate::result::{ProblemKind, RequestStats, TestResult, TestStats};

/// The unit a column of times whose largest is `max_us` µs is shown in: µs per unit and name.
fn time_unit(max_us: u64) -> (f64, &'static str) {
    if max_us >= 1_000_000 {
        (1e6, "s")
    } else if max_us >= 1_000 {
        (1e3, "ms")
    } else {
        (1.0, "µs")
    }
}

/// `n` and the word for it: `1 success`, `2 successes`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Text from tests or the network, without control characters (but for newlines and tabs), so
/// that it cannot move the cursor or colour the terminal.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn latency_line(r: &RequestStats) -> String {
    if r.count == 0 {
        return "no requests".into();
    }
    histogram_line(&r.latency)
}

fn histogram_line(l: &crate::result::Latency) -> String {
    if l.is_empty() {
        return "none".into();
    }
    format!(
        "mean {} · p50 {} · p90 {} · p95 {} · p99 {} · max {}",
        format_micros(l.mean()),
        format_micros(l.quantile(0.50) as f64),
        format_micros(l.quantile(0.90) as f64),
        format_micros(l.quantile(0.95) as f64),
        format_micros(l.quantile(0.99) as f64),
        format_micros(l.max() as f64),
    )
}

fn statuses(r: &RequestStats) -> String {
    r.statuses
        .iter()
        .map(|(s, n)| {
            if *s == 0 {
                format!("none×{n}")
            } else {
                format!("{s}×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lays out rows under headers, columns padded to their widest cell (the first two left-aligned).
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    table_aligned(headers, rows, 2)
}

/// [`table`] with the first `left` columns left-aligned.
fn table_aligned(headers: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut s = String::from("  ");
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if i < left {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            }
            s.push_str("  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied(), &mut out);
    for row in rows {
        line(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}

/// Rows of the URL table shown at most.
const MAX_URL_ROWS: usize = 20;
/// Rows of each table of tests, scenarios or hooks shown at most.
const MAX_TEST_ROWS: usize = 20;

/// The table of a map of per-test figures (tests, scenarios or lifecycle hooks): outcome
/// counts and hit durations; `runs` names the count (`HITS`, or `RUNS` for hooks).
fn per_test_table(
    o: &mut String,
    title: &str,
    what: &str,
    runs: &str,
    m: &BTreeMap<String, TestStats>,
    secs: f64,
) {
    let shown: Vec<(&String, &TestStats)> = m.iter().filter(|(_, t)| !t.is_empty()).collect();
    if shown.is_empty() {
        return;
    }
    let q = |t: &TestStats, p: f64| {
        if t.duration.is_empty() {
            "-".to_owned()
        } else if p >= 1.0 {
            format_micros(t.duration.max() as f64)
        } else {
            format_micros(t.duration.quantile(p) as f64)
        }
    };
    let rows: Vec<Vec<String>> = shown
        .iter()
        .take(MAX_TEST_ROWS)
        .map(|(name, t)| {
            let c = &t.counts;
            vec![
                clean(name),
                c.hits.to_string(),
                format!("{:.1}", rate(c.hits, secs)),
                c.successes.to_string(),
                c.failures.to_string(),
                c.errors.to_string(),
                q(t, 0.50),
                q(t, 0.90),
                q(t, 0.95),
                q(t, 0.99),
                q(t, 1.0),
            ]
        })
        .collect();
    let _ = writeln!(o, "\n{title}:");
    let per_s = format!("{runs}/S");
    o.push_str(&table_aligned(
        &[
            what, runs, &per_s, "OK", "FAILURES", "ERRORS", "P50", "P90", "P95", "P99", "MAX",
        ],
        &rows,
        1,
    ));
    if shown.len() > MAX_TEST_ROWS {
        let _ = writeln!(o, "  … and {} more", shown.len() - MAX_TEST_ROWS);
    }
}
/// From this many URLs on, the slowest are shown first.
const SORT_SLOWEST_FROM: usize = 8;

/// The end-of-run summary, as plain text without control codes.
pub fn render_summary(result: &TestResult) -> String {
    let meta = result.meta();
    let stats = result.stats();
    let totals = result.totals();
    let secs = result.duration().as_secs_f64();
    let mut o = String::new();
    let _ = writeln!(o, "Summary of {} ({})", meta.test, meta.plan);
    if result.interrupted() {
        let _ = writeln!(
            o,
            "Interrupted:   the run was stopped before the end of its plan"
        );
    }
    if let Some(p) = &meta.project_name {
        let _ = writeln!(o, "Project:       {p}");
    }
    if let Some(u) = &meta.server_url {
        let _ = writeln!(o, "Server URL:    {u}");
    }
    let _ = writeln!(o, "Run id:        {}", meta.run_id);
    let _ = writeln!(
        o,
        "Started:       {}",
        result.started().format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(o, "Duration:      {secs:.2} s");
    let _ = writeln!(
        o,
        "Hits:          {} ({:.1} hits/s; test runs, each may make several requests)",
        totals.hits,
        rate(totals.hits, secs)
    );
    let _ = writeln!(o, "Successes:     {}", totals.successes);
    let _ = writeln!(o, "Failures:      {}", totals.failures);
    let _ = writeln!(o, "Errors:        {}", totals.errors);
    let _ = writeln!(
        o,
        "Requests:      {} ({:.1} req/s)",
        stats.requests.count,
        rate(stats.requests.count, secs)
    );
    match &stats.open {
        None => {
            let _ = writeln!(o, "Request time:  {}", latency_line(&stats.requests));
        }
        Some(open) => {
            // The open model: times from each hit's intended start, the uncorrected ones beside.
            let _ = writeln!(
                o,
                "Request time:  {} (from each hit's intended start)",
                latency_line(&stats.requests)
            );
            let _ = writeln!(
                o,
                "  uncorrected: {}",
                histogram_line(&open.requests_uncorrected)
            );
            let _ = writeln!(
                o,
                "Hit time:      {} (from the intended start)",
                histogram_line(&open.hits)
            );
            let _ = writeln!(
                o,
                "  uncorrected: {}",
                histogram_line(&open.hits_uncorrected)
            );
            let _ = if open.dropped == 0 {
                writeln!(o, "Dropped:       0 starts")
            } else {
                writeln!(
                    o,
                    "Dropped:       {} starts (no free virtual user in time, or its on_start failed; raise --max-users, or see the Users table)",
                    open.dropped
                )
            };
        }
    }
    let sk = &stats.sockets;
    // A run without WebSockets has no WebSocket line.
    if sk.opened > 0 || sk.messages_received > 0 || sk.messages_sent > 0 {
        let _ = writeln!(
            o,
            "WebSockets:    {} opened · {} closed · {} messages received ({}) · {} sent ({})",
            sk.opened,
            sk.closed,
            sk.messages_received,
            format_bytes(sk.bytes_received),
            sk.messages_sent,
            format_bytes(sk.bytes_sent)
        );
    }

    for (kind, title) in [
        (ProblemKind::Failure, "failures"),
        (ProblemKind::Error, "errors"),
    ] {
        let mut problems: Vec<_> = stats
            .problems
            .iter()
            .filter(|p| p.outcome == kind)
            .collect();
        if problems.is_empty() {
            continue;
        }
        problems.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.message.cmp(&b.message))
        });
        let shown = problems.len().min(3);
        let _ = writeln!(
            o,
            "\nMost frequent {title} ({shown} of {} distinct):",
            problems.len()
        );
        for p in problems.iter().take(3) {
            let message = clean(&p.message);
            let mut lines = message.lines();
            let _ = writeln!(
                o,
                "  {}× in {} [{}]: {}",
                p.count,
                clean(&p.test),
                clean(&p.kind),
                lines.next().unwrap_or("")
            );
            for l in lines {
                let _ = writeln!(o, "      {l}");
            }
            for l in clean(&p.traceback).lines().take(12) {
                let _ = writeln!(o, "      {l}");
            }
        }
    }
    if stats.problems_dropped > 0 {
        let _ = writeln!(
            o,
            "  ({} more failures/errors with other messages were counted but not kept)",
            stats.problems_dropped
        );
    }

    let mut urls: Vec<(&str, &str, &RequestStats)> = stats
        .urls
        .iter()
        .flat_map(|(u, m)| {
            m.iter()
                .map(move |(method, r)| (method.as_str(), u.as_str(), r))
        })
        .filter(|(_, _, r)| r.count > 0)
        .collect();
    if !urls.is_empty() {
        let many = urls.len() >= SORT_SLOWEST_FROM;
        if many {
            urls.sort_by_key(|u| std::cmp::Reverse(u.2.latency.quantile(0.95)));
        }
        // URLs below the server URL by their path (as named requests are), and one unit for
        // all the time columns, so that a column reads at a glance.
        let base = result
            .meta()
            .server_url
            .as_deref()
            .map(|b| b.trim_end_matches('/').to_owned());
        let shown = |u: &str| -> String {
            match base.as_deref().and_then(|b| u.strip_prefix(b)) {
                Some(path) if path.starts_with('/') || path.is_empty() => {
                    if path.is_empty() {
                        "/".into()
                    } else {
                        path.to_owned()
                    }
                }
                _ => u.to_owned(),
            }
        };
        let slowest = urls
            .iter()
            .take(MAX_URL_ROWS)
            .map(|(_, _, r)| r.latency.max())
            .max()
            .unwrap_or(0);
        let (per, unit) = time_unit(slowest);
        let t = |us: f64| format!("{:.2} {unit}", us / per);
        let rows: Vec<Vec<String>> = urls
            .iter()
            .take(MAX_URL_ROWS)
            .map(|(m, u, r)| {
                let l = &r.latency;
                vec![
                    m.to_string(),
                    clean(&shown(u)),
                    r.count.to_string(),
                    format!("{:.1}", rate(r.count, secs)),
                    statuses(r),
                    t(l.mean()),
                    t(l.quantile(0.5) as f64),
                    t(l.quantile(0.95) as f64),
                    t(l.quantile(0.99) as f64),
                    t(l.max() as f64),
                    format!("{:.1}%", 100.0 * r.successes() as f64 / r.count as f64),
                ]
            })
            .collect();
        let below = match &base {
            Some(b) => format!(", paths below {}", clean(b)),
            None => String::new(),
        };
        let _ = writeln!(
            o,
            "\nRequests by URL{}{below}:",
            if many { " (slowest first)" } else { "" }
        );
        o.push_str(&table(
            &[
                "METHOD", "URL", "COUNT", "REQ/S", "STATUS", "MEAN", "P50", "P95", "P99", "MAX",
                "OK",
            ],
            &rows,
        ));
        if urls.len() > MAX_URL_ROWS {
            let _ = writeln!(o, "  … and {} more", urls.len() - MAX_URL_ROWS);
        }
    }

    per_test_table(
        &mut o,
        "Tests (hit durations: each hit's whole time, set-up and tear-down included)",
        "TEST",
        "HITS",
        &stats.tests,
        secs,
    );
    per_test_table(
        &mut o,
        "Scenarios",
        "SCENARIO",
        "HITS",
        &stats.scenarios,
        secs,
    );
    per_test_table(
        &mut o,
        "Users (lifecycle hooks, not hits)",
        "HOOK",
        "RUNS",
        &stats.lifecycle,
        secs,
    );

    // A cluster run: each agent's share of the hits.
    let agents = result.per_agent();
    if !agents.is_empty() {
        let _ = writeln!(o, "\nAgents:");
        let rows: Vec<Vec<String>> = agents
            .iter()
            .map(|a| {
                vec![
                    clean(&a.id),
                    clean(&a.hostname),
                    a.hits.to_string(),
                    format!("{:.1}%", 100.0 * a.share),
                    if a.lost { "lost".into() } else { String::new() },
                ]
            })
            .collect();
        o.push_str(&table(&["AGENT", "HOST", "HITS", "SHARE", ""], &rows));
    }

    let counters: Vec<Vec<String>> = stats
        .counters
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| vec![k.clone(), n.to_string()])
        .collect();
    if !counters.is_empty() {
        let _ = writeln!(o, "\nCounters:");
        o.push_str(&table(&["NAME", "VALUE"], &counters));
    }
    if !result.run_problems().is_empty() {
        let _ = writeln!(o, "\nProblems of the run:");
        for p in result.run_problems() {
            let _ = writeln!(o, "  {}", clean(p));
        }
    }
    let deltas = result.baseline_deltas();
    if let Some(b) = result.baseline() {
        let _ = writeln!(
            o,
            "\nAgainst the baseline (run {} of {}, {}):",
            clean(&b.run_id),
            clean(&b.test),
            clean(&b.started)
        );
        let rows: Vec<Vec<String>> = deltas
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    format_delta_value(d.current, &d.unit),
                    format_delta_value(d.baseline, &d.unit),
                    d.change_text(),
                    match d.better {
                        Some(true) => "better".into(),
                        Some(false) => "worse".into(),
                        None => "same".into(),
                    },
                ]
            })
            .collect();
        o.push_str(&table(&["FIGURE", "NOW", "BASELINE", "CHANGE", ""], &rows));
        // Figures of different tests or plans are not comparable: say so beside them.
        let meta = result.meta();
        let mut differs = Vec::new();
        if b.test != meta.test {
            differs.push(format!(
                "test {:?} vs {:?}",
                clean(&meta.test),
                clean(&b.test)
            ));
        }
        if b.plan != meta.plan {
            differs.push(format!(
                "plan {:?} vs {:?}",
                clean(&meta.plan),
                clean(&b.plan)
            ));
        }
        if b.agents != meta.agents {
            differs.push(format!("{} vs {} agents", meta.agents, b.agents));
        }
        if !differs.is_empty() {
            let _ = writeln!(
                o,
                "  warning: the baseline ran another load ({}): its figures may not compare",
                differs.join("; ")
            );
        }
    }
    let verdicts = result.verdicts();
    if !verdicts.is_empty() {
        let _ = writeln!(o, "\nThresholds:");
        let rows: Vec<Vec<String>> = verdicts
            .iter()
            .map(|v| {
                vec![
                    if v.pass { "pass" } else { "FAIL" }.to_string(),
                    clean(&v.expression),
                    v.actual_text.clone(),
                ]
            })
            .collect();
        o.push_str(&table(&["", "THRESHOLD", "ACTUAL"], &rows));
    }
    if let Some(why) = result.aborted() {
        let _ = writeln!(o, "\nAborted:       {}", clean(why));
    }
    let thresholds_failed = verdicts.iter().any(|v| !v.pass);
    let verdict = if result.interrupted() {
        "INTERRUPTED"
    } else if result.aborted().is_some() {
        "ABORTED (threshold)"
    } else if thresholds_failed {
        "FAILED (thresholds)"
    } else if result.is_success() {
        "OK"
    } else {
        "FAILED"
    };
    let _ = writeln!(
        o,
        "\nResult:        {verdict} ({}, {}, {}{}{})",
        counted(totals.successes, "success", "successes"),
        counted(totals.failures, "failure", "failures"),
        counted(totals.errors, "error", "errors"),
        match stats.lifecycle_problems() {
            0 => String::new(),
            n => format!(
                "; {}",
                counted(n, "failed lifecycle hook run", "failed lifecycle hook runs")
            ),
        },
        if verdicts.is_empty() {
            String::new()
        } else {
            format!(
                "; {} of {} thresholds passed",
                verdicts.iter().filter(|v| v.pass).count(),
                verdicts.len()
            )
        }
    );
    o
}

fn format_delta_value(v: f64, unit: &str) -> String {
    match unit {
        "ms" => format_micros(v * 1000.0),
        "/s" => format!("{v:.1}/s"),
        _ => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_human() {
        assert_eq!(format_micros(850.0), "850 µs");
        assert_eq!(format_micros(1234.0), "1.23 ms");
        assert_eq!(format_micros(2_500_000.0), "2.50 s");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(clean("a\x1b[31mb\r\nc\td"), "a\u{fffd}[31mb\u{fffd}\nc\td");
    }

    #[test]
    fn the_summary_has_tables_per_test_scenario_and_hook() {
        use crate::result::{Event, EventSink, Hit, HitOutcome, RunMeta, Stats};
        let mut r = TestResult::new(RunMeta::default());
        let mut st = Stats::default();
        for ms in [10u64, 20, 30] {
            st.record_hit(&Hit {
                test: "blog::checkout\x1b[31m",
                scenario: Some("buyers"),
                micros: Some(ms * 1000),
                second: 1,
                outcome: HitOutcome::Success,
            });
        }
        st.record_hook(
            "blog::on_start",
            12_000,
            &HitOutcome::Problem {
                outcome: ProblemKind::Failure,
                message: "no token",
                kind: "ensure",
                traceback: "",
            },
        );
        r.start();
        r.ingest(Event::Batch(Box::new(st)));
        r.finish();
        let text = render_summary(&r);
        let row = |first: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(first))
                .unwrap_or_else(|| panic!("no {first} row in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(text.contains("\nTests (hit durations"), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        let checkout = row("blog::checkout\u{fffd}[31m");
        let cells: Vec<&str> = checkout.split(' ').collect();
        // Name, hits, hits/s, ok, failures, errors, then p50 p90 p95 p99 max (value and unit).
        assert_eq!(cells.len(), 16, "{checkout}");
        assert_eq!(
            (cells[1], cells[3], cells[4], cells[5]),
            ("3", "3", "0", "0")
        );
        assert!(
            cells[6].starts_with("20.0") && cells[7] == "ms",
            "{checkout}"
        );
        assert!(
            cells[14].starts_with("30.0") && cells[15] == "ms",
            "{checkout}"
        );
        assert!(text.contains("\nScenarios:"), "{text}");
        assert!(row("buyers").starts_with("buyers 3 "), "{text}");
        assert!(
            text.contains("\nUsers (lifecycle hooks, not hits):"),
            "{text}"
        );
        let hook = row("blog::on_start");
        assert!(hook.starts_with("blog::on_start 1 "), "{hook}");
        assert!(hook.contains(" 12.0"), "{hook}");
        // Hooks are not hits, but a failed one fails the run.
        assert!(text.contains("Hits:          3 "), "{text}");
        assert!(
            text.contains(
                "FAILED (3 successes, 0 failures, 0 errors; 1 failed lifecycle hook run)"
            ),
            "{text}"
        );
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "B", "N"],
            &[vec!["x".into(), "long".into(), "1".into()]],
        );
        assert_eq!(t, "  A  B     N\n  x  long  1\n");
    }
}
