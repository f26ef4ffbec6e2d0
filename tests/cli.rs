//! Integration tests: the real `loads` binary against the real demo server, on loopback.

mod common;

use common::{DemoServer, figure, loads, run, run_with_limit, stderr, stdout};
use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn users_times_hits_gives_exact_counts() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::get_root",
        "-u",
        "5",
        "--hits",
        "4",
        "--server-url",
        &server.url,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 20, "{text}");
    assert_eq!(figure(&text, "Successes:"), 20, "{text}");
    assert_eq!(figure(&text, "Failures:"), 0, "{text}");
    assert_eq!(figure(&text, "Errors:"), 0, "{text}");
    assert_eq!(figure(&text, "Requests:"), 20, "{text}");
    assert!(
        text.contains("200×20"),
        "status codes in the URL table:\n{text}"
    );
    assert!(text.contains("Result:        OK"), "{text}");
}

#[test]
fn cycles_add_up() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::get_root",
        "-u",
        "1:2",
        "--hits",
        "1:2",
        "-s",
        &server.url,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(figure(&text, "Hits:"), 9, "{text}");
    assert_eq!(figure(&text, "Successes:"), 9, "{text}");
    assert!(text.contains("users 1:2 × hits 1:2 = 9 hits"), "{text}");
}

#[test]
fn failing_test_exits_1_and_shows_the_failure() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::failing",
        "-u",
        "2",
        "--hits",
        "3",
        "-s",
        &server.url,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(figure(&text, "Failures:"), 6, "{text}");
    assert_eq!(figure(&text, "Errors:"), 0, "{text}");
    assert!(text.contains("Most frequent failures"), "{text}");
    assert!(
        text.contains("6× in example::failing [ensure_eq]: the service is unavailable"),
        "{text}"
    );
    assert!(text.contains("left: 503"), "{text}");
    assert!(text.contains("at src/example.rs:"), "{text}");
    assert!(text.contains("503×6"), "{text}");
}

#[test]
fn erroring_test_exits_1_and_shows_the_error() {
    let server = DemoServer::start();
    let out = run(&["run", "example::erroring", "--hits", "2", "-s", &server.url]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(figure(&text, "Errors:"), 2, "{text}");
    assert_eq!(figure(&text, "Failures:"), 0, "{text}");
    assert!(text.contains("Most frequent errors"), "{text}");
    assert!(text.contains("not the expected JSON"), "{text}");
}

#[test]
fn duration_run_stops_on_time() {
    let server = DemoServer::start();
    let started = Instant::now();
    let out = run(&[
        "run",
        "example::get_root",
        "-u",
        "3",
        "-d",
        "2",
        "-s",
        &server.url,
    ]);
    let took = started.elapsed();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        took >= Duration::from_secs(2),
        "stopped too early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "stopped too late: {took:?}");
    let hits = figure(&text, "Hits:");
    assert!(hits > 10, "a 2 s run should make many hits:\n{text}");
    assert_eq!(figure(&text, "Successes:"), hits, "{text}");
    assert!(text.contains("3 users for 2s"), "{text}");
}

#[test]
fn websocket_test_counts_sockets_and_bytes() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::websocket_echo",
        "-u",
        "3",
        "--hits",
        "2",
        "-s",
        &server.url,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 6, "{text}");
    // Each hit opens one socket and echoes three messages of "hello I from user U" (19 bytes).
    assert!(
        text.contains(
            "WebSockets:    6 opened · 6 closed · 18 messages received (342 B) · 18 sent (342 B)"
        ),
        "{text}"
    );
}

#[test]
fn cookies_auth_and_counters() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::cookies_and_auth",
        "-u",
        "3",
        "--hits",
        "2",
        "-s",
        &server.url,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(figure(&text, "Successes:"), 6, "{text}");
    assert!(text.contains("Counters:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["logins", "6"]),
        "{text}"
    );
}

#[test]
fn unknown_test_exits_2_with_suggestions() {
    let out = run(&["run", "example::get_rot"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("no test named \"example::get_rot\""), "{err}");
    assert!(err.contains("example::get_root"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn bad_option_values_exit_2_and_name_the_option() {
    for (args, needle) in [
        (vec!["run", "example::get_root", "-u", "0"], "--users"),
        (vec!["run", "example::get_root", "--hits", "x"], "--hits"),
        (vec!["run", "example::get_root", "-d", "soon"], "--duration"),
        (
            vec!["run", "example::get_root", "--hits", "1", "-d", "1"],
            "cannot be used with",
        ),
        (
            vec!["run", "example::get_root", "-s", "not a url"],
            "--server-url",
        ),
        (
            vec!["run", "example::get_root", "-o", "pdf"],
            "unknown output \"pdf\"",
        ),
        (
            vec![
                "run",
                "example::get_root",
                "--config",
                "/nonexistent/loads.toml",
            ],
            "config file",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn config_file_type_errors_say_what_is_expected() {
    let dir = std::env::temp_dir().join(format!("loads-it-badconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (text, needle) in [
        ("users = -3\n", "a whole number of at least 1"),
        ("users = true\n", "a whole number of at least 1"),
        ("duration = true\n", "a duration"),
        ("output = 3\n", "an output name"),
        ("hits = 2\nduration = 3\n", "config keys hits and duration"),
        // A bare word is no TOML value: said so, not "invalid boolean, expected `true`".
        (
            "users = ten\n",
            "line 2: key `users`: `ten` is not a TOML value",
        ),
        ("server-url = http://x:1\n", "server-url = \"http://x:1\""),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, format!("test = \"example::get_root\"\n{text}")).expect("write");
        let out = run(&["run", "--config", path.to_str().expect("utf8")]);
        assert_eq!(out.status.code(), Some(2), "{text}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{text}: {}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn repeated_outputs_report_once() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::get_root",
        "-o",
        "stdout",
        "-o",
        "null",
        "-o",
        "stdout",
        "-s",
        &server.url,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).matches("Summary of").count(),
        1,
        "{}",
        stdout(&out)
    );
}

#[test]
fn app_without_server_url_is_a_clear_error() {
    let out = run(&["run", "example::health"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("no server URL is set") && text.contains("--server-url"),
        "{text}"
    );
}

#[test]
fn config_file_sets_options_and_command_line_wins() {
    let server = DemoServer::start();
    let dir = std::env::temp_dir().join(format!("loads-it-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("loads.toml");
    std::fs::write(
        &path,
        format!("test = \"example::get_root\"\nusers = 2\nhits = 3\nserver-url = \"{}\"\nproject-name = \"blog\"\n", server.url),
    )
    .expect("write config");
    let p = path.to_str().expect("utf8 path");
    let out = run(&["run", "--config", p]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 6, "{text}");
    assert!(text.contains("Project:       blog"), "{text}");
    let out = run(&["run", "--config", p, "-u", "4"]);
    assert_eq!(figure(&stdout(&out), "Hits:"), 12);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quiet_and_null_print_no_summary() {
    let server = DemoServer::start();
    let out = run(&["run", "example::get_root", "-q", "-s", &server.url]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let out = run(&["run", "example::failing", "-o", "null", "-s", &server.url]);
    assert_eq!(out.status.code(), Some(1), "the exit code still tells");
    assert!(stdout(&out).is_empty());
}

#[test]
fn without_a_tty_there_are_no_control_codes() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::volume",
        "-u",
        "2",
        "-d",
        "6",
        "-s",
        &server.url,
    ]);
    assert_eq!(out.status.code(), Some(0));
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !bytes.contains(&0x1b),
            "{name} has escape codes: {}",
            String::from_utf8_lossy(bytes)
        );
        assert!(!bytes.contains(&b'\r'), "{name} has carriage returns");
    }
    // A plain progress line every 5 s.
    assert!(stderr(&out).contains("hits ·"), "{}", stderr(&out));
}

#[test]
fn ctrl_c_stops_cleanly_and_still_prints_the_summary() {
    let server = DemoServer::start();
    let mut child = loads()
        .args([
            "run",
            "example::get_root",
            "-u",
            "4",
            "-d",
            "60",
            "-s",
            &server.url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loads");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loads did not stop after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        started.elapsed()
    );
    let mut text = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(code, Some(130), "{text}");
    assert!(text.contains("Interrupted:"), "{text}");
    assert!(text.contains("Result:        INTERRUPTED"), "{text}");
    assert!(figure(&text, "Hits:") > 0, "{text}");
}

#[test]
fn list_shows_every_bundled_test_with_its_purpose() {
    let out = run(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for name in [
        "example::get_root",
        "example::health",
        "example::volume",
        "example::failing",
        "example::erroring",
        "example::websocket_echo",
        "example::cookies_and_auth",
    ] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        assert!(
            line.len() > name.len() + 10,
            "no description for {name}: {line:?}"
        );
    }
}

#[test]
fn demo_runs_a_real_load_against_the_embedded_server() {
    let out = run_with_limit(
        &["demo", "-u", "10", "--hits", "20"],
        Duration::from_secs(60),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("Demo server listening on http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("Summary of example::get_root (10 users × 20 hits = 200 hits)"),
        "{text}"
    );
    assert!(
        text.contains("Summary of example::websocket_echo"),
        "{text}"
    );
    assert!(
        text.contains("WebSockets:    100 opened · 100 closed"),
        "{text}"
    );
}

#[test]
fn raw_events_give_the_same_counts() {
    let server = DemoServer::start();
    let out = run(&[
        "run",
        "example::cookies_and_auth",
        "-u",
        "5",
        "--hits",
        "4",
        "--raw-events",
        "-s",
        &server.url,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 20, "{text}");
    assert_eq!(figure(&text, "Successes:"), 20, "{text}");
    assert_eq!(figure(&text, "Requests:"), 20 * 3, "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["logins", "20"]),
        "{text}"
    );
}

#[test]
fn habits_of_the_seed_systems_command_line_work() {
    // v1's flags for the cluster's commands.
    for (flag, text) in [
        ("--ping-broker", "Show the broker's pid"),
        ("--purge-broker", "Stop every active run"),
        ("--check-cluster", "Run the bundled health test"),
        ("--health-check", "Run the bundled health test"),
        ("--attach", "Follow a run of the cluster again"),
    ] {
        let out = run(&[flag, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", stderr(&out));
        assert!(stdout(&out).contains(text), "{flag}: {}", stdout(&out));
    }
    // -a and -b for --agents and --broker, in a help grouped by topic.
    let help = stdout(&run(&["run", "--help"]));
    assert!(help.contains("-a, --agents <N>"), "{help}");
    assert!(help.contains("-b, --broker <ENDPOINT>"), "{help}");
    for heading in ["Load plan:", "Reports:", "Cluster:"] {
        assert!(help.contains(heading), "{heading} in {help}");
    }
    // A negative number of users is explained, not taken for an option.
    let out = run(&["run", "example::health", "-u", "-5"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--users"), "{err}");
    assert!(!err.contains("-- -5"), "{err}");
}

#[test]
fn include_file_is_accepted_on_a_local_run_and_still_checked() {
    let server = DemoServer::start();
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = common::run_in(
        std::path::Path::new(repo),
        &[
            "run",
            "example::health",
            "-s",
            &server.url,
            "-q",
            "--include-file",
            "Cargo.toml",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&[
        "run",
        "example::health",
        "-s",
        &server.url,
        "--include-file",
        "no-such-*.xyz",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("matches no file"), "{}", stderr(&out));
}

#[test]
fn a_loads_v1_ini_config_is_refused_with_its_toml_equivalent() {
    let dir = std::env::temp_dir().join(format!("loads-v1-ini-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("loads.ini");
    std::fs::write(
        &path,
        "[loads]\nfqn = example.TestWebSite.test_something\nusers = 10:20\nhits = 5\n",
    )
    .expect("write");
    let out = run(&["run", "-c", path.to_str().expect("utf8")]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("Loads v1 config file"), "{err}");
    assert!(err.contains("users = \"10:20\""), "{err}");
    assert!(!err.contains("Hits:"), "{err}");
}

#[test]
fn an_unreachable_target_is_reported_early() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("http://127.0.0.1:{port}")
    };
    let out = run(&["run", "example::health", "-d", "4s", "-s", &closed]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("got an answer"), "{err}");
    assert_eq!(err.matches("got an answer").count(), 1, "{err}");
}

#[test]
fn a_listing_whose_reader_has_gone_ends_quietly() {
    // `loads list | head -0`: the reader closes the pipe before loads writes to it.
    let mut child = loads()
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().expect("wait");
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt as _;
    assert!(
        status.signal() == Some(13) || status.code() == Some(0),
        "{status:?}: {err}"
    );
}

#[test]
fn the_live_rates_of_slow_responses_are_the_runs_rates() {
    // 10 users whose hits take one second each, their starts spread over a second: 10 hits
    // and 10 requests a second, steadily. The live line's rates over its window must say so,
    // not leave out the hits and requests still in flight (it said 8 and 8: the last second of
    // its window was always empty, a hit being counted only once it ends).
    let server = DemoServer::start();
    let out = run_with_limit(
        &[
            "run",
            "example::slow_1s",
            "-s",
            &server.url,
            "-u",
            "10",
            "--ramp-up",
            "1s",
            "-d",
            "11s",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("[   10s]"))
        .unwrap_or_else(|| panic!("no live line at 10 s in:\n{err}"));
    let rate = |unit: &str| -> f64 {
        let before = line
            .split(" · ")
            .find(|p| p.ends_with(unit))
            .unwrap_or_else(|| panic!("no {unit} in {line:?}"));
        before
            .rsplit(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number before {unit} in {line:?}"))
    };
    for unit in ["hits/s", "req/s"] {
        let r = rate(unit);
        assert_eq!(r, 10.0, "{unit} in {line:?}");
    }
}
