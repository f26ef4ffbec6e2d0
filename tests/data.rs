//! Test data (feeders), through the real binary against the real demo server on loopback: a
//! `queue` hands out each row once and then the documented exhaustion error, `queue-stop`
//! stops the users instead, `per-user` gives each user its own row, the formats and the config
//! file's `[[data]]` work, and bad data is refused (exit 2) before any load.
//!
//! The bundled `example::login_from_data` test logs in with a row's `user` and `password` and
//! counts `account USER`: the counters of the JSON summary are the rows the run used.

mod common;

use common::{DemoServer, run_in, stderr};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loads-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

/// `accounts.csv` with `n` accounts `u0`..: the demo server accepts any user with its password.
fn accounts(dir: &Path, n: usize) {
    let mut text = String::from("user,password\n");
    for i in 0..n {
        text.push_str(&format!("u{i},pw{i}\n"));
    }
    std::fs::write(dir.join("accounts.csv"), text).expect("write");
}

/// Runs `loads ARGS` in `dir` with the JSON summary; returns the exit code, the summary and
/// stderr.
fn run_json(dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = args.to_vec();
    all.extend(["-q", "-o", "json", "--output-json-path", "summary.json"]);
    let out = run_in(dir, &all, Duration::from_secs(90));
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap_or_else(|_| {
        panic!("no summary; stderr: {}", stderr(&out));
    });
    (
        out.status.code(),
        serde_json::from_str(&text).expect("json"),
        stderr(&out),
    )
}

/// The accounts used, with how many hits each: the `account USER` counters.
fn rows_used(summary: &serde_json::Value) -> BTreeMap<String, u64> {
    summary["counters"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("account ")?.to_owned(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn problems(summary: &serde_json::Value) -> Vec<(String, u64)> {
    summary["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["message"].as_str().unwrap_or_default().to_owned(),
                p["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn a_queue_uses_each_row_once_then_says_it_is_exhausted() {
    let server = DemoServer::start();
    let d = dir("queue");
    accounts(&d, 50);
    // 5 users × 11 hits = 55 requests for 50 rows, on 2 threads.
    let (code, s, err) = run_json(
        &d,
        &[
            "run",
            "example::login_from_data",
            "--data",
            "accounts=accounts.csv:queue",
            "-u",
            "5",
            "--hits",
            "11",
            "--threads",
            "2",
            "-s",
            &server.url,
        ],
    );
    assert_eq!(code, Some(1), "the exhausted hits are errors: {err}");
    let used = rows_used(&s);
    assert_eq!(used.len(), 50, "every row used: {used:?}");
    assert!(used.values().all(|n| *n == 1), "no row twice: {used:?}");
    assert_eq!(
        (s["successes"].as_u64(), s["errors"].as_u64()),
        (Some(50), Some(5))
    );
    assert_eq!(
        problems(&s),
        vec![(
            "data 'accounts' exhausted: each of its 50 rows was used once (strategy queue)".into(),
            5
        )]
    );
}

#[test]
fn queue_stop_stops_the_users_and_per_user_keeps_one_row_per_user() {
    let server = DemoServer::start();
    let d = dir("stop");
    accounts(&d, 30);
    let (code, s, err) = run_json(
        &d,
        &[
            "run",
            "example::login_from_data",
            "--data",
            "accounts=accounts.csv:queue-stop",
            "-u",
            "5",
            "--hits",
            "20",
            "-s",
            &server.url,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (s["hits"].as_u64(), s["errors"].as_u64()),
        (Some(30), Some(0))
    );
    assert_eq!(rows_used(&s).len(), 30);

    // 6 users × 4 hits over 10 rows: 6 distinct rows, each used by its user's 4 hits.
    let (code, s, err) = run_json(
        &d,
        &[
            "run",
            "example::login_from_data",
            "--data",
            "accounts=accounts.csv:per-user",
            "-u",
            "6",
            "--hits",
            "4",
            "--threads",
            "3",
            "-s",
            &server.url,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let used = rows_used(&s);
    assert_eq!(used.len(), 6, "{used:?}");
    assert!(used.values().all(|n| *n == 4), "{used:?}");

    // More users than rows: the users without a row get the exhaustion error.
    let (code, s, _) = run_json(
        &d,
        &[
            "run",
            "example::login_from_data",
            "--data",
            "accounts=accounts.csv:per-user",
            "-u",
            "32",
            "-s",
            &server.url,
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        (s["successes"].as_u64(), s["errors"].as_u64()),
        (Some(30), Some(2))
    );
}

#[test]
fn json_files_and_the_config_files_data_tables_work() {
    let server = DemoServer::start();
    let d = dir("formats");
    std::fs::write(
        d.join("a.json"),
        r#"[{"user": "ann", "password": "x"}, {"user": "ben", "password": "y"}]"#,
    )
    .expect("write");
    std::fs::write(
        d.join("a.jsonl"),
        "{\"user\": \"cat\", \"password\": \"x\"}\n{\"user\": \"dan\", \"password\": 7}\n",
    )
    .expect("write");
    for (file, want) in [("a.json", ["ann", "ben"]), ("a.jsonl", ["cat", "dan"])] {
        let spec = format!("accounts={file}");
        let (code, s, err) = run_json(
            &d,
            &[
                "run",
                "example::login_from_data",
                "--data",
                &spec,
                "--hits",
                "4",
                "-s",
                &server.url,
            ],
        );
        assert_eq!(code, Some(0), "{err}");
        // circular (the default): round and round.
        let used = rows_used(&s);
        assert_eq!(used.keys().map(String::as_str).collect::<Vec<_>>(), want);
        assert!(used.values().all(|n| *n == 2), "{used:?}");
    }
    std::fs::write(
        d.join("loads.toml"),
        format!(
            "test = \"example::login_from_data\"\nserver-url = \"{}\"\nhits = 3\n\n[[data]]\nname = \"accounts\"\nfile = \"a.json\"\nstrategy = \"queue\"\n",
            server.url
        ),
    )
    .expect("config");
    let (code, s, _) = run_json(&d, &["run", "-c", "loads.toml"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        (s["successes"].as_u64(), s["errors"].as_u64()),
        (Some(2), Some(1))
    );
}

#[test]
fn bad_data_is_refused_before_any_load() {
    let d = dir("bad");
    std::fs::write(d.join("empty.csv"), "").expect("write");
    std::fs::write(d.join("ragged.csv"), "user,password\nu1,p1\nu2\n").expect("write");
    std::fs::write(d.join("ok.csv"), "user,password\nu1,p1\n").expect("write");
    // No server at all: nothing may be sent before the refusal.
    let url = "http://127.0.0.1:9";
    let cases: &[(&[&str], &str)] = &[
        (
            &["--data", "accounts=missing.csv"],
            "data 'accounts': missing.csv: cannot read it",
        ),
        (&["--data", "accounts=empty.csv"], "the file is empty"),
        (
            &["--data", "accounts=ragged.csv"],
            "line 3 has 1 field, the header line has 2",
        ),
        (
            &["--data", "accounts=ok.csv:queu"],
            "unknown strategy \"queu\"",
        ),
        (
            &["--data", "accounts=ok.csv", "--data", "accounts=ok.csv"],
            "given twice",
        ),
        (
            &[],
            "example::login_from_data uses data 'accounts', which the run does not declare",
        ),
        (
            &["--data", "other=ok.csv"],
            "add --data accounts=FILE[:STRATEGY]",
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["run", "example::login_from_data", "-s", url];
        args.extend_from_slice(extra);
        let out = run_in(&d, &args, Duration::from_secs(30));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(err.contains("--data"), "{extra:?} names the option: {err}");
    }
    // A test that uses no data runs without any.
    let out = run_in(
        &d,
        &["run", "example::get_root", "-s", url],
        Duration::from_secs(30),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused connection is an error, not a usage error"
    );
}

/// `--agents N --broker FRONT` and the rest of a cluster run of `example::login_from_data`.
fn on_cluster<'a>(front: &'a str, agents: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "example::login_from_data",
        "--agents",
        agents,
        "--broker",
        front,
    ];
    args.extend_from_slice(rest);
    args
}

#[test]
fn on_a_cluster_queue_rows_are_used_once_across_agents_and_per_user_rows_differ() {
    let server = DemoServer::start();
    let cluster = common::cluster::Cluster::start("data-queue", 3);
    let d = dir("cluster-queue");
    accounts(&d, 1000);
    // 3 agents × 20 users for 4 s: far more requests than rows.
    let (code, s, err) = run_json(
        &d,
        &on_cluster(
            &cluster.front,
            "3",
            &[
                "--data",
                "accounts=accounts.csv:queue",
                "-u",
                "20",
                "-d",
                "4s",
                "--think-time",
                "5ms",
                "-s",
                &server.url,
            ],
        ),
    );
    assert_eq!(code, Some(1), "the exhausted hits are errors: {err}");
    let used = rows_used(&s);
    let twice: Vec<_> = used.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "rows used twice: {twice:?}");
    assert_eq!(used.len(), 1000, "no row missing");
    assert_eq!(s["successes"].as_u64(), Some(1000));
    let p = problems(&s);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        p[0].0,
        "data 'accounts' exhausted: each of its 1000 rows was used once (strategy queue)"
    );
    assert_eq!(Some(p[0].1), s["errors"].as_u64());
    assert!(p[0].1 >= 1, "the 1001st request is the exhaustion: {p:?}");

    // per-user: 60 users, 60 distinct rows, each for its user's 3 hits.
    let (code, s, err) = run_json(
        &d,
        &on_cluster(
            &cluster.front,
            "3",
            &[
                "--data",
                "accounts=accounts.csv:per-user",
                "-u",
                "20",
                "--hits",
                "3",
                "-s",
                &server.url,
            ],
        ),
    );
    assert_eq!(code, Some(0), "{err}");
    let used = rows_used(&s);
    assert_eq!(used.len(), 60, "{used:?}");
    assert!(used.values().all(|n| *n == 3), "{used:?}");
}

#[test]
fn an_agent_killed_mid_run_makes_no_row_be_used_twice() {
    let server = DemoServer::start();
    let mut cluster = common::cluster::Cluster::start("data-kill", 3);
    let d = dir("cluster-kill");
    accounts(&d, 20_000);
    let args: Vec<String> = on_cluster(
        &cluster.front,
        "3",
        &[
            "--data",
            "accounts=accounts.csv:queue",
            "-u",
            "20",
            "-d",
            "8s",
            "--think-time",
            "50ms",
            "-s",
            &server.url,
            "-q",
            "-o",
            "json",
            "--output-json-path",
            "summary.json",
        ],
    )
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut caller = common::loads()
        .current_dir(&d)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("caller");
    std::thread::sleep(Duration::from_secs(4));
    // The agent and its worker (its process group), by PID.
    cluster.agents[0].kill_group();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while caller.try_wait().expect("wait").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the caller did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = caller.wait_with_output().expect("output");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a lost agent fails the run: {}",
        stderr(&out)
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).expect("summary"))
            .expect("json");
    let used = rows_used(&s);
    let twice: Vec<_> = used.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "rows used twice: {twice:?}");
    assert!(used.len() > 500, "the others went on: {} rows", used.len());
    assert_eq!(s["errors"].as_u64(), Some(0), "{:?}", problems(&s));
}

#[test]
#[cfg_attr(
    loads_no_python,
    ignore = "needs python3 with pyzmq and requests (.ci/run installs them; or set LOADS_TEST_PYTHON)"
)]
fn python_runners_get_rows_of_the_same_data_sources() {
    let py = common::python();
    let server = DemoServer::start();
    let d = dir("python");
    accounts(&d, 10);
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python");
    let cmd = format!(
        "env PYTHONPATH={}:{} {py} -m loads_client {{test}}",
        client.display(),
        client.join("examples").display()
    );
    let run = |spec: &str, users: &str, hits: &str| {
        run_json(
            &d,
            &[
                "run",
                "test_accounts.TestAccounts.test_login",
                "--test-runner",
                &cmd,
                "--data",
                spec,
                "-u",
                users,
                "--hits",
                hits,
                "-s",
                &server.url,
            ],
        )
    };
    // queue: 4 processes × 3 hits for 10 rows.
    let (code, s, err) = run("accounts=accounts.csv:queue", "4", "3");
    assert_eq!(code, Some(1), "{err}");
    let used = rows_used(&s);
    assert_eq!(used.len(), 10, "{used:?}");
    assert!(used.values().all(|n| *n == 1), "{used:?}");
    assert_eq!(
        (s["successes"].as_u64(), s["errors"].as_u64()),
        (Some(10), Some(2))
    );
    assert!(
        problems(&s)[0].0.starts_with("data 'accounts' exhausted"),
        "{:?}",
        problems(&s)
    );
    // per-user: each process keeps its row.
    let (code, s, err) = run("accounts=accounts.csv:per-user", "3", "2");
    assert_eq!(code, Some(0), "{err}");
    let used = rows_used(&s);
    assert_eq!(used.len(), 3, "{used:?}");
    assert!(used.values().all(|n| *n == 2), "{used:?}");
    // queue-stop: the processes stop when the rows run out; no error.
    let (code, s, err) = run("accounts=accounts.csv:queue-stop", "4", "5");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (s["successes"].as_u64(), s["errors"].as_u64()),
        (Some(10), Some(0))
    );
}
