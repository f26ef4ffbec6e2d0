//! Integration tests of the load models: arrival rate (open model, corrected for coordinated
//! omission, dropped starts), stages, ramp-up and think time. The real `loads` binary against
//! the real demo server on loopback, bounded in time.

mod common;

use common::{DemoServer, figure, run, stderr, stdout};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("models-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("summary")).expect("json")
}

/// `(hits, users)` of every second of the run's history.
fn history(j: &serde_json::Value) -> Vec<(u64, u64)> {
    j["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| {
            (
                s["hits"].as_u64().unwrap_or(0),
                s["users"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A number after `label` on a line of the summary, e.g. `p99` on the `  uncorrected:` line,
/// in milliseconds.
fn millis_after(line: &str, label: &str) -> f64 {
    let at = line
        .find(&format!("{label} "))
        .unwrap_or_else(|| panic!("no {label} in {line:?}"));
    let mut words = line[at + label.len()..].split_whitespace();
    let n: f64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label} in {line:?}"));
    match words.next() {
        Some("µs") => n / 1000.0,
        Some("ms") => n,
        Some(w) if w.starts_with('s') => n * 1000.0,
        other => panic!("unit {other:?} in {line:?}"),
    }
}

#[test]
fn a_constant_rate_gives_the_planned_hits_evenly_spaced() {
    let server = DemoServer::start();
    let dir = tmpdir("rate");
    let path = dir.join("sum.json");
    let out = run(&[
        "run",
        "example::delay_20ms",
        "-s",
        &server.url,
        "--rate",
        "200/s",
        "-d",
        "5s",
        "-o",
        "stdout",
        "-o",
        "json",
        "--output-json-path",
        path.to_str().expect("utf8"),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let hits = figure(&text, "Hits:");
    assert!((980..=1020).contains(&hits), "{hits} hits: {text}");
    assert_eq!(figure(&text, "Dropped:"), 0, "{text}");
    let j = summary(&path);
    let h = history(&j);
    // Every whole second in the middle of the run has 200 ± 5 % hits.
    assert!(h.len() >= 5, "{h:?}");
    for (hits, _) in &h[1..h.len() - 1] {
        assert!((190..=210).contains(hits), "uneven: {h:?}");
    }
    assert!(j["open_model"]["dropped"] == 0, "{}", j["open_model"]);
}

#[test]
fn a_stall_shows_in_the_corrected_times_but_not_in_the_uncorrected_ones() {
    let server = DemoServer::start();
    // Two seconds into the run, the demo server stalls every request for one second.
    let addr = server.url.trim_start_matches("http://").to_owned();
    let staller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let mut c = std::net::TcpStream::connect(&addr).expect("connect");
        write!(
            c,
            "POST /stall/1000 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    });
    // A small pool: during the stall its few users wait, and the arrivals queue behind them.
    let out = run(&[
        "run",
        "example::health",
        "-s",
        &server.url,
        "--rate",
        "200/s",
        "-d",
        "5s",
        "--max-users",
        "4",
    ]);
    staller.join().expect("staller");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let corrected = text
        .lines()
        .find(|l| l.starts_with("Request time:"))
        .unwrap_or_else(|| panic!("{text}"));
    let uncorrected = text
        .lines()
        .find(|l| l.starts_with("  uncorrected:"))
        .unwrap_or_else(|| panic!("{text}"));
    let (p99, raw_p99) = (
        millis_after(corrected, "p99"),
        millis_after(uncorrected, "p99"),
    );
    assert!(
        p99 >= 500.0,
        "corrected p99 {p99} ms should show the 1 s stall:\n{text}"
    );
    assert!(
        raw_p99 < 200.0,
        "uncorrected p99 {raw_p99} ms should not (only the pool's 4 requests waited):\n{text}"
    );
}

#[test]
fn too_small_a_pool_drops_starts_and_counts_them() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::slow_1s",
        "-s",
        &server.url,
        "--rate",
        "50/s",
        "-d",
        "2s",
        "--max-users",
        "1",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let (hits, dropped) = (figure(&text, "Hits:"), figure(&text, "Dropped:"));
    assert!(hits <= 3, "{text}");
    assert_eq!(
        hits + dropped,
        100,
        "every planned start is a hit or dropped: {text}"
    );
}

#[test]
fn stages_reach_each_stages_users_and_ramp_up_starts_users_progressively() {
    let server = DemoServer::start();
    let dir = tmpdir("stages");
    let path = dir.join("stages.json");
    let out = run(&[
        "run",
        "example::health",
        "-s",
        &server.url,
        "--stages",
        "3:1s,6:2s,6:1s,0:1s",
        "--threads",
        "1",
        "-o",
        "json",
        "--output-json-path",
        path.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let users: Vec<u64> = history(&summary(&path)).iter().map(|h| h.1).collect();
    assert!(users.contains(&6), "the 6-user stage: {users:?}");
    assert!(
        users.iter().any(|u| (2..=4).contains(u)),
        "the 3-user stage: {users:?}"
    );
    assert!(
        users.windows(2).any(|w| w[1] < w[0]),
        "the last stage goes down: {users:?}"
    );

    let path = dir.join("ramp.json");
    let out = run(&[
        "run",
        "example::health",
        "-s",
        &server.url,
        "-u",
        "10",
        "--ramp-up",
        "2s",
        "-d",
        "3s",
        "-o",
        "json",
        "--output-json-path",
        path.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let users: Vec<u64> = history(&summary(&path)).iter().map(|h| h.1).collect();
    assert!(
        users[0] < 10 && users[0] > 0,
        "started progressively: {users:?}"
    );
    assert_eq!(users.iter().max(), Some(&10), "{users:?}");
}

#[test]
fn think_time_lowers_the_hit_rate() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::health",
        "-s",
        &server.url,
        "-u",
        "2",
        "-d",
        "2s",
        "--think-time",
        "100ms",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // 2 users × 2 s / (100 ms + a fast request): about 40.
    let hits = figure(&text, "Hits:");
    assert!((30..=42).contains(&hits), "{hits}: {text}");
    let out = run(&[
        "run",
        "example::health",
        "-s",
        &server.url,
        "-u",
        "2",
        "--hits",
        "3",
        "--think-time",
        "50ms..150ms",
    ]);
    assert_eq!(figure(&stdout(&out), "Hits:"), 6);
}

#[test]
fn bad_model_options_are_usage_errors() {
    for (args, says) in [
        (vec!["--rate", "200/s"], "--rate needs a duration"),
        (vec!["--rate", "fast", "-d", "1s"], "invalid --rate"),
        (vec!["--stages", "10:1s", "-u", "3"], "remove -u"),
        (vec!["--stages", "10"], "invalid --stages"),
        (
            vec!["--rate", "5/s", "-d", "1s", "--think-time", "1s"],
            "--think-time is for closed models",
        ),
        (vec!["--max-users", "3"], "use it with --rate"),
        (
            vec!["--ramp-up", "1s", "--stages", "1:1s"],
            "--ramp-up is for users × hits",
        ),
        (vec!["--think-time", "2s..1s"], "MIN above MAX"),
    ] {
        let mut a = vec!["run", "example::health"];
        a.extend(args.iter().copied());
        let out = run(&a);
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        assert!(stderr(&out).contains(says), "{a:?}: {}", stderr(&out));
    }
}

#[test]
fn the_open_model_shows_the_users_in_flight_at_the_peak_of_each_second() {
    // Quick answers at 100 arrivals a second: a user is busy for a few ms of every 10, so a
    // count sampled at one instant (once a second, for the live line and the timeline) found
    // none busy most of the time, and the run showed "0 users" while 100 hits/s went on.
    let server = DemoServer::start();
    let dir = tmpdir("in-flight");
    let path = dir.join("sum.json");
    let out = run(&[
        "run",
        "example::get_root",
        "-s",
        &server.url,
        "--rate",
        "100/s",
        "-d",
        "6s",
        "-o",
        "stdout",
        "-o",
        "json",
        "--output-json-path",
        path.to_str().expect("utf8"),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{}{err}", stdout(&out));
    // Every second with a good share of the hits had one in flight at least.
    let h = history(&summary(&path));
    let busy: Vec<&(u64, u64)> = h.iter().filter(|(hits, _)| *hits >= 50).collect();
    assert!(busy.len() >= 4, "{h:?}");
    assert!(busy.iter().all(|(_, users)| *users >= 1), "{h:?}");
    // The plain progress line (standard error is no terminal here) says so, and what it is.
    let line = err
        .lines()
        .find(|l| l.starts_with('[') && l.contains("hits ·"))
        .unwrap_or_else(|| panic!("no progress line: {err}"));
    assert!(line.contains("in flight (1 s peak)"), "{line}");
    assert!(!line.contains("] 0 users"), "{line}");
}
