//! Integration tests of faults on the load side: the system under test going down mid-run, a
//! target that never answers, and more users than the open-file limit allows. The real
//! `loads` binary on loopback, bounded in time.

mod common;

use common::{DemoServer, figure, loads, run, stderr, stdout};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn the_system_under_test_going_down_is_counted_per_url_and_the_run_goes_on() {
    let mut server = DemoServer::start();
    let child = loads()
        .args([
            "run",
            "example::health",
            "-u",
            "2",
            "-d",
            "3s",
            "-s",
            &server.url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loads");
    std::thread::sleep(Duration::from_millis(1200));
    server.stop();
    let started = Instant::now();
    let out = child.wait_with_output().expect("output");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    // The run went on to its end: errors after the server left, successes before.
    assert!(started.elapsed() >= Duration::from_millis(1000), "{text}");
    assert!(figure(&text, "Successes:") > 0, "{text}");
    assert!(figure(&text, "Errors:") > 0, "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("/health") && l.trim_start().starts_with("GET"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.contains("none×"),
        "failed requests counted on their URL: {row}"
    );
}

#[test]
fn a_target_that_never_answers_times_out_into_errors() {
    // A listener that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).expect("nonblocking");
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until && held.len() < 8 {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        held
    });
    let started = Instant::now();
    let out = run(&[
        "run",
        "example::get_root",
        "-u",
        "2",
        "--hits",
        "2",
        "-s",
        &url,
        "--timeout",
        "300ms",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(figure(&text, "Errors:"), 4, "{text}");
    assert!(text.contains("no response within 300ms"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(15), "{text}");
    drop(holder);
}

#[test]
fn more_users_than_open_files_is_a_clear_error_before_the_run() {
    let out = run(&[
        "run",
        "example::health",
        "-u",
        "5000000",
        "-s",
        "http://127.0.0.1:9",
    ]);
    // 5 000 000 is over the per-step maximum: a usage error of its own.
    assert_eq!(out.status.code(), Some(2));
    // A process allowed 1024 open files (soft and hard) asked for 2000 users.
    let mut cmd = loads();
    cmd.args([
        "run",
        "example::health",
        "-u",
        "2000",
        "-s",
        "http://127.0.0.1:9",
    ]);
    common::limit_open_files(&mut cmd, 1024);
    let out = cmd.output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("open files") && err.contains("ulimit -n") && err.contains("--agents"),
        "{err}"
    );
}
