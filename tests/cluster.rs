//! Integration tests of the distributed mode: a real broker, real agents and the real caller,
//! each its own process, over ZeroMQ on loopback, with a real SQLite file.

mod common;

use common::cluster::{Cluster, Proc, endpoint, keygen, noise, run_id_of};
use common::{DemoServer, figure, loads, run_with_limit, stderr, stdout};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn three_agents_make_exact_totals_and_the_run_is_stored() {
    let server = DemoServer::start();
    let cluster = Cluster::start("exact", 3);
    let out = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "3",
            "-u",
            "4",
            "--hits",
            "5",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 60, "{text}");
    assert_eq!(figure(&text, "Successes:"), 60, "{text}");
    assert_eq!(figure(&text, "Requests:"), 60, "{text}");
    assert!(text.contains("on each of 3 agents"), "{text}");
    let run_id = run_id_of(&text);

    let runs = run_with_limit(
        &["runs", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
    let listing = stdout(&runs);
    let row = listing
        .lines()
        .find(|l| l.starts_with(&run_id))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(
        row.contains("example::get_root") && row.contains(" 60 ") && row.contains("finished"),
        "{row}"
    );

    let report = cluster.report(&run_id);
    let rtext = stdout(&report);
    assert_eq!(
        report.status.code(),
        Some(0),
        "{rtext}\n{}",
        stderr(&report)
    );
    assert_eq!(figure(&rtext, "Hits:"), 60, "{rtext}");
    assert_eq!(figure(&rtext, "Successes:"), 60, "{rtext}");

    let ping = run_with_limit(
        &["ping", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
    let ptext = stdout(&ping);
    assert!(ptext.contains("Agents:       3"), "{ptext}");
    assert_eq!(ptext.matches(" idle ").count(), 3, "{ptext}");
    assert!(ptext.contains("Active runs:  none"), "{ptext}");
}

#[test]
fn not_enough_agents_exits_2_with_the_counts() {
    let cluster = Cluster::start("few", 2);
    let out = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "3",
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 agents requested, 2 available"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_broker_is_a_clear_error_not_a_hang() {
    let started = Instant::now();
    let out = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "1",
            "--broker",
            "tcp://127.0.0.1:9",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_killed_agent_is_named_and_the_others_results_stay() {
    let server = DemoServer::start();
    let mut cluster = Cluster::start("kill", 2);
    let mut caller = loads()
        .args([
            "run",
            "example::get_root",
            "--agents",
            "2",
            "-u",
            "2",
            "-d",
            "6",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caller");
    std::thread::sleep(Duration::from_secs(3));
    cluster.agents[0].kill_group();
    let deadline = Instant::now() + Duration::from_secs(60);
    while caller.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the caller did not end after an agent was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = caller.wait_with_output().expect("output");
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a lost agent fails the run\n{text}"
    );
    assert!(text.contains("was lost during the run"), "{text}");
    let hits = figure(&text, "Hits:");
    assert!(hits > 100, "the surviving agent's hits are there: {text}");
    assert_eq!(figure(&text, "Errors:"), 0, "{text}");
}

#[test]
fn runs_survive_a_broker_restart() {
    let server = DemoServer::start();
    let mut cluster = Cluster::start("restart", 1);
    let out = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "1",
            "-u",
            "2",
            "--hits",
            "3",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run_id = run_id_of(&stdout(&out));
    cluster.restart_broker();
    let runs = run_with_limit(
        &["runs", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
    assert!(stdout(&runs).contains(&run_id), "{}", stdout(&runs));
    let report = cluster.report(&run_id);
    assert_eq!(figure(&stdout(&report), "Hits:"), 6, "{}", stdout(&report));
}

#[test]
fn detach_then_attach_follows_the_run_to_its_end_and_stop_ends_it() {
    let server = DemoServer::start();
    let cluster = Cluster::start("attach", 2);
    let out = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "2",
            "-u",
            "2",
            "-d",
            "4",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--detach",
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let run_id = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no run id in {text}"))
        .trim_end_matches(';')
        .to_owned();
    // Attach without naming the run: the only active one is picked.
    let att = run_with_limit(
        &["attach", "--broker", &cluster.front],
        Duration::from_secs(120),
    );
    let atext = stdout(&att);
    assert_eq!(att.status.code(), Some(0), "{atext}{}", stderr(&att));
    assert!(
        atext.contains(&format!("Run id:        {run_id}")),
        "{atext}"
    );
    let hits = figure(&atext, "Hits:");
    let report = cluster.report(&run_id);
    assert_eq!(
        figure(&stdout(&report), "Hits:"),
        hits,
        "attach saw every hit the broker stored"
    );

    // A second run, stopped half way: it ends as stopped, with the hits made until then.
    let out = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "2",
            "-u",
            "2",
            "-d",
            "60",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--detach",
        ],
        Duration::from_secs(120),
    );
    let run2 = stdout(&out)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_end_matches(';')
        .to_owned();
    std::thread::sleep(Duration::from_secs(2));
    let stop = run_with_limit(
        &["purge", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
    assert!(stdout(&stop).contains(&run2), "{}", stdout(&stop));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = stdout(&run_with_limit(
            &["runs", "--broker", &cluster.front],
            Duration::from_secs(30),
        ));
        let row = runs
            .lines()
            .find(|l| l.starts_with(&run2))
            .unwrap_or_default()
            .to_owned();
        if row.contains("stopped") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stopped run never ended: {runs}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let report = cluster.report(&run2);
    assert!(figure(&stdout(&report), "Hits:") > 0, "{}", stdout(&report));
}

#[test]
fn check_cluster_reports_every_idle_agent() {
    let cluster = Cluster::start("check", 2);
    let out = run_with_limit(
        &["check-cluster", "--broker", &cluster.front],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(text.matches("  OK").count(), 2, "{text}");
    assert!(text.contains("2 of 2 agents OK"), "{text}");
    // Against a server that is not there, each agent reports the error.
    let out = run_with_limit(
        &[
            "check-cluster",
            "--broker",
            &cluster.front,
            "-s",
            "http://127.0.0.1:9",
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("FAILED: ").count(), 2, "{text}");
    assert!(text.contains("0 of 2 agents OK"), "{text}");
}

#[test]
fn included_files_land_in_each_workers_test_directory() {
    let server = DemoServer::start();
    let cluster = Cluster::start("include", 2);
    let src = cluster.dir.join("src");
    std::fs::create_dir_all(src.join("data")).expect("dir");
    std::fs::write(src.join("data/users.csv"), "alice\nbob\n").expect("write");
    std::fs::write(src.join("data/other.txt"), "x").expect("write");
    let out = loads()
        .current_dir(&src)
        .args([
            "run",
            "example::get_root",
            "--agents",
            "2",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--include-file",
            "data/*.csv",
        ])
        .output()
        .expect("run");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let run_id = run_id_of(&text);
    for i in 0..2 {
        let shipped = cluster
            .dir
            .join(format!("work{i}"))
            .join(&run_id)
            .join("data/users.csv");
        assert_eq!(
            std::fs::read_to_string(&shipped).expect("shipped file"),
            "alice\nbob\n"
        );
        assert!(
            !cluster
                .dir
                .join(format!("work{i}"))
                .join(&run_id)
                .join("data/other.txt")
                .exists()
        );
    }
    let bad = loads()
        .current_dir(&src)
        .args([
            "run",
            "example::get_root",
            "--agents",
            "1",
            "--broker",
            &cluster.front,
            "--include-file",
            "nothing/*.csv",
        ])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("matches no file"), "{}", stderr(&bad));
}

/// A one-shot HTTP listener: returns the first request it gets (head and body).
fn http_listener() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if got.len() >= head_end + 4 + len {
                    break;
                }
            }
        }
        let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        String::from_utf8_lossy(&got).into_owned()
    });
    (url, h)
}

/// Whether any file under `dir` holds `needle` (the broker's database, the agents' job files).
fn any_file_holds(dir: &std::path::Path, needle: &[u8]) -> Option<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(found) = any_file_holds(&p, needle) {
                return Some(found);
            }
        } else if std::fs::metadata(&p).is_ok_and(|m| m.len() < 64 << 20)
            && std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            return Some(p);
        }
    }
    None
}

#[test]
fn webhook_email_and_chat_notifiers_are_called_when_the_run_ends() {
    use base64::Engine as _;
    let server = DemoServer::start();
    let cluster = Cluster::start("observers", 1);
    let (hook, got_hook) = http_listener();
    let (chat, got_chat) = http_listener();
    let (smtp, got_mail) = common::smtp::server(common::smtp::Offer::Plain);
    let password = "pw-d41d8cd98f00b204";
    let out = common::run_env(
        std::path::Path::new("."),
        &[("LOADS_SMTP_PASSWORD", password)],
        &[
            "run",
            "example::get_root",
            "--agents",
            "1",
            "-u",
            "2",
            "--hits",
            "3",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--observer",
            "webhook",
            "--observer-webhook-url",
            &hook,
            "--observer",
            "email",
            "--observer-email-to",
            "ops@example.test",
            "--observer-email-smtp",
            &smtp,
            "--notify-email-user",
            "alice",
            "--notify-email-subject",
            "[{verdict}] {test} {run_id}",
            "--notify",
            "chat",
            "--notify-chat-url",
            &chat,
        ],
        Duration::from_secs(120),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let run_id = run_id_of(&stdout(&out));
    let request = got_hook.join().expect("webhook listener");
    assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
    let body = &request[request.find("\r\n\r\n").expect("body") + 4..];
    let summary: serde_json::Value = serde_json::from_str(body).expect("JSON summary");
    assert_eq!(summary["run_id"], run_id.as_str());
    assert_eq!(summary["hits"], 6);
    assert_eq!(summary["status"], "finished");
    let request = got_chat.join().expect("chat listener");
    let chat_body: serde_json::Value =
        serde_json::from_str(&request[request.find("\r\n\r\n").expect("body") + 4..])
            .expect("chat JSON");
    let text = chat_body["text"].as_str().expect("text");
    assert!(
        text.contains(&run_id) && text.contains("finished") && text.contains("Hits: 6"),
        "{text}"
    );
    let got = got_mail.join().expect("smtp listener");
    let (auth, mail) = (got.auth(), &got.data);
    assert!(mail.contains("To: ops@example.test"), "{mail}");
    assert!(mail.contains(&run_id) && mail.contains("Hits: 6"), "{mail}");
    assert!(
        mail.contains(&format!(
            "Subject: [finished] example::get_root {run_id}\r\n"
        )),
        "{mail}"
    );
    // The password from the environment reached the SMTP server, and nothing else kept it:
    // not the summary, the database or the agent's job file.
    let plain = auth
        .iter()
        .find_map(|a| a.strip_prefix("AUTH PLAIN "))
        .unwrap_or_else(|| panic!("no AUTH PLAIN: {auth:?}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(plain)
        .expect("base64");
    assert_eq!(decoded, format!("\0alice\0{password}").as_bytes());
    assert!(!body.contains(password) && !stdout(&out).contains(password));
    assert!(any_file_holds(&cluster.dir, run_id.as_bytes()).is_some());
    assert_eq!(any_file_holds(&cluster.dir, password.as_bytes()), None);
    // Nor the webhook's URL, which is a chat's secret: workers get no notifier options.
    assert_eq!(any_file_holds(&cluster.dir, hook.as_bytes()), None);

    let bad = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "1",
            "--broker",
            &cluster.front,
            "--observer",
            "webhook",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--notify-webhook-url"),
        "{}",
        stderr(&bad)
    );
    // A login over plain SMTP beyond loopback: refused before the run, naming the fix.
    let plain = common::run_env(
        std::path::Path::new("."),
        &[("LOADS_SMTP_PASSWORD", password)],
        &[
            "run",
            "example::get_root",
            "--agents",
            "1",
            "--broker",
            &cluster.front,
            "--notify",
            "email",
            "--notify-email-to",
            "ops@example.test",
            "--notify-email-smtp",
            "mail.example.test:25",
            "--notify-email-user",
            "alice",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(plain.status.code(), Some(2), "{}", stderr(&plain));
    assert!(
        stderr(&plain).contains("--notify-email-tls starttls")
            && !stderr(&plain).contains(password),
        "{}",
        stderr(&plain)
    );
}

#[test]
fn raw_events_reach_the_caller_and_the_database_one_by_one() {
    let server = DemoServer::start();
    let cluster = Cluster::start("raw", 2);
    let out = run_with_limit(
        &[
            "run",
            "example::websocket_echo",
            "--agents",
            "2",
            "-u",
            "2",
            "--hits",
            "5",
            "--raw-events",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 20, "{text}");
    assert!(
        text.contains("WebSockets:    20 opened · 20 closed · 60 messages received"),
        "{text}"
    );
    let report = cluster.report(&run_id_of(&text));
    assert_eq!(figure(&stdout(&report), "Hits:"), 20, "{}", stdout(&report));
}

#[test]
fn an_agent_stopped_with_sigterm_stops_its_workers() {
    let server = DemoServer::start();
    let cluster = Cluster::start("sigterm", 1);
    let out = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "1",
            "-u",
            "2",
            "-d",
            "60",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--detach",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let work = cluster.dir.join("work0");
    let workers = || {
        let o = std::process::Command::new("pgrep")
            .args(["-f", &format!("{}.*job.json", work.display())])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while workers() == 0 {
        assert!(Instant::now() < deadline, "the worker never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let run_id = stdout(&out)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_end_matches(';')
        .to_owned();
    let stored_hits = || {
        let report = cluster.report(&run_id);
        let text = stdout(&report);
        let hits = if text.lines().any(|l| l.starts_with("Hits:")) {
            figure(&text, "Hits:")
        } else {
            0
        };
        (hits, text)
    };
    // The worker's process is there before its users start (on a loaded machine, seconds
    // before): stop the agent once the worker has sent hits, so that there is something to keep.
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let (hits, text) = stored_hits();
        if hits > 0 {
            break hits;
        }
        assert!(Instant::now() < deadline, "the worker sent no hit: {text}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let agent_pid = cluster.agents[0].child.id();
    std::process::Command::new("kill")
        .args(["-s", "TERM", &agent_pid.to_string()])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(20);
    while workers() > 0 {
        assert!(Instant::now() < deadline, "the worker outlived its agent");
        std::thread::sleep(Duration::from_millis(100));
    }
    // What the worker had sent stays in the run once its agent is gone.
    let (hits, text) = stored_hits();
    assert!(
        hits >= before,
        "{hits} hits kept, {before} before the stop: {text}"
    );
}

#[test]
fn ctrl_c_on_a_distributed_run_without_a_terminal_stops_it() {
    let server = DemoServer::start();
    let cluster = Cluster::start("ctrlc", 1);
    let mut caller = loads()
        .args([
            "run",
            "example::get_root",
            "--agents",
            "1",
            "-u",
            "2",
            "-d",
            "60",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caller");
    // Once the run is going and hits are coming in.
    cluster.ping_until(Duration::from_secs(90), |p| p.contains("busy ("));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stdout(&run_with_limit(
        &["runs", "--broker", &cluster.front],
        Duration::from_secs(30),
    ))
    .lines()
    .any(|l| l.contains("running") && l.split_whitespace().nth(4) != Some("0"))
    {
        assert!(Instant::now() < deadline, "no hits");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::process::Command::new("kill")
        .args(["-s", "INT", &caller.id().to_string()])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    while caller.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the caller did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = caller.wait_with_output().expect("output");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(130), "{text}{}", stderr(&out));
    assert!(text.contains("Result:        INTERRUPTED"), "{text}");
    assert!(figure(&text, "Hits:") > 0, "{text}");
    let runs = stdout(&run_with_limit(
        &["runs", "--broker", &cluster.front],
        Duration::from_secs(30),
    ));
    assert!(runs.contains("stopped"), "{runs}");
}

#[test]
fn merged_percentiles_equal_one_histogram_and_thresholds_judge_the_cluster() {
    let server = DemoServer::start();
    let cluster = Cluster::start("merged", 3);
    let events = cluster.dir.join("events.jsonl");
    let summary = cluster.dir.join("summary.json");
    let out = run_with_limit(
        &[
            "run",
            "example::volume",
            "--agents",
            "3",
            "-u",
            "4",
            "--hits",
            "25",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "-o",
            "stdout",
            "-o",
            "file",
            "-o",
            "json",
            "--output-file-path",
            events.to_str().expect("utf8"),
            "--output-json-path",
            summary.to_str().expect("utf8"),
            "--threshold",
            "hits==300",
            "--threshold",
            "requests<100",
            "--threshold",
            "test=volume hits==300",
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    // Every hit succeeded, but a threshold on the cluster's merged data failed.
    assert_eq!(out.status.code(), Some(99), "{text}\n{}", stderr(&out));
    assert!(text.contains("pass  hits==300"), "{text}");
    assert!(text.contains("pass  test=volume hits==300"), "{text}");
    assert!(text.contains("FAIL  requests<100"), "{text}");

    // The batches as the agents sent them, recorded value by value into one histogram.
    let mut one = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    // The same for the test's hit durations.
    let mut hits = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    let mut batches = 0;
    let lines = std::fs::read_to_string(&events).expect("events file");
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("event line");
        let duration = &v["tests"]["example::volume"]["duration"];
        if v["data_type"] == "batch" && !duration.is_null() {
            let part: loads::__private::internals::Latency =
                serde_json::from_value(duration.clone()).expect("histogram");
            for x in part.0.iter_recorded() {
                hits.record_n(x.value_iterated_to(), x.count_at_value())
                    .expect("record");
            }
        }
        if v["data_type"] != "batch" || v["requests"]["latency"].is_null() {
            continue;
        }
        batches += 1;
        let part: loads::__private::internals::Latency =
            serde_json::from_value(v["requests"]["latency"].clone()).expect("histogram");
        for x in part.0.iter_recorded() {
            one.record_n(x.value_iterated_to(), x.count_at_value())
                .expect("record");
        }
    }
    assert!(batches >= 3, "one batch per agent at least: {batches}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    assert_eq!(j["hits"], 300);
    assert_eq!(j["agents"], 3);
    assert_eq!(j["requests"].as_u64(), Some(one.len()));
    let l = &j["latency"];
    for (name, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p95", 0.95),
        ("p99", 0.99),
        ("p999", 0.999),
        ("max", 1.0),
    ] {
        let want = one.value_at_quantile(q) as f64 / 1000.0;
        let got = l[name].as_f64().expect(name);
        assert!(
            (got - want).abs() < 1e-9,
            "{name}: merged {got} ms, one histogram {want} ms"
        );
        let want = hits.value_at_quantile(q) as f64 / 1000.0;
        let got = j["tests"]["example::volume"]["duration"][name]
            .as_f64()
            .expect(name);
        assert!(
            (got - want).abs() < 1e-9,
            "hit duration {name}: merged {got} ms, one histogram {want} ms"
        );
    }
    assert_eq!(hits.len(), 300, "every hit of every agent has its duration");

    // `loads report` judges the run's stored thresholds again and renders every output.
    let run_id = run_id_of(&text);
    let again = cluster.dir.join("again.json");
    let report = run_with_limit(
        &[
            "report",
            &run_id,
            "--broker",
            &cluster.front,
            "-o",
            "json",
            "--output-json-path",
            again.to_str().expect("utf8"),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(report.status.code(), Some(99), "{}", stderr(&report));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&again).expect("report json")).expect("json");
    assert_eq!(r["hits"], 300);
    assert_eq!(r["latency"], j["latency"]);
    assert_eq!(r["thresholds"], j["thresholds"]);
    assert_eq!(
        r["tests"], j["tests"],
        "the stored run keeps the hit durations"
    );
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn external_runners_run_on_every_agent_with_their_shipped_files() {
    let py = common::python();
    let server = DemoServer::start();
    let cluster = Cluster::start("external", 2);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let summary = cluster.dir.join("external.json");
    // The hand-written runner, shipped with --include-file (relative: run from the repo).
    let out = common::run_in(
        repo,
        &[
            "run",
            "raw.cluster",
            "--agents",
            "2",
            "--broker",
            &cluster.front,
            "--include-file",
            "tests/external/raw_runner.py",
            "--test-runner",
            &format!("{py} tests/external/raw_runner.py {{test}}"),
            "-u",
            "2",
            "--hits",
            "3",
            "-o",
            "stdout",
            "-o",
            "json",
            "--output-json-path",
            summary.to_str().expect("utf8"),
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("json")).expect("json");
    // 2 agents × 2 users × 3 hits, one third of each outcome.
    for (k, v) in [
        ("hits", 12),
        ("successes", 4),
        ("failures", 4),
        ("errors", 4),
        ("requests", 12),
    ] {
        assert_eq!(j[k], v, "{k}: {text}");
    }
    assert_eq!(j["counters"]["raw"], 12);
    assert_eq!(j["sockets"]["opened"], 4);
    assert!(
        j["run_problems"].as_array().expect("array").is_empty(),
        "{j}"
    );

    // A Python TestCase through the Python client, package and test shipped to the agents.
    let out = common::run_in(
        &repo.join("clients/python"),
        &[
            "run",
            "test_site.TestSite.test_home",
            "--agents",
            "2",
            "--broker",
            &cluster.front,
            "--include-file",
            "loads_client/*.py",
            "--include-file",
            "examples/test_site.py",
            "--test-runner",
            &format!("env PYTHONPATH=.:examples {py} -m loads_client {{test}}"),
            "-u",
            "2",
            "--hits",
            "4",
            "-s",
            &server.url,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 16, "{text}");
    assert_eq!(figure(&text, "Successes:"), 16, "{text}");
    assert_eq!(figure(&text, "Requests:"), 16, "{text}");
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn a_failing_runner_on_an_agent_is_a_problem_of_the_run() {
    let py = common::python();
    let cluster = Cluster::start("dying", 2);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = common::run_in(
        repo,
        &[
            "run",
            "raw.die",
            "--agents",
            "2",
            "--broker",
            &cluster.front,
            "--include-file",
            "tests/external/raw_runner.py",
            "--test-runner",
            &format!("{py} tests/external/raw_runner.py {{test}} die"),
            "-u",
            "1",
            "--hits",
            "2",
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert_eq!(
        text.matches("raw runner dying on purpose").count(),
        2,
        "one problem per agent: {text}"
    );
}

#[test]
fn abort_on_threshold_stops_a_cluster_run() {
    let server = DemoServer::start();
    let cluster = Cluster::start("abort", 1);
    let started = Instant::now();
    let out = run_with_limit(
        &[
            "run",
            "example::failing",
            "--agents",
            "1",
            "-u",
            "2",
            "-d",
            "60s",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--threshold",
            "failures<3",
            "--abort-on-threshold",
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(99), "{text}{}", stderr(&out));
    assert!(text.contains("ABORTED (threshold)"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(45), "{text}");
}

#[test]
fn rate_and_stages_are_divided_among_the_agents() {
    let server = DemoServer::start();
    let cluster = Cluster::start("models", 2);
    // 150/s for 2 s over 2 agents: 75/s each, 300 hits in all.
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "2",
            "--rate",
            "150/s",
            "-d",
            "2s",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let hits = figure(&text, "Hits:");
    assert!((294..=306).contains(&hits), "{hits}: {text}");
    assert!(text.contains("Dropped:       0 starts"), "{text}");

    // 5 users over 2 agents: 3 + 2, merged back to 5 in the caller's active-users history.
    let summary = cluster.dir.join("stages.json");
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "2",
            "--stages",
            "5:1s,5:2s",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "-q",
            "-o",
            "json",
            "--output-json-path",
            summary.to_str().expect("utf8"),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("json")).expect("json");
    let users: Vec<u64> = j["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["users"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(users.iter().max(), Some(&5), "{users:?}");
}

#[test]
fn curve_keys_admit_only_authorised_agents_and_callers() {
    let server = DemoServer::start();
    let dir = std::env::temp_dir().join(format!("loads-curve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("authorized")).expect("dir");
    for name in ["broker", "agent", "caller", "stranger"] {
        keygen(&dir, name);
    }
    for name in ["agent", "caller"] {
        std::fs::copy(
            dir.join(format!("{name}.pub")),
            dir.join(format!("authorized/{name}.pub")),
        )
        .expect("copy");
    }
    let p = |f: &str| dir.join(f).to_str().expect("utf8").to_owned();
    // The broker and the agent take their keys from config files, the caller from flags.
    std::fs::write(
        dir.join("broker.toml"),
        format!(
            "curve-key = {:?}\nauthorized-keys = {:?}\nfrontend = \"tcp://127.0.0.1:*\"\n\
             backend = \"tcp://127.0.0.1:*\"\nreceiver = \"tcp://127.0.0.1:*\"\n\
             publisher = \"tcp://127.0.0.1:*\"\nheartbeat = \"tcp://127.0.0.1:*\"\ndb = {:?}\n",
            p("broker.key"),
            p("authorized"),
            p("broker.sqlite")
        ),
    )
    .expect("broker config");
    let broker = Proc::start(&["broker", "-c", &p("broker.toml")]);
    let (front, back) = (
        endpoint(&broker.line, "front"),
        endpoint(&broker.line, "back"),
    );
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "broker = {back:?}\ncurve-key = {:?}\nbroker-key = {:?}\ncache-dir = {:?}\ntest-dir = {:?}\n",
            p("agent.key"),
            p("broker.pub"),
            p("cache"),
            p("work")
        ),
    )
    .expect("agent config");
    let agent = Proc::start(&["agent", "-c", &p("agent.toml")]);
    assert!(agent.line.contains("registered"), "{}", agent.line);
    // An agent with a key the broker does not know never registers.
    let mut stranger_agent = loads()
        .args([
            "agent",
            "--broker",
            &back,
            "--curve-key",
            &p("stranger.key"),
            "--broker-key",
            &p("broker.pub"),
            "--cache-dir",
            &p("cache2"),
            "--test-dir",
            &p("work2"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stranger agent");

    // The authorised caller runs a test through the authorised agent (the worker uses the
    // agent's keys for its results).
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "2",
            "--hits",
            "3",
            "-s",
            &server.url,
            "--broker",
            &front,
            "--curve-key",
            &p("caller.key"),
            "--broker-key",
            &p("broker.pub"),
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 6, "{text}");

    // A stranger's key and no key at all get no answer, and a clear message.
    let (stranger_key, broker_pub) = (p("stranger.key"), p("broker.pub"));
    for keys in [
        vec![
            "--curve-key",
            stranger_key.as_str(),
            "--broker-key",
            broker_pub.as_str(),
        ],
        vec![],
    ] {
        let mut args = vec!["ping", "--broker", &front];
        args.extend(keys.iter().copied());
        let out = run_with_limit(&args, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("never answers a key it does not accept"),
            "{}",
            stderr(&out)
        );
    }
    let ping = run_with_limit(
        &[
            "ping",
            "--broker",
            &front,
            "--curve-key",
            &p("caller.key"),
            "--broker-key",
            &p("broker.pub"),
        ],
        Duration::from_secs(30),
    );
    let ptext = stdout(&ping);
    assert!(
        ptext.contains("Agents:       1"),
        "only the authorised agent: {ptext}"
    );
    assert!(ptext.contains("CURVE keys required"), "{ptext}");
    let refused: u64 = ptext
        .split("rejected, ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refused >= 2, "{ptext}");
    let _ = stranger_agent.kill();
    let _ = stranger_agent.wait();
    drop(agent);
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binding_beyond_loopback_needs_keys_or_insecure() {
    let dir = std::env::temp_dir().join(format!("loads-insecure-{}", std::process::id()));
    let db = dir.join("b.sqlite");
    let eps = |host: &str| {
        vec![
            "--frontend".to_owned(),
            format!("tcp://{host}:*"),
            "--backend".to_owned(),
            "tcp://127.0.0.1:*".to_owned(),
            "--receiver".to_owned(),
            "tcp://127.0.0.1:*".to_owned(),
            "--publisher".to_owned(),
            "tcp://127.0.0.1:*".to_owned(),
            "--heartbeat".to_owned(),
            "tcp://127.0.0.1:*".to_owned(),
            "--db".to_owned(),
            db.to_str().expect("utf8").to_owned(),
        ]
    };
    let mut args = vec!["broker".to_owned()];
    args.extend(eps("0.0.0.0"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_with_limit(&a, Duration::from_secs(30));
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("tcp://0.0.0.0:*")
            && err.contains("not on loopback")
            && err.contains("--insecure"),
        "{err}"
    );
    // With --insecure it starts, and says so.
    let mut child = loads()
        .args(&a)
        .arg("--insecure")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("broker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    assert!(line.contains("listening"), "{line}");
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: --insecure"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flood_of_malformed_frames_leaves_the_broker_and_agents_working() {
    use std::io::Write as _;
    let server = DemoServer::start();
    let cluster = Cluster::start("flood", 1);
    let receiver = endpoint(&cluster.broker.line, "receiver");
    let ctx = zmq::Context::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let bad_json: Vec<Vec<u8>> = vec![
        b"{\"command\":\"register\",\"host\":5,\"pid\":\"x\"}".to_vec(),
        b"{\"command\":\"worker_exited\",\"run_id\":\"nope\",\"code\":3,\"error\":\"forged\"}"
            .to_vec(),
        b"{\"data_type\":\"add_hit\",\"run_id\":\"x\"".to_vec(),
        b"{\"data_type\":\"batch\",\"run_id\":\"x\",\"requests\":{\"latency\":\"!!!\"}}".to_vec(),
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
        b"{\"type\":\"ping\"}".to_vec(),
        vec![b'a'; 2 * 1024 * 1024],
    ];
    // 100 000 frames in all: random bytes, truncated and wrongly typed JSON, wrong frame counts,
    // a huge field, to the front, back and receiver sockets.
    let front = ctx.socket(zmq::DEALER).expect("dealer");
    front.set_sndhwm(0).expect("hwm");
    front.connect(&cluster.front).expect("front");
    let back = ctx.socket(zmq::DEALER).expect("dealer");
    back.set_sndhwm(0).expect("hwm");
    back.connect(&cluster.back).expect("back");
    let push = ctx.socket(zmq::PUSH).expect("push");
    push.set_sndhwm(0).expect("hwm");
    push.connect(&receiver).expect("receiver");
    for i in 0..33_334usize {
        let frame = if i % 10 == 0 {
            bad_json[(i / 10) % bad_json.len()].clone()
        } else {
            let len = (seed % 300) as usize;
            noise(&mut seed, len)
        };
        let _ = front.send_multipart([b"".as_slice(), &frame, &frame], zmq::DONTWAIT);
        let _ = back.send(&frame, zmq::DONTWAIT);
        let _ = push.send(&frame, zmq::DONTWAIT);
    }
    // Raw bytes that are not ZeroMQ at all, at every broker port.
    for name in ["front", "back", "receiver", "publisher", "heartbeat"] {
        let ep = endpoint(&cluster.broker.line, name);
        if let Ok(mut s) = std::net::TcpStream::connect(ep.trim_start_matches("tcp://")) {
            let _ = s.write_all(&noise(&mut seed, 64 * 1024));
        }
    }
    // Let the broker chew through it, then check it still works for real.
    std::thread::sleep(Duration::from_secs(3));
    drop((front, back, push));
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "2",
            "--hits",
            "5",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 10, "{text}");
    let ping = run_with_limit(
        &["ping", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
    let ptext = stdout(&ping);
    let rejected: u64 = ptext
        .split("; ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rejected >= 50_000, "rejected messages reported: {ptext}");
    assert!(ptext.contains("Agents:       1"), "{ptext}");
}

#[test]
fn a_frozen_agent_is_dropped_then_comes_back_by_itself() {
    let server = DemoServer::start();
    let cluster = Cluster::start("freeze", 2);
    let frozen = cluster.agents[0].child.id();
    let caller = loads()
        .args([
            "run",
            "example::health",
            "--agents",
            "2",
            "-u",
            "1",
            "-d",
            "10s",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caller");
    std::thread::sleep(Duration::from_secs(2));
    let signal = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .args(["-s", sig, "--", &format!("-{frozen}")])
            .status();
    };
    signal("STOP");
    // Past the broker's agent timeout (6 s here): dropped.
    std::thread::sleep(Duration::from_secs(8));
    signal("CONT");
    let out = caller.wait_with_output().expect("caller");
    let text = stdout(&out);
    assert!(
        text.contains("was lost during the run"),
        "{text}{}",
        stderr(&out)
    );
    assert!(figure(&text, "Hits:") > 0, "{text}");
    // Resumed, it registers again by itself.
    cluster.ping_until(Duration::from_secs(20), |p| p.contains("Agents:       2"));
}

#[test]
fn a_broker_killed_mid_run_is_a_clear_error_and_agents_come_back_after_its_restart() {
    let server = DemoServer::start();
    let mut cluster = Cluster::start("brokerkill", 1);
    let eps = [
        cluster.front.clone(),
        cluster.back.clone(),
        endpoint(&cluster.broker.line, "receiver"),
        endpoint(&cluster.broker.line, "publisher"),
        endpoint(&cluster.broker.line, "heartbeat"),
    ];
    let spawned = Instant::now();
    let caller = loads()
        .args([
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "1",
            "-d",
            "30s",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caller");
    // Once the run is going and has stored hits (the test binary has reached the broker and the
    // agent, the worker has sent a batch).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let runs = stdout(&run_with_limit(
            &["runs", "--broker", &cluster.front],
            Duration::from_secs(30),
        ));
        let hits = runs
            .lines()
            .find(|l| l.contains("running"))
            .and_then(|l| l.split_whitespace().nth(4))
            .and_then(|h| h.parse::<u64>().ok())
            .unwrap_or(0);
        if hits > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{runs}");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let killed_after = spawned.elapsed();
    cluster.broker.kill_group();
    let started = Instant::now();
    let out = caller.wait_with_output().expect("caller");
    let text = stdout(&out);
    // Its duration ends with the last results, not with the silence that follows.
    let duration: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Duration:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {text}"));
    assert!(
        duration <= killed_after.as_secs_f64() + 0.5,
        "{duration} s, killed after {killed_after:?}: {text}"
    );
    // A lost broker is a failed run (1), not an interruption (130), and it is said within the
    // 5 s of silence the caller allows (plus a second of slack for a loaded machine).
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "the caller must say so within 5 s: {:?} {text}",
        started.elapsed()
    );
    assert!(text.contains("went away"), "{text}{}", stderr(&out));
    // Restarted on the same endpoints: the stored run is there, the agent registers again.
    cluster.broker = Cluster::broker(&cluster.dir, [&eps[0], &eps[1], &eps[2], &eps[3], &eps[4]]);
    let runs = run_with_limit(
        &["runs", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
    let rtext = stdout(&runs);
    assert!(rtext.contains("interrupted"), "{rtext}");
    // Its row agrees with its stored events: the hits of the report, a real duration.
    let run_id = rtext
        .lines()
        .find(|l| l.contains("interrupted"))
        .and_then(|l| l.split_whitespace().next())
        .expect("run id")
        .to_owned();
    let row = rtext
        .lines()
        .find(|l| l.contains("interrupted"))
        .expect("row")
        .to_owned();
    let report = cluster.report(&run_id);
    let hits = figure(&stdout(&report), "Hits:");
    assert!(hits > 0, "{}", stdout(&report));
    assert!(
        row.split_whitespace().any(|w| w == hits.to_string()),
        "row {row:?} vs {hits} hits in the report"
    );
    assert!(!row.contains(" 0.0s"), "{row}");
    cluster.ping_until(Duration::from_secs(20), |p| p.contains("Agents:       1"));
}

#[test]
fn an_agent_takes_a_flood_of_malformed_frames_and_keeps_working() {
    // A broker of our own (a ROUTER) that the agent registers with, then floods.
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).expect("router");
    // Queue the whole flood: none of it may be dropped on our side.
    router.set_sndhwm(0).expect("hwm");
    router.bind("tcp://127.0.0.1:*").expect("bind");
    let ep = router.get_last_endpoint().expect("endpoint").expect("utf8");
    let dir = std::env::temp_dir().join(format!("loads-agent-flood-{}", std::process::id()));
    let mut agent = loads()
        .args([
            "agent",
            "--broker",
            &ep,
            "--cache-dir",
            dir.join("cache").to_str().expect("utf8"),
            "--test-dir",
            dir.join("work").to_str().expect("utf8"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("agent");
    let recv = |timeout_ms: i64| -> Option<(Vec<u8>, serde_json::Value)> {
        let mut items = [router.as_poll_item(zmq::POLLIN)];
        zmq::poll(&mut items, timeout_ms).ok()?;
        if !items[0].is_readable() {
            return None;
        }
        let frames = router.recv_multipart(0).ok()?;
        let v = serde_json::from_slice(frames.get(1)?).ok()?;
        Some((frames[0].clone(), v))
    };
    let (id, hello) = recv(30_000).expect("the agent registers");
    assert_eq!(hello["command"], "register", "{hello}");
    router
        .send_multipart([id.as_slice(), b"{\"command\":\"welcome\"}"], 0)
        .expect("welcome");
    let mut seed = 0x1234_5678_9ABC_DEF0u64;
    for i in 0..100_000usize {
        let frame = match i % 5 {
            0 => b"{\"command\":\"run\",\"run_id\":5}".to_vec(),
            1 => b"{\"command\":\"binary\",\"sha256\":\"zz\",\"offset\":18446744073709551615,\"total\":1}".to_vec(),
            2 => b"{\"command\":\"go\"".to_vec(),
            _ => {
                let len = (seed % 200) as usize;
                noise(&mut seed, len)
            }
        };
        let _ = router.send_multipart([id.as_slice(), &frame, &frame], zmq::DONTWAIT);
    }
    // Behind the flood, a real request: the agent answers it once it has read everything.
    router
        .send_multipart([id.as_slice(), b"{\"command\":\"reregister\"}"], 0)
        .expect("reregister");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        if let Some((_, v)) = recv(1000) {
            answered = v["command"] == "register";
        }
    }
    assert!(answered, "the agent did not answer after the flood");
    assert!(agent.try_wait().expect("wait").is_none(), "the agent died");
    let _ = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", agent.id())])
        .status();
    let _ = agent.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_worker_that_exits_with_an_error_is_a_problem_of_the_run() {
    let server = DemoServer::start();
    let cluster = Cluster::start("workererror", 0);
    // An agent allowed 512 open files: its worker cannot take 1000 users, and says so.
    let dir = cluster.dir.join("lowlimit");
    let mut cmd = loads();
    cmd.args([
        "agent",
        "--broker",
        &cluster.back,
        "--cache-dir",
        dir.join("cache").to_str().expect("utf8"),
        "--test-dir",
        dir.join("work").to_str().expect("utf8"),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .process_group(0);
    common::limit_open_files(&mut cmd, 512);
    let mut child = cmd.spawn().expect("agent");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    let agent = Proc { child, line };
    assert!(agent.line.contains("registered"), "{}", agent.line);
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "1000",
            "--hits",
            "1",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("open files") && text.contains("agent "),
        "the worker's error, named by agent: {text}"
    );
    drop(agent);
}

#[test]
fn scenarios_run_on_every_agent_each_with_its_share() {
    let server = DemoServer::start();
    let cluster = Cluster::start("scenarios", 2);
    let config = cluster.dir.join("scenarios.toml");
    std::fs::write(
        &config,
        format!(
            r#"
server-url = "{url}"

[[scenario]]
name = "open"
tests = "shop::browse=3 shop::search=1"
rate = "40/s"
duration = "3s"

[[scenario]]
name = "closed"
tests = "example::health"
users = 2
hits = 5
start-after = "1s"
"#,
            url = server.url
        ),
    )
    .expect("config");
    let summary = cluster.dir.join("scenarios.json");
    let out = run_with_limit(
        &[
            "run",
            "-c",
            config.to_str().expect("utf8"),
            "--agents",
            "2",
            "--broker",
            &cluster.front,
            "-o",
            "json",
            "--output-json-path",
            summary.to_str().expect("utf8"),
        ],
        Duration::from_secs(90),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The terminal's summary (`-o json` adds to it) shows each agent's share.
    let text = stdout(&out);
    let agents = text
        .split("\nAgents:")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        agents.lines().take(4).filter(|l| l.contains('%')).count(),
        2,
        "{text}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    // The rate is divided among the agents (120 arrivals in all); users × hits run whole on
    // each agent (2 × 2 × 5).
    let open = j["scenarios"]["open"]["hits"].as_u64().expect("open");
    assert!((114..=121).contains(&open), "open: {open} in {j}");
    assert_eq!(j["scenarios"]["closed"]["hits"], 20, "{j}");
    assert_eq!(j["tests"]["example::health"]["hits"], 20, "{j}");
    // Every user of the open scenario logged in once and out once, on both agents.
    assert_eq!(j["counters"]["logins"], j["counters"]["logouts"], "{j}");
    assert_eq!(
        j["lifecycle"]["shop::on_start"]["hits"], j["counters"]["logins"],
        "{j}"
    );
}

/// The id an agent printed when it registered (`loads agent ID registered with …`).
fn agent_id(agent: &Proc) -> String {
    agent
        .line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no agent id in {:?}", agent.line))
        .to_owned()
}

/// `loads agents --json -b FRONT`, parsed.
fn agents_json(front: &str) -> Vec<serde_json::Value> {
    let out = run_with_limit(&["agents", "--json", "-b", front], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn agents_lists_each_agent_idle_then_busy_with_its_run() {
    let server = DemoServer::start();
    let cluster = Cluster::start("agents", 2);
    let ids: Vec<String> = cluster.agents.iter().map(agent_id).collect();
    let listed = agents_json(&cluster.front);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (agent, id) in cluster.agents.iter().zip(&ids) {
        let a = listed
            .iter()
            .find(|a| a["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not in {listed:?}"));
        assert_eq!(a["pid"], agent.child.id(), "{a}");
        assert_eq!(a["state"], "idle", "{a}");
        assert!(a["run"].is_null(), "{a}");
        assert!(a["host"].as_str().is_some_and(|h| !h.is_empty()), "{a}");
        assert!(a["last_heartbeat"].as_f64().is_some_and(|s| s < 5.0), "{a}");
    }
    let table = run_with_limit(&["agents", "-b", &cluster.front], Duration::from_secs(30));
    let text = stdout(&table);
    assert!(text.starts_with("AGENT "), "{text}");
    for id in &ids {
        let row = text
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in {text}"));
        assert!(row.contains(" idle ") && row.ends_with(" -"), "{row}");
    }

    // One agent busy with a run: the listing says which.
    let out = run_with_limit(
        &[
            "run",
            "example::get_root",
            "--agents",
            "1",
            "-d",
            "20",
            "-s",
            &server.url,
            "-b",
            &cluster.front,
            "--detach",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run_id = stdout(&out)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_end_matches(';')
        .to_owned();
    let listed = agents_json(&cluster.front);
    let busy: Vec<&serde_json::Value> = listed.iter().filter(|a| a["state"] == "busy").collect();
    assert_eq!(busy.len(), 1, "{listed:?}");
    assert_eq!(busy[0]["run"], run_id.as_str(), "{listed:?}");
    let stop = run_with_limit(
        &["stop", &run_id, "-b", &cluster.front],
        Duration::from_secs(30),
    );
    assert_eq!(stop.status.code(), Some(0), "{}", stderr(&stop));
}

#[test]
fn stop_agent_stops_one_worker_and_the_run_ends_with_the_others_hits() {
    let server = DemoServer::start();
    let mut cluster = Cluster::start("stop-agent", 2);
    let ids: Vec<String> = cluster.agents.iter().map(agent_id).collect();
    let (url, front) = (server.url.clone(), cluster.front.clone());
    let run = std::thread::spawn(move || {
        let started = Instant::now();
        let summary = common::summary_of(
            "stop-agent",
            &[
                "run",
                "example::get_root",
                "--agents",
                "2",
                "-u",
                "2",
                "-d",
                "12",
                "-s",
                &url,
                "-b",
                &front,
            ],
            // A worker stopped alone is a problem of the run: exit code 1.
            1,
        );
        (summary, started.elapsed())
    });
    // Both workers at work, then the first agent's is stopped.
    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        let listed = agents_json(&cluster.front);
        if listed.len() == 2 && listed.iter().all(|a| a["state"] == "busy") {
            break listed[0]["run"].as_str().expect("run").to_owned();
        }
        assert!(Instant::now() < deadline, "never busy: {listed:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // Busy is when an agent takes the job; its worker may still be starting (on a loaded
    // machine, for seconds) before it sends its first batch.
    std::thread::sleep(Duration::from_secs(5));
    let stop = run_with_limit(
        &["stop", "--agent", &ids[0], "-b", &cluster.front],
        Duration::from_secs(30),
    );
    assert_eq!(stop.status.code(), Some(0), "{}", stderr(&stop));
    assert!(
        stdout(&stop).contains(&run_id) && stdout(&stop).contains("goes on"),
        "{}",
        stdout(&stop)
    );
    // An agent the broker does not know: a clear error, exit 2.
    let unknown = run_with_limit(
        &["stop", "--agent", "no-such-agent", "-b", &cluster.front],
        Duration::from_secs(30),
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no agent \"no-such-agent\""),
        "{}",
        stderr(&unknown)
    );
    let (summary, took) = run.join().expect("the run");
    // The other agent went on to the end of the duration.
    assert!(took >= Duration::from_secs(12), "{took:?}");
    let per_agent = summary["per_agent"].as_array().expect("per_agent");
    let of = |id: &str| {
        per_agent
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {per_agent:?}"))
    };
    let (stopped, other) = (of(&ids[0]), of(&ids[1]));
    assert!(stopped["hits"].as_u64() > Some(0), "{stopped}");
    assert!(
        other["hits"].as_u64() > stopped["hits"].as_u64(),
        "{per_agent:?}"
    );
    let (s_last, o_last) = (
        stopped["last_event"].as_f64().expect("last"),
        other["last_event"].as_f64().expect("last"),
    );
    assert!(o_last - s_last > 2.0, "{per_agent:?}");
    assert_eq!(stopped["lost"], false, "stopped, not lost: {stopped}");
    let problems = summary["run_problems"].to_string();
    assert!(
        problems.contains(&format!(
            "agent {}: its worker was stopped by the user",
            ids[0]
        )),
        "{problems}"
    );
    assert!(!problems.contains("lost"), "{problems}");
    // Idle again: nothing to stop.
    let idle = run_with_limit(
        &["stop", "--agent", &ids[1], "-b", &cluster.front],
        Duration::from_secs(30),
    );
    assert_eq!(idle.status.code(), Some(2));
    assert!(
        stderr(&idle).contains("works for no active run"),
        "{}",
        stderr(&idle)
    );

    // The stored run has the problems its caller saw: `loads report` (and the broker's page,
    // which shows an ended run the same way) names the stopped worker, also after a restart of
    // the broker.
    let report = |front: &str| {
        let out = run_with_limit(&["report", &run_id, "-b", front], Duration::from_secs(30));
        let text = stdout(&out);
        // A problem of the run: exit 1, as the caller's.
        assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
        let listed = text
            .split_once("\nProblems of the run:\n")
            .map(|(_, p)| p.to_owned())
            .unwrap_or_else(|| panic!("no problems of the run in {text}"));
        assert!(
            listed.contains(&format!(
                "agent {}: its worker was stopped by the user",
                ids[0]
            )),
            "{text}"
        );
    };
    report(&cluster.front);
    let json = cluster.dir.join("report.json");
    let out = run_with_limit(
        &[
            "report",
            &run_id,
            "-b",
            &cluster.front,
            "-o",
            "json",
            "--output-json-path",
            json.to_str().expect("utf8"),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report.json")).expect("json");
    assert_eq!(
        stored["run_problems"], summary["run_problems"],
        "the report's problems are the caller's"
    );
    cluster.restart_broker();
    report(&cluster.front);
}

#[test]
fn stop_agent_on_the_last_worker_going_stops_the_whole_run() {
    let server = DemoServer::start();
    let cluster = Cluster::start("stop-last-agent", 1);
    let id = agent_id(&cluster.agents[0]);
    let caller = loads()
        .args([
            "run",
            "example::get_root",
            "--agents",
            "1",
            "-u",
            "2",
            "-d",
            "60",
            "-s",
            &server.url,
            "-b",
            &cluster.front,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caller");
    // Once the run is going and its hits are coming in.
    let deadline = Instant::now() + Duration::from_secs(90);
    let run_id = loop {
        let runs = stdout(&run_with_limit(
            &["runs", "-b", &cluster.front],
            Duration::from_secs(30),
        ));
        if let Some(row) = runs.lines().find(|l| {
            l.ends_with(" running") && l.split_whitespace().nth(4).is_some_and(|h| h != "0")
        }) {
            break row.split_whitespace().next().expect("run id").to_owned();
        }
        assert!(Instant::now() < deadline, "no hits: {runs}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let stop = run_with_limit(
        &["stop", "--agent", &id, "-b", &cluster.front],
        Duration::from_secs(30),
    );
    let stopped_at = Instant::now();
    let said = stdout(&stop);
    assert_eq!(stop.status.code(), Some(0), "{said}{}", stderr(&stop));
    // The reply: the whole run stops, it does not go on.
    assert!(
        said.contains(&format!("Stopping run {run_id}"))
            && said.contains("last worker")
            && !said.contains("goes on"),
        "{said}"
    );
    // Its caller ends as for `loads stop RUN`: interrupted (130), with the hits made, long
    // before the 60 s of its plan.
    let out = common::wait_within(caller, Duration::from_secs(45));
    let text = stdout(&out);
    assert!(
        stopped_at.elapsed() < Duration::from_secs(40),
        "{:?}",
        stopped_at.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{text}{}", stderr(&out));
    assert!(text.contains("Result:        INTERRUPTED"), "{text}");
    assert!(figure(&text, "Hits:") > 0, "{text}");
    // Not a worker stopped while the run went on: the run itself was stopped.
    assert!(!text.contains("stopped by the user"), "{text}");
    let runs = stdout(&run_with_limit(
        &["runs", "-b", &cluster.front],
        Duration::from_secs(30),
    ));
    let row = runs
        .lines()
        .find(|l| l.starts_with(&run_id))
        .unwrap_or_else(|| panic!("{run_id} not in {runs}"));
    assert!(row.ends_with(" stopped"), "{row}");
    // The agent is free again: nothing left to stop.
    let again = run_with_limit(
        &["stop", "--agent", &id, "-b", &cluster.front],
        Duration::from_secs(30),
    );
    assert_eq!(again.status.code(), Some(2), "{}", stdout(&again));
}

#[test]
fn report_attach_and_stop_take_a_unique_prefix_of_a_run_id() {
    let server = DemoServer::start();
    let cluster = Cluster::start("prefix", 1);
    let run = || {
        let out = run_with_limit(
            &[
                "run",
                "example::get_root",
                "--agents",
                "1",
                "-s",
                &server.url,
                "-b",
                &cluster.front,
            ],
            Duration::from_secs(120),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        run_id_of(&stdout(&out))
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    // Ids start with the time in hex: two runs made now share a prefix.
    let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    assert!(common > 0 && common < a.len(), "{a} {b}");
    let unique = &a[..common + 1];

    let report = cluster.report(unique);
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    assert!(
        stdout(&report).contains(&format!("Run id:        {a}")),
        "{}",
        stdout(&report)
    );
    let attach = run_with_limit(
        &["attach", unique, "-b", &cluster.front],
        Duration::from_secs(30),
    );
    assert_eq!(attach.status.code(), Some(0), "{}", stderr(&attach));
    assert!(stdout(&attach).contains(&a), "{}", stdout(&attach));

    // Ambiguous: the candidates are listed, exit 2.
    let ambiguous = cluster.report(&a[..common]);
    assert_eq!(ambiguous.status.code(), Some(2));
    let e = stderr(&ambiguous);
    assert!(
        e.contains("ambiguous") && e.contains(&a) && e.contains(&b),
        "{e}"
    );
    // No run has it: "no run", exit 2.
    let none = cluster.report("zz");
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("no run \"zz\""), "{}", stderr(&none));
    // `stop` resolves the same way (the run is over: nothing to stop, named in full).
    let stop = run_with_limit(
        &["stop", unique, "-b", &cluster.front],
        Duration::from_secs(30),
    );
    assert_eq!(stop.status.code(), Some(2));
    assert!(
        stderr(&stop).contains(&format!("no active run {a:?}")),
        "{}",
        stderr(&stop)
    );
    let stop = run_with_limit(
        &["stop", &a[..common], "-b", &cluster.front],
        Duration::from_secs(30),
    );
    assert_eq!(stop.status.code(), Some(2));
    assert!(stderr(&stop).contains("ambiguous"), "{}", stderr(&stop));
}
