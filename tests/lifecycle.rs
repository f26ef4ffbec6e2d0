//! Per-user lifecycle, through the real binary against the real demo server on loopback: the
//! bundled `shop` suite logs in once per user (`on_start`, counter `logins`) and logs out once
//! per user that logged in (`on_stop`, counter `logouts`), in every load model, at the end of a
//! duration, when stages remove users and at Ctrl-C; a failing `on_start` is counted and its
//! user runs no hits.

mod common;

use common::{DemoServer, loads, stderr, summary_of};
use std::process::Stdio;
use std::time::Duration;

fn counter(summary: &serde_json::Value, name: &str) -> u64 {
    summary["counters"][name].as_u64().unwrap_or(0)
}

/// Runs of lifecycle hook `hook` reported apart from the hits: (runs, successes, failed).
fn hook(summary: &serde_json::Value, hook: &str) -> (u64, u64, u64) {
    let h = &summary["lifecycle"][hook];
    let n = |k: &str| h[k].as_u64().unwrap_or(0);
    (n("hits"), n("successes"), n("failures") + n("errors"))
}

fn hits(summary: &serde_json::Value) -> u64 {
    summary["tests"]
        .as_object()
        .map(|t| t.values().map(|c| c["hits"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

#[test]
fn on_start_and_on_stop_run_once_per_user_in_a_cycles_run() {
    let server = DemoServer::start();
    let s = summary_of(
        "cycles",
        &["run", "shop", "-u", "7", "--hits", "5", "-s", &server.url],
        0,
    );
    assert_eq!(counter(&s, "logins"), 7, "{s}");
    assert_eq!(counter(&s, "logouts"), 7, "{s}");
    assert_eq!(hits(&s), 35, "{s}");
    // Reported apart, not as hits.
    assert_eq!(hook(&s, "shop::on_start"), (7, 7, 0), "{s}");
    assert_eq!(hook(&s, "shop::on_stop"), (7, 7, 0), "{s}");
    assert_eq!(s["hits"], 35, "{s}");
    // Two steps of users: each user of each step starts and stops once.
    let s = summary_of(
        "steps",
        &["run", "shop", "-u", "2:3", "--hits", "2", "-s", &server.url],
        0,
    );
    assert_eq!(counter(&s, "logins"), 5, "{s}");
    assert_eq!(counter(&s, "logouts"), 5, "{s}");
}

#[test]
fn every_user_stops_at_the_end_of_a_duration_and_when_stages_remove_it() {
    let server = DemoServer::start();
    let s = summary_of(
        "duration",
        &[
            "run",
            "shop",
            "-u",
            "5",
            "-d",
            "2s",
            "--think-time",
            "50ms",
            "-s",
            &server.url,
        ],
        0,
    );
    assert_eq!(counter(&s, "logins"), 5, "{s}");
    assert_eq!(counter(&s, "logouts"), 5, "{s}");
    // Stages 10 → 0: every user that started has stopped, once.
    let s = summary_of(
        "stages",
        &[
            "run",
            "shop",
            "--stages",
            "10:2s,0:2s",
            "--think-time",
            "50ms",
            "-s",
            &server.url,
        ],
        0,
    );
    let logins = counter(&s, "logins");
    assert!(logins >= 10, "{s}");
    assert_eq!(counter(&s, "logouts"), logins, "{s}");
    // The open model: each pool user starts once, when first needed, and stops at the end.
    let s = summary_of(
        "rate",
        &[
            "run",
            "shop",
            "--rate",
            "100/s",
            "-d",
            "2s",
            "--max-users",
            "6",
            "-s",
            &server.url,
        ],
        0,
    );
    let logins = counter(&s, "logins");
    assert!((1..=6).contains(&logins), "{s}");
    assert_eq!(counter(&s, "logouts"), logins, "{s}");
    assert!(hits(&s) >= 150, "{s}");
}

#[test]
fn a_failing_on_start_is_counted_and_its_user_runs_no_hits() {
    // Nothing listens on this port: every login fails with a connection error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("http://127.0.0.1:{port}")
    };
    let s = summary_of(
        "failing",
        &["run", "shop", "-u", "4", "--hits", "3", "-s", &closed],
        1,
    );
    assert_eq!(hits(&s), 0, "{s}");
    assert_eq!(s["hits"], 0, "{s}");
    assert_eq!(hook(&s, "shop::on_start"), (4, 0, 4), "{s}");
    assert_eq!(hook(&s, "shop::on_stop"), (0, 0, 0), "{s}");
    assert_eq!(s["success"], false, "{s}");
    assert_eq!(counter(&s, "logins"), 0, "{s}");
    assert_eq!(counter(&s, "logouts"), 0, "{s}");
    let problems = s["problems"].as_array().expect("problems");
    let login = problems
        .iter()
        .find(|p| p["test"] == "shop::on_start")
        .unwrap_or_else(|| panic!("no on_start problem in {s}"));
    assert_eq!(login["count"], 4, "{s}");
}

#[test]
fn ctrl_c_still_runs_every_on_stop() {
    let server = DemoServer::start();
    let dir = std::env::temp_dir().join(format!("loads-life-int-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("summary.json");
    let child = loads()
        .args([
            "run",
            "shop",
            "-u",
            "5",
            "-d",
            "60s",
            "--think-time",
            "50ms",
            "-s",
            &server.url,
            "-q",
            "-o",
            "json",
            "--output-json-path",
            path.to_str().expect("utf8"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loads");
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(2));
    let _ = std::process::Command::new("kill")
        .args(["-s", "INT", &pid.to_string()])
        .status();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("loads did not stop after Ctrl-C");
        }
    };
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("summary")).expect("json");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(counter(&s, "logins"), 5, "{s}");
    assert_eq!(counter(&s, "logouts"), 5, "{s}");
}

#[test]
fn a_pause_between_hits_does_not_delay_the_end_or_skip_on_stop() {
    let server = DemoServer::start();
    let started = std::time::Instant::now();
    let s = summary_of(
        "think",
        &[
            "run",
            "shop::browse",
            "-u",
            "3",
            "-d",
            "2s",
            "--think-time",
            "20s",
            "-s",
            &server.url,
        ],
        0,
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "a 2 s run with 20 s pauses took {:?}",
        started.elapsed()
    );
    assert_eq!(counter(&s, "logins"), 3, "{s}");
    assert_eq!(counter(&s, "logouts"), 3, "{s}");
    // The stages remove users in the middle of their pause: they stop at once.
    let started = std::time::Instant::now();
    let s = summary_of(
        "think-stages",
        &[
            "run",
            "shop::browse",
            "--stages",
            "3:1s,0:1s",
            "--think-time",
            "20s",
            "-s",
            &server.url,
        ],
        0,
    );
    assert!(started.elapsed() < Duration::from_secs(6), "{s}");
    assert_eq!(counter(&s, "logouts"), counter(&s, "logins"), "{s}");
}

#[test]
fn a_hanging_on_start_is_reported_as_abandoned() {
    // A listener that never accepts: connections wait in its backlog, requests never answer.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", hang.local_addr().expect("addr"));
    let s = summary_of(
        "hang",
        &[
            "run",
            "shop::browse",
            "-u",
            "2",
            "-d",
            "1s",
            "--request-timeout",
            "60s",
            "-s",
            &url,
        ],
        1,
    );
    drop(hang);
    assert_eq!(hook(&s, "shop::on_start"), (2, 0, 2), "{s}");
    let problems = s["problems"].to_string();
    assert!(problems.contains("on_start abandoned"), "{s}");
    assert_eq!(s["success"], false, "{s}");
}
