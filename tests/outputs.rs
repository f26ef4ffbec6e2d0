//! Integration tests of the outputs, thresholds and baseline: the real `loads` binary against
//! the real demo server on loopback; every file is parsed and its figures checked against the
//! run. The HTML report is opened in a real headless browser (Debian's `chromium`).

mod common;

use common::{DemoServer, run, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A fresh directory for one test's files, under the target directory.
fn workdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("outputs-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create test dir");
    d
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

#[test]
fn json_junit_csv_and_file_outputs_match_the_run() {
    let server = DemoServer::start();
    let dir = workdir("all");
    let out = run(&[
        "run",
        "example::health",
        "-u",
        "3",
        "--hits",
        "4",
        "-s",
        &server.url,
        "--raw-events",
        "-o",
        "stdout",
        "-o",
        "json",
        "-o",
        "junit",
        "-o",
        "csv",
        "-o",
        "file",
        "--output-json-path",
        &s(&dir.join("sum.json")),
        "--output-junit-path",
        &s(&dir.join("junit.xml")),
        "--output-csv-path",
        &s(&dir.join("run")),
        "--output-file-path",
        &s(&dir.join("events.jsonl")),
        "--threshold",
        "hits==12",
        "--threshold",
        "p99<0.001ms",
        "--project-name",
        "outputs-test",
    ]);
    let text = stdout(&out);
    // One threshold fails: its own exit code although every hit succeeded.
    assert_eq!(out.status.code(), Some(99), "{text}\n{}", stderr(&out));
    assert!(text.contains("FAIL  p99<0.001ms"), "{text}");
    assert!(text.contains("pass  hits==12"), "{text}");
    assert!(text.contains("FAILED (thresholds)"), "{text}");

    // JSON summary.
    let j = json(&dir.join("sum.json"));
    assert_eq!(j["format"], 1);
    assert_eq!(j["test"], "example::health");
    assert_eq!(j["project_name"], "outputs-test");
    assert_eq!(j["agents"], 1);
    for (k, v) in [
        ("hits", 12),
        ("successes", 12),
        ("failures", 0),
        ("errors", 0),
        ("requests", 12),
    ] {
        assert_eq!(j[k], v, "{k} in {j}");
    }
    assert!(j["duration"].as_f64().expect("duration") > 0.0);
    assert!(j["rps"].as_f64().expect("rps") > 0.0);
    let l = &j["latency"];
    assert_eq!(l["count"], 12);
    let (p50, p99, max) = (
        l["p50"].as_f64().expect("p50"),
        l["p99"].as_f64().expect("p99"),
        l["max"].as_f64().expect("max"),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{l}");
    let urls = j["urls"].as_array().expect("urls");
    assert_eq!(urls.len(), 1, "{j}");
    assert_eq!(urls[0]["method"], "GET");
    assert!(urls[0]["url"].as_str().expect("url").ends_with("/health"));
    assert_eq!(urls[0]["requests"], 12);
    assert_eq!(urls[0]["statuses"]["200"], 12);
    assert_eq!(j["sockets"]["opened"], 0);
    assert!(j["counters"].as_object().expect("counters").is_empty());
    let th = j["thresholds"].as_array().expect("thresholds");
    assert_eq!(th.len(), 2);
    assert_eq!(th[0]["expression"], "hits==12");
    assert_eq!(th[0]["pass"], true);
    assert_eq!(th[0]["actual"], 12.0);
    assert_eq!(th[1]["pass"], false);
    assert_eq!(j["success"], false);
    let hist: u64 = j["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["requests"].as_u64().expect("requests"))
        .sum();
    assert_eq!(hist, 12);

    // JUnit XML.
    let xml = std::fs::read_to_string(dir.join("junit.xml")).expect("junit");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let health = cases
        .iter()
        .find(|c| c.attribute("name") == Some("health"))
        .unwrap_or_else(|| panic!("{xml}"));
    assert_eq!(health.attribute("classname"), Some("example"));
    assert!(!health.children().any(|c| c.has_tag_name("failure")));
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| c.children().any(|x| x.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap_or_default())
        .collect();
    assert_eq!(failed, vec!["p99<0.001ms"], "{xml}");
    assert!(
        cases
            .iter()
            .any(|c| c.attribute("name") == Some("hits==12"))
    );

    // CSV.
    let mut r = csv::Reader::from_path(dir.join("run_stats.csv")).expect("stats csv");
    let headers = r.headers().expect("headers").clone();
    assert_eq!(&headers[0], "Type");
    assert_eq!(&headers[2], "Request Count");
    assert_eq!(&headers[headers.len() - 1], "100%");
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
    assert_eq!(rows.len(), 2, "one URL and Aggregated");
    assert_eq!(&rows[0][0], "GET");
    assert_eq!(&rows[0][2], "12");
    assert_eq!(&rows[1][1], "Aggregated");
    assert_eq!(&rows[1][2], "12");
    assert_eq!(&rows[1][3], "0");
    let median: f64 = rows[1][4].parse().expect("median");
    assert!((median - p50).abs() < 0.002, "{median} vs {p50}");
    let mut h = csv::Reader::from_path(dir.join("run_history.csv")).expect("history csv");
    let total: u64 = h
        .records()
        .map(|x| x.expect("row")[6].parse::<u64>().expect("requests/s"))
        .sum();
    assert_eq!(total, 12);

    // Event file: with --raw-events, one line per event.
    let lines = std::fs::read_to_string(dir.join("events.jsonl")).expect("events");
    let events: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let count = |t: &str| events.iter().filter(|e| e["data_type"] == t).count();
    assert_eq!(count("add_hit"), 12, "{lines}");
    assert_eq!(count("addSuccess"), 12);
    assert_eq!(count("startTest"), 12);
    assert_eq!(count("startTestRun"), 1);
    assert_eq!(count("stopTestRun"), 1);
}

#[test]
fn failures_reach_junit_and_json_with_their_messages() {
    let server = DemoServer::start();
    let dir = workdir("failing");
    let out = run(&[
        "run",
        "example::failing",
        "-u",
        "2",
        "--hits",
        "3",
        "-s",
        &server.url,
        "-q",
        "-o",
        "json",
        "-o",
        "junit",
        "--output-json-path",
        &s(&dir.join("sum.json")),
        "--output-junit-path",
        &s(&dir.join("junit.xml")),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json(&dir.join("sum.json"));
    assert_eq!(j["failures"], 6);
    assert_eq!(j["problems"][0]["count"], 6);
    assert_eq!(j["problems"][0]["outcome"], "failure");
    assert!(
        j["problems"][0]["message"]
            .as_str()
            .expect("message")
            .contains("unavailable")
    );
    assert_eq!(j["urls"][0]["http_errors"], 6);
    let xml = std::fs::read_to_string(dir.join("junit.xml")).expect("junit");
    let doc = roxmltree::Document::parse(&xml).expect("xml");
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap_or_else(|| panic!("{xml}"));
    let message = failure.attribute("message").expect("message");
    assert!(message.starts_with("6 of 6 hits failed"), "{message}");
    assert!(message.contains("unavailable"), "{message}");
    assert_eq!(
        failure.parent().and_then(|p| p.attribute("name")),
        Some("failing")
    );
}

#[test]
fn thresholds_exit_codes_bad_expressions_and_early_abort() {
    let server = DemoServer::start();
    let base = ["run", "example::health", "-u", "2", "--hits", "5", "-s"];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.push(&server.url);
        a.extend_from_slice(extra);
        run(&a)
    };
    let pass = with(&[
        "--threshold",
        "p95<10s",
        "--threshold",
        "errors<1%",
        "--threshold",
        "GET /health requests==10",
        "--threshold",
        "rps>0",
    ]);
    assert_eq!(pass.status.code(), Some(0), "{}", stdout(&pass));
    assert!(stdout(&pass).contains("4 of 4 thresholds passed"));
    let fail = with(&["--threshold", "GET /health requests<10"]);
    assert_eq!(fail.status.code(), Some(99), "{}", stdout(&fail));
    let bad = with(&["--threshold", "p95<fast"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = stderr(&bad);
    assert!(
        err.contains("invalid threshold \"p95<fast\"") && err.contains("200ms"),
        "{err}"
    );

    // From the config file too.
    let dir = workdir("thresholds");
    let cfg = dir.join("loads.toml");
    std::fs::write(&cfg, "threshold = [\"failures==0\", \"max<1ms\"]\n").expect("config");
    let cfgrun = with(&["-c", &s(&cfg), "--threshold", "hits==10"]);
    // The command line replaces the file's list.
    assert_eq!(cfgrun.status.code(), Some(0), "{}", stdout(&cfgrun));
    let cfgrun = with(&["-c", &s(&cfg)]);
    let t = stdout(&cfgrun);
    assert!(t.contains("pass  failures==0"), "{t}");

    // A failing test with an abort on failures stops within a second, not after 30 s.
    let started = Instant::now();
    let out = run(&[
        "run",
        "example::failing",
        "-u",
        "2",
        "-d",
        "30s",
        "-s",
        &server.url,
        "--threshold",
        "failures<5",
        "--abort-on-threshold",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(99), "{text}{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(15), "{text}");
    assert!(
        text.contains("Aborted:       threshold failures<5 can no longer pass"),
        "{text}"
    );
    assert!(text.contains("ABORTED (threshold)"), "{text}");
}

#[test]
fn baseline_deltas_in_the_summary_and_html() {
    let server = DemoServer::start();
    let dir = workdir("baseline");
    let base = s(&dir.join("base.json"));
    let first = run(&[
        "run",
        "example::health",
        "-u",
        "2",
        "--hits",
        "20",
        "-s",
        &server.url,
        "-q",
        "-o",
        "json",
        "--output-json-path",
        &base,
    ]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let html = s(&dir.join("r.html"));
    let second = run(&[
        "run",
        "example::health",
        "-u",
        "2",
        "--hits",
        "10",
        "-s",
        &server.url,
        "--baseline",
        &base,
        "-o",
        "stdout",
        "-o",
        "html",
        "--output-html-path",
        &html,
    ]);
    let text = stdout(&second);
    assert_eq!(second.status.code(), Some(0), "{text}{}", stderr(&second));
    assert!(text.contains("Against the baseline"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("rps "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains('%'), "{row}");
    // 2 × 20 hits then 2 × 10: the plans differ, and the summary says so.
    assert!(
        text.contains("warning: the baseline ran another load (plan"),
        "{text}"
    );
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("id=\"baseline\""));

    // A file that is not a summary is a usage error before the run.
    let bogus = dir.join("bogus.json");
    std::fs::write(&bogus, "{\"hello\": 1}").expect("write");
    let out = run(&[
        "run",
        "example::health",
        "-s",
        &server.url,
        "--baseline",
        &s(&bogus),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--output json"), "{}", stderr(&out));
}

#[test]
fn an_output_path_that_cannot_be_written_stops_before_the_run() {
    let out = run(&[
        "run",
        "example::health",
        "-o",
        "json",
        "--output-json-path",
        "/nonexistent-dir/x.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("cannot write /nonexistent-dir/x.json") && err.contains("--output-json-path"),
        "{err}"
    );
    let out = run(&["run", "example::health", "-o", "pdf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("available outputs: stdout, html, json"));
}

/// Chromium: the tests that call this are ignored when the build found none (build.rs), so a
/// missing one here is a failure, not a skip.
fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("no chromium, although the build found one: apt install chromium, or rebuild (cargo clean -p loads) so that this test shows as ignored")
}

/// Loads `page` in headless chromium: the DOM after scripts ran, and the console messages.
fn browse(browser: &str, page: &Path, screenshot: Option<&Path>) -> (String, String) {
    let url = format!("file://{}", page.display());
    let profile = page.with_extension("profile");
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1300,2600",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match screenshot {
        Some(p) => c.arg(format!("--screenshot={}", p.display())),
        None => c.arg("--dump-dom"),
    };
    let child = c
        .arg(&url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(o) => o.expect("chromium output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("chromium did not finish within 90 s");
        }
    };
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Console errors in chromium's log.
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("CONSOLE")
                && (l.contains("Uncaught") || l.contains("Error") || l.contains("error"))
        })
        .collect()
}

#[test]
#[cfg_attr(
    loads_no_chromium,
    ignore = "needs chromium (.ci/run installs it: apt install chromium)"
)]
fn html_report_opens_in_a_headless_browser_with_charts_and_no_errors() {
    let browser = chromium();
    let dir = workdir("html");
    // The detector sees a console error when there is one.
    let broken = dir.join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><html><body><script>notAFunction();</script></body></html>",
    )
    .expect("write");
    let (_, log) = browse(browser, &broken, None);
    assert!(
        !console_errors(&log).is_empty(),
        "a broken page must show a console error:\n{log}"
    );

    let server = DemoServer::start();
    let html = dir.join("report.html");
    let out = run(&[
        "run",
        "example::volume",
        "-u",
        "3",
        "-d",
        "3s",
        "-s",
        &server.url,
        "-q",
        "-o",
        "html",
        "--output-html-path",
        &s(&html),
        "--threshold",
        "failures==0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (dom, log) = browse(browser, &html, None);
    assert!(console_errors(&log).is_empty(), "console errors:\n{log}");
    // The inline script ran to its end.
    assert!(dom.contains("data-ready=\"1\""), "{dom}");
    // Six uPlot charts (five over time, the latency spectrum), each a canvas with its points.
    for i in 0..6 {
        let at = dom
            .find(&format!("id=\"chart-{i}\""))
            .unwrap_or_else(|| panic!("no chart {i}"));
        let chart = &dom[at..];
        let chart = &chart[..chart.find("</canvas>").expect("a canvas")];
        let points: usize = chart
            .split("data-points=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|n| n.parse().ok())
            .expect("data-points");
        assert!(points >= 3, "chart {i} has {points} points");
        assert!(
            chart.contains("class=\"uplot"),
            "chart {i} is no uPlot chart"
        );
    }
    assert!(!dom.contains("id=\"chart-6\""));
    assert!(dom.contains("example::volume"));
    assert!(dom.contains("items-created"), "counters");
    assert!(dom.contains("failures==0"));
    assert!(dom.contains("opened"));
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shot = artifacts.join("html-report.png");
    let _ = std::fs::remove_file(&shot);
    let (_, log) = browse(browser, &html, Some(&shot));
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} ({size} bytes)\n{log}",
        shot.display()
    );
    eprintln!("screenshot saved to {}", shot.display());
}
