//! Results per test, through the real binary against the real demo server on loopback: a mix of
//! two tests gives per-test counts that add up to the run's totals and hit durations that fit
//! what each test does, in every output (stdout, JSON, CSV, JUnit), batched or with raw events;
//! thresholds scoped to a test or a scenario judge those figures.

mod common;

use common::{DemoServer, run_with_limit, stderr, stdout};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh directory for one test's files, under the target directory.
fn workdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("per-test-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create test dir");
    d
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The mix: a test whose request takes 20 ms and one that answers at once, half each.
const MIX: [&str; 3] = ["run", "example::delay_20ms=1", "example::health=1"];

/// Checks the per-test figures of a JSON summary of `hits` hits of [`MIX`].
fn check_tests(j: &Value, hits: u64) {
    assert_eq!(j["hits"], hits, "{j}");
    let tests = j["tests"].as_object().expect("tests");
    assert_eq!(tests.len(), 2, "{j}");
    let sum = |k: &str| -> u64 { tests.values().map(|t| t[k].as_u64().expect(k)).sum() };
    for k in ["hits", "successes", "failures", "errors", "started"] {
        let total = if k == "started" {
            hits
        } else {
            j[k].as_u64().expect(k)
        };
        assert_eq!(sum(k), total, "{k} per test adds up to the run's");
    }
    for (name, t) in tests {
        let d = &t["duration"];
        assert_eq!(
            d["count"], t["hits"],
            "{name}: every hit has a duration: {t}"
        );
        let (p50, p95, p99, max) = (
            d["p50"].as_f64().expect("p50"),
            d["p95"].as_f64().expect("p95"),
            d["p99"].as_f64().expect("p99"),
            d["max"].as_f64().expect("max"),
        );
        assert!(
            0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max,
            "{name}: {d}"
        );
        assert!(max < 10_000.0, "{name}: {d}");
        assert!(t["hits_per_second"].as_f64().expect("rate") > 0.0, "{t}");
    }
    // The test that waits 20 ms for its response takes at least that long, every time; the
    // one that does not is faster in the median.
    let slow = &tests["example::delay_20ms"]["duration"];
    let fast = &tests["example::health"]["duration"];
    assert!(slow["min"].as_f64().expect("min") >= 20.0, "{slow}");
    assert!(
        fast["p50"].as_f64().expect("p50") < slow["p50"].as_f64().expect("p50"),
        "{fast} vs {slow}"
    );
    // No scenarios and no lifecycle hooks in this run.
    assert!(j["scenarios"].as_object().expect("scenarios").is_empty());
    assert!(j["lifecycle"].as_object().expect("lifecycle").is_empty());
}

#[test]
fn a_mix_of_two_tests_has_counts_and_hit_durations_per_test_in_every_output() {
    let server = DemoServer::start();
    let dir = workdir("outputs");
    let mut args = MIX.to_vec();
    let (json, junit, csv) = (
        s(&dir.join("sum.json")),
        s(&dir.join("junit.xml")),
        s(&dir.join("run")),
    );
    args.extend([
        "-u",
        "4",
        "--hits",
        "10",
        "-s",
        &server.url,
        "-o",
        "stdout",
        "-o",
        "json",
        "-o",
        "junit",
        "-o",
        "csv",
        "--output-json-path",
        &json,
        "--output-junit-path",
        &junit,
        "--output-csv-path",
        &csv,
        "--threshold",
        "test=example::delay_20ms p95<10s",
        "--threshold",
        "test=health errors==0",
        "--threshold",
        "test=example::health failures<1%",
        "--threshold",
        "test=example::delay_20ms min<1s",
    ]);
    // `min` is no metric: the run does not start.
    let out = run_with_limit(&args, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown metric \"min\""),
        "{}",
        stderr(&out)
    );
    args.truncate(args.len() - 2);
    let out = run_with_limit(&args, Duration::from_secs(90));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains("3 of 3 thresholds passed"), "{text}");

    // JSON.
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("summary");
    check_tests(&j, 40);

    // stdout: a table of tests beside the table of URLs.
    assert!(text.contains("Requests by URL, paths below "), "{text}");
    assert!(text.contains("\nTests (hit durations"), "{text}");
    for name in ["example::delay_20ms", "example::health"] {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no row of {name}:\n{text}"));
        let hits = j["tests"][name]["hits"].to_string();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], hits, "{row}");
    }

    // CSV: a row per test in PREFIX_tests.csv, the URL file unchanged.
    let mut r = csv::Reader::from_path(dir.join("run_tests.csv")).expect("tests csv");
    let headers = r.headers().expect("headers").clone();
    assert_eq!(&headers[0], "Kind");
    assert_eq!(&headers[2], "Hits");
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(&row[0], "test");
        let t = &j["tests"][&row[1]];
        assert_eq!(
            row[2].parse::<u64>().expect("hits"),
            t["hits"].as_u64().expect("hits")
        );
        let p95: f64 = row[col("95%")].parse().expect("p95");
        let want = t["duration"]["p95"].as_f64().expect("p95");
        assert!((p95 - want).abs() < 0.002, "{p95} vs {want}");
    }
    let urls = csv::Reader::from_path(dir.join("run_stats.csv"))
        .expect("stats csv")
        .records()
        .count();
    assert_eq!(urls, 3, "two URLs and Aggregated");

    // JUnit: figures as properties of each test's case.
    let xml = std::fs::read_to_string(&junit).expect("junit");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("delay_20ms"))
        .unwrap_or_else(|| panic!("{xml}"));
    let prop = |name: &str| -> String {
        case.descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
            .unwrap_or_else(|| panic!("no property {name}: {xml}"))
            .to_owned()
    };
    assert_eq!(
        prop("hits"),
        j["tests"]["example::delay_20ms"]["hits"].to_string()
    );
    assert!(
        prop("duration_p95_ms").parse::<f64>().expect("ms") >= 20.0,
        "{xml}"
    );
    let out = case
        .descendants()
        .find(|n| n.has_tag_name("system-out"))
        .and_then(|n| n.text())
        .unwrap_or_default();
    assert!(out.contains("hit duration: mean"), "{xml}");
}

#[test]
fn raw_events_give_the_same_per_test_figures() {
    let server = DemoServer::start();
    let dir = workdir("raw");
    let json = s(&dir.join("sum.json"));
    let mut args = MIX.to_vec();
    args.extend([
        "-u",
        "3",
        "--hits",
        "6",
        "-s",
        &server.url,
        "--raw-events",
        "-q",
        "-o",
        "json",
        "--output-json-path",
        &json,
    ]);
    let out = run_with_limit(&args, Duration::from_secs(90));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("summary");
    check_tests(&j, 18);
}

#[test]
fn thresholds_on_a_test_judge_its_hit_durations_and_name_what_is_missing() {
    let server = DemoServer::start();
    let with = |thresholds: &[&str]| {
        let mut args = MIX.to_vec();
        args.extend(["-u", "2", "--hits", "5", "-s", &server.url]);
        for t in thresholds {
            args.extend(["--threshold", t]);
        }
        run_with_limit(&args, Duration::from_secs(60))
    };
    // The test's requests wait 20 ms: its hits cannot be under 1 ms.
    let out = with(&[
        "test=example::delay_20ms p95<1ms",
        "test=example::health p95<10s",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(99), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("FAIL  test=example::delay_20ms p95<1ms"),
        "{text}"
    );
    assert!(
        text.contains("pass  test=example::health p95<10s"),
        "{text}"
    );
    assert!(text.contains("FAILED (thresholds)"), "{text}");
    let out = with(&["test=example::delay_20ms p95<10s", "test=delay_20ms hits>0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A test or a scenario the run does not have: refused before any load (it could only
    // fail at the end).
    let out = with(&["test=example::nope hits>0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("names test \"example::nope\", which this run does not have (the run's tests: example::delay_20ms, example::health)"),
        "{}",
        stderr(&out)
    );
    let out = with(&["scenario=admins errors==0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(the run has no scenarios)"),
        "{}",
        stderr(&out)
    );
    // A scope that cannot work is a usage error before any load.
    let out = with(&["test=example::health GET p95<1s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("drop the method and URL"),
        "{}",
        stderr(&out)
    );
}
