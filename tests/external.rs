//! Integration tests of external runners: the real `loads` binary running test programs in
//! other languages. `tests/external/raw_runner.py` follows the protocol by hand (pyzmq only);
//! the Python client (`clients/python`) runs a unittest-style TestCase against the real demo
//! server. They need a Python with pyzmq and requests: `LOADS_TEST_PYTHON` (default `python3`);
//! `.ci/run` makes a virtual environment and sets `LOADS_REQUIRE_PYTHON=1`, so that a missing
//! one fails there instead of skipping. Runners that need nothing else are this test binary
//! itself (`self_runner`), started by loads as any runner is.

mod common;

use common::{DemoServer, figure, python, run_with_limit, stderr, stdout};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn raw_runner(py: &str, mode: &str) -> String {
    format!(
        "{py} {} {{test}} {mode}",
        repo().join("tests/external/raw_runner.py").display()
    )
}

fn summary_json(dir: &Path, name: &str) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).expect("dir");
    let p = dir.join(format!("{name}.json"));
    let s = p.display().to_string();
    (p, s)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("external-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("summary")).expect("json")
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn a_hand_written_runner_gives_exact_counts() {
    let py = python();
    let dir = tmpdir("exact");
    let (path, p) = summary_json(&dir, "sum");
    // Two cycle steps: 2 users × 4 hits, then 3 users × 4 hits.
    let out = run_with_limit(
        &[
            "run",
            "raw.exact",
            "--test-runner",
            &raw_runner(&py, ""),
            "-u",
            "2:3",
            "--hits",
            "4",
            "-o",
            "stdout",
            "-o",
            "json",
            "--output-json-path",
            &p,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let j = read_json(&path);
    // Per user and 4 hits: successes h=1,4; failures h=2; errors h=3.
    for (k, v) in [
        ("hits", 20),
        ("successes", 10),
        ("failures", 5),
        ("errors", 5),
        ("requests", 20),
    ] {
        assert_eq!(j[k], v, "{k}: {text}");
    }
    assert_eq!(j["tests"]["raw.exact"]["started"], 20);
    assert_eq!(j["counters"]["raw"], 20);
    assert_eq!(j["sockets"]["opened"], 5);
    assert_eq!(j["sockets"]["closed"], 5);
    assert_eq!(j["sockets"]["messages_received"], 5);
    assert_eq!(j["sockets"]["bytes_received"], 50);
    assert_eq!(j["urls"][0]["url"], "http://127.0.0.1/raw");
    assert!(j["run_problems"].as_array().expect("problems").is_empty());
    let kinds: Vec<&str> = j["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["kind"].as_str().unwrap_or_default())
        .collect();
    assert!(kinds.contains(&"AssertionError") && kinds.contains(&"RuntimeError"));
    // The active users follow the steps.
    let users: Vec<u64> = j["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["users"].as_u64().unwrap_or(0))
        .collect();
    assert!(users.iter().all(|u| *u <= 3), "{users:?}");
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn malformed_messages_are_counted_and_the_run_goes_on() {
    let py = python();
    let dir = tmpdir("malformed");
    let (path, p) = summary_json(&dir, "sum");
    let out = run_with_limit(
        &[
            "run",
            "raw.bad",
            "--test-runner",
            &raw_runner(&py, "malformed"),
            "-u",
            "2",
            "--hits",
            "3",
            "-o",
            "stdout",
            "-o",
            "json",
            "--output-json-path",
            &p,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let j = read_json(&path);
    // Every valid event of this run is there; the others are not.
    assert_eq!(j["hits"], 6, "{text}");
    assert_eq!(j["successes"], 2);
    assert_eq!(j["failures"], 2);
    assert_eq!(j["errors"], 2);
    assert_eq!(j["counters"]["raw"], 6);
    assert!(
        text.contains("the receiver ignored 8 malformed message(s)"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("ignored 2 message(s) of another run"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn batch_messages_and_unknown_fields_are_accepted() {
    let py = python();
    let dir = tmpdir("batch");
    let (path, p) = summary_json(&dir, "sum");
    let out = run_with_limit(
        &[
            "run",
            "raw.b",
            "--test-runner",
            &raw_runner(&py, "batch"),
            "-u",
            "2",
            "--hits",
            "3",
            "-o",
            "json",
            "--output-json-path",
            &p,
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = read_json(&path);
    // 2 users × 3 hits of raw.b, plus 2 × 2 successful hits of raw.batched from the batches.
    assert_eq!(j["hits"], 10, "{j}");
    assert_eq!(j["successes"], 6);
    assert_eq!(j["tests"]["raw.batched"]["hits"], 4);
    assert_eq!(j["counters"]["batched"], 10);
    assert_eq!(j["counters"]["raw"], 6);
    assert_eq!(j["requests"], 6);
    assert!(
        j["run_problems"].as_array().expect("array").is_empty(),
        "{j}"
    );
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn a_runner_that_ignores_sigterm_is_killed() {
    let py = python();
    let started = Instant::now();
    let out = run_with_limit(
        &[
            "run",
            "raw.hard",
            "--test-runner",
            &raw_runner(&py, "hang-hard"),
            "-u",
            "1",
            "-d",
            "1s",
        ],
        Duration::from_secs(60),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("terminated"), "{text}");
    // 1 s + 10 s of grace + 3 s before SIGKILL.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(13) && took < Duration::from_secs(40),
        "{took:?}"
    );
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn a_dying_runner_is_reported_with_its_status_and_stderr() {
    let py = python();
    let out = run_with_limit(
        &[
            "run",
            "raw.die",
            "--test-runner",
            &raw_runner(&py, "die"),
            "-u",
            "2",
            "--hits",
            "3",
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.matches("exited with exit status: 3").count(),
        2,
        "{text}"
    );
    assert!(text.contains("raw runner dying on purpose"), "{text}");

    let out = run_with_limit(
        &[
            "run",
            "raw.none",
            "--test-runner",
            "/nonexistent/runner {test}",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no such program"), "{}", stderr(&out));
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn a_hanging_runner_is_terminated_after_the_grace_period() {
    let py = python();
    let started = Instant::now();
    let out = run_with_limit(
        &[
            "run",
            "raw.hang",
            "--test-runner",
            &raw_runner(&py, "hang"),
            "-u",
            "2",
            "-d",
            "1s",
        ],
        Duration::from_secs(60),
    );
    let text = stdout(&out);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "2 test runner(s) of step 1 still ran 10s after the end of the step: terminated"
        ),
        "{text}"
    );
    assert!(figure(&text, "Hits:") > 0, "{text}");
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(30),
        "{took:?}"
    );
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn a_python_testcase_runs_through_the_python_client() {
    let py = python();
    let server = DemoServer::start();
    let dir = tmpdir("python");
    let (path, p) = summary_json(&dir, "sum");
    let client = repo().join("clients/python");
    let examples = client.join("examples");
    let cmd = format!(
        "env PYTHONPATH={}:{} {py} -m loads_client {{test}}",
        client.display(),
        examples.display()
    );
    let out = run_with_limit(
        &[
            "run",
            "test_site.TestSite.test_home",
            "--test-runner",
            &cmd,
            "-u",
            "3",
            "--hits",
            "5",
            "-s",
            &server.url,
            "-o",
            "stdout",
            "-o",
            "json",
            "--output-json-path",
            &p,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let j = read_json(&path);
    assert_eq!(j["hits"], 15, "{text}");
    assert_eq!(j["successes"], 15);
    assert_eq!(j["requests"], 15);
    assert_eq!(j["urls"][0]["statuses"]["200"], 15);
    assert_eq!(j["urls"][0]["url"], format!("{}/", server.url));
    // The client's stopTest carries each hit's whole duration: at least its request's.
    let test = &j["tests"]["test_site.TestSite.test_home"];
    assert_eq!(test["duration"]["count"], 15, "{test}");
    let (hit_min, request_min) = (
        test["duration"]["min"].as_f64().expect("min"),
        j["urls"][0]["latency"]["min"].as_f64().expect("min"),
    );
    assert!(hit_min >= request_min * 0.99, "{hit_min} vs {request_min}");
}

fn v1_runner(py: &str, mode: &str) -> String {
    format!(
        "{py} {} {{test}} {mode}",
        repo().join("tests/external/v1_runner.py").display()
    )
}

/// `loads run TEST --test-runner v1_runner.py MODE -u 2 --hits 3`, its JSON summary, its output.
fn run_v1(name: &str, mode: &str, extra: &[&str]) -> (serde_json::Value, std::process::Output) {
    let py = python();
    let dir = tmpdir(name);
    let (path, p) = summary_json(&dir, "sum");
    let runner = v1_runner(&py, mode);
    let mut args = vec![
        "run",
        "v1.site",
        "--test-runner",
        &runner,
        "-u",
        "2",
        "--hits",
        "3",
        "-o",
        "json",
        "--output-json-path",
        &p,
    ];
    args.extend_from_slice(extra);
    let out = run_with_limit(&args, Duration::from_secs(120));
    let j = if path.exists() {
        read_json(&path)
    } else {
        serde_json::Value::Null
    };
    (j, out)
}

/// What the v1 relay sends, one message per event or in its batches: every hit, request (with
/// its time, dated in UTC), failure and error is there with its kind and message.
fn assert_v1_relay_totals(j: &serde_json::Value, text: &str, before: u64, after: u64) {
    for (k, v) in [
        ("hits", 6),
        ("successes", 2),
        ("failures", 2),
        ("errors", 2),
        ("requests", 6),
    ] {
        assert_eq!(j[k], v, "{k}: {text}");
    }
    assert_eq!(j["tests"]["v1.site"]["started"], 6, "{text}");
    assert_eq!(j["urls"][0]["url"], "http://127.0.0.1/v1", "{text}");
    assert_eq!(j["urls"][0]["statuses"]["200"], 6, "{text}");
    let latency = &j["urls"][0]["latency"];
    for q in ["min", "max"] {
        let ms = latency[q].as_f64().expect("latency");
        assert!((249.0..=251.0).contains(&ms), "{q} {ms}: {latency}");
    }
    assert_eq!(j["sockets"]["opened"], 2, "{text}");
    assert_eq!(j["sockets"]["bytes_received"], 20, "{text}");
    let problems = j["problems"].as_array().expect("problems");
    let found = |outcome: &str, kind: &str, message: &str| {
        problems
            .iter()
            .any(|p| p["outcome"] == outcome && p["kind"] == kind && p["message"] == message)
    };
    assert!(
        found("failure", "AssertionError", "v1 failure on purpose"),
        "{problems:?}"
    );
    assert!(
        found("error", "ValueError", "v1 error on purpose"),
        "{problems:?}"
    );
    // The requests are dated when they were sent (read as UTC), not hours away.
    let seconds: Vec<u64> = j["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|s| s["requests"].as_u64().unwrap_or(0) > 0)
        .map(|s| s["time"].as_u64().expect("time"))
        .collect();
    assert!(!seconds.is_empty(), "{}", j["timeline"]);
    assert!(
        seconds.iter().all(|s| (before..=after).contains(s)),
        "{seconds:?} not within {before}..={after}"
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn nothing_the_v1_relay_sends_is_lost() {
    let before = unix_now();
    let (j, out) = run_v1("v1-relay", "relay", &[]);
    let after = unix_now() + 1;
    let (text, err) = (stdout(&out), stderr(&out));
    // Failures and errors make exit code 1; nothing else is wrong with the run.
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert_v1_relay_totals(&j, &text, before, after);
    assert!(
        j["run_problems"].as_array().expect("problems").is_empty(),
        "{j}"
    );
    // v1's counter form (the counter's name as the data_type) is ignored, counted, not fatal.
    assert!(
        err.contains(
            "ignored 6 message(s) of a data_type it does not know (the first: \"v1counter\")"
        ),
        "{err}"
    );
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn v1_batches_are_replayed_and_an_empty_one_is_malformed() {
    let before = unix_now();
    let (j, out) = run_v1("v1-batch", "batch", &[]);
    let after = unix_now() + 1;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert_v1_relay_totals(&j, &text, before, after);
    let problems = j["run_problems"].to_string();
    assert!(
        problems.contains("the receiver ignored 2 malformed message(s)"),
        "{problems}"
    );
    assert!(err.contains("ignored 6 message(s) of a data_type"), "{err}");
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn nothing_loads_js_sends_is_lost() {
    let (j, out) = run_v1("v1-loadsjs", "loadsjs", &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    // Per user and 3 hits: successes h=1,3, a failure h=2.
    assert_eq!(j["hits"], 6, "{text}");
    assert_eq!(j["tests"]["v1.site"]["started"], 6, "{text}");
    assert_eq!(j["successes"], 4, "{text}");
    assert_eq!(j["failures"], 2, "{text}");
    let p = &j["problems"][0];
    assert_eq!(
        (&p["kind"], &p["message"]),
        (&"JSError".into(), &"status 404".into()),
        "{p}"
    );
    assert!(
        j["run_problems"].as_array().expect("problems").is_empty(),
        "{j}"
    );
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn a_runner_of_another_run_fails_the_run_with_a_message() {
    let (j, out) = run_v1("v1-foreign", "foreign", &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(j["hits"], 0, "{text}");
    let problems = j["run_problems"].to_string();
    // 2 processes × (3 socket events + 3 hits × 5 messages).
    assert!(
        problems.contains("every message of the test runners (36) carried another run_id, or none"),
        "{problems}"
    );
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn a_hung_hits_runner_is_stopped_after_the_process_timeout() {
    let started = Instant::now();
    let (j, out) = run_v1("v1-hang", "hang", &["--external-process-timeout", "2s"]);
    let took = started.elapsed();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    let problems = j["run_problems"].to_string();
    assert!(
        problems.contains(
            "2 test runner(s) of step 1 still ran after --external-process-timeout (2s): terminated"
        ),
        "{problems}"
    );
    assert_eq!(j["tests"]["v1.site"]["started"], 2, "{text}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}"
    );
    // Refused up front when it is not a duration, or 0.
    for bad in ["soon", "0"] {
        let out = run_with_limit(
            &[
                "run",
                "v1.site",
                "--test-runner",
                "true",
                "--external-process-timeout",
                bad,
            ],
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--external-process-timeout"),
            "{}",
            stderr(&out)
        );
    }
}

/// The command line that runs this test binary as an external runner: [`self_runner_child`],
/// doing what `LOADS_SELF_RUNNER` (in the environment loads passes on) says. A runner that
/// needs no Python: these tests always run.
fn self_runner() -> String {
    format!(
        "{} --exact self_runner_child --ignored --nocapture --test-threads 1",
        std::env::current_exe().expect("test binary").display()
    )
}

/// An external runner in a process of its own, started by loads ([`self_runner`]). With
/// `LOADS_SELF_RUNNER`:
/// - `stray-seconds`: 2000 `add_hit` dated each a second of its own, 1000 in 2001 and 1000 in
///   2096; 5 batches of 600 timeline seconds of 2002, each with 1 request; then 2 `add_hit`
///   dated now and 1 dated 100 s ago. Every message of this run.
/// - `long-strings`: 3 messages of another run whose run id is 1 MiB long, 3 malformed
///   messages of this run whose `status` is a string of 1 MiB, then 1 `add_hit` dated now.
#[test]
#[ignore = "an external runner, started by loads in the tests that need one"]
fn self_runner_child() {
    let Ok(mode) = std::env::var("LOADS_SELF_RUNNER") else {
        return;
    };
    let endpoint = std::env::var("LOADS_ZMQ_RECEIVER").expect("LOADS_ZMQ_RECEIVER");
    let run_id = std::env::var("LOADS_RUN_ID").expect("LOADS_RUN_ID");
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).expect("push");
    // Everything is delivered before the process ends (at most 10 s of waiting).
    push.set_linger(10_000).expect("linger");
    push.connect(&endpoint).expect("connect");
    let send = |mut msg: serde_json::Value| {
        msg["run_id"] = run_id.clone().into();
        push.send(msg.to_string().as_bytes(), 0).expect("send");
    };
    let add_hit = |t: i64| {
        serde_json::json!({
            "data_type": "add_hit", "url": "http://127.0.0.1/stray", "method": "GET",
            "status": 200, "elapsed": 0.001, "loads_status": [1, 1, 1, 1],
            "started": chrono::DateTime::from_timestamp(t, 0).expect("time").to_rfc3339(),
        })
    };
    if mode == "long-strings" {
        let long = |c: &str| c.repeat(1 << 20);
        for _ in 0..3 {
            let mut foreign = add_hit(chrono::Utc::now().timestamp());
            foreign["run_id"] = long("x").into();
            push.send(foreign.to_string().as_bytes(), 0).expect("send");
            let mut malformed = add_hit(chrono::Utc::now().timestamp());
            malformed["status"] = long("y").into();
            send(malformed);
        }
        send(add_hit(chrono::Utc::now().timestamp()));
        drop(push);
        drop(ctx);
        return;
    }
    assert_eq!(mode, "stray-seconds", "unknown LOADS_SELF_RUNNER");
    for i in 0..1000 {
        send(add_hit(978_307_200 + i));
        send(add_hit(3_976_214_400 + i));
    }
    for b in 0..5 {
        let timeline: serde_json::Map<String, serde_json::Value> = (0..600)
            .map(|j| {
                let second = serde_json::json!({
                    "hits": 0, "successes": 0, "failures": 0, "errors": 0, "requests": 1,
                    "socket_messages": 0, "users": 0,
                });
                ((1_009_843_200 + b * 600 + j).to_string(), second)
            })
            .collect();
        send(serde_json::json!({"data_type": "batch", "timeline": timeline}));
    }
    let now = chrono::Utc::now().timestamp();
    for t in [now, now, now - 100] {
        send(add_hit(t));
    }
    drop(push);
    drop(ctx);
}

#[test]
fn seconds_a_runner_dates_outside_the_run_do_not_grow_its_timeline() {
    // One second per message, from 1970 to the next century: each would have added a second
    // (some 200 B, once compacted) to the run's timeline for as long as the run lasts.
    let dir = tmpdir("stray-seconds");
    let runner = self_runner();
    for raw in [false, true] {
        let (path, p) = summary_json(&dir, if raw { "raw" } else { "batched" });
        let mut args = vec![
            "run",
            "self.stray",
            "--test-runner",
            &runner,
            "-u",
            "1",
            "--hits",
            "1",
            "-q",
            "-o",
            "json",
            "--output-json-path",
            &p,
        ];
        if raw {
            args.push("--raw-events");
        }
        let out = common::run_env(
            &dir,
            &[("LOADS_SELF_RUNNER", "stray-seconds")],
            &args,
            Duration::from_secs(120),
        );
        let err = stderr(&out);
        let j = read_json(&path);
        // Every request counts in the totals: 2000 + 3 sent one by one (the batches' seconds
        // carry requests of their timeline only).
        assert_eq!(j["requests"], 2003, "raw {raw}: {err}");
        let timeline = j["timeline"].as_array().expect("timeline");
        assert!(
            timeline.len() < 30,
            "raw {raw}: {} timeline seconds: {err}",
            timeline.len()
        );
        // Those dated within the run are where they were dated, the one 100 s ago included.
        let filed: u64 = timeline
            .iter()
            .map(|s| s["requests"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(filed, 3, "raw {raw}: {timeline:?}");
        assert!(
            err.contains("5000 request(s), hit(s) or message(s) of the test runners were dated"),
            "raw {raw}: {err}"
        );
    }
}

#[test]
fn a_runner_s_long_strings_are_cut_in_the_log() {
    // A run id of 1 MiB (another run's) and a field of 1 MiB that the decoder quotes in its
    // reason: the first ten of each are logged, so each was written whole, ten times.
    let dir = tmpdir("long-strings");
    let (path, p) = summary_json(&dir, "sum");
    let runner = self_runner();
    let out = common::run_env(
        &dir,
        &[("LOADS_SELF_RUNNER", "long-strings")],
        &[
            "run",
            "self.long",
            "--test-runner",
            &runner,
            "-u",
            "1",
            "--hits",
            "1",
            "-q",
            "-o",
            "json",
            "--output-json-path",
            &p,
        ],
        Duration::from_secs(120),
    );
    let err = stderr(&out);
    let start: String = err.chars().take(2000).collect();
    let j = read_json(&path);
    assert_eq!(j["requests"], 1, "{start}");
    assert!(
        err.len() < 16 * 1024,
        "{} bytes on stderr: {start}…",
        err.len()
    );
    assert_eq!(
        err.matches("ignored a message of another run").count(),
        3,
        "{start}"
    );
    assert_eq!(
        err.matches("ignored a malformed message").count(),
        3,
        "{start}"
    );
    assert!(err.contains("xxx…"), "the run id, cut: {start}");
}
