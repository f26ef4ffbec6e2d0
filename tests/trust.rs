//! Trust in the cluster's numbers (issue 12): forged events, roles of keys, workers that never
//! become ready, a full disk under the broker's database, an observer's Ctrl-C. Each test runs a
//! real broker, real agents and the real caller, each its own process, on loopback.

mod common;

use common::cluster::{Cluster, FakeAgent, endpoint, keygen, run_id_of, vm_hwm_kib};
use common::{DemoServer, figure, loads, run_with_limit, stderr, stdout};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The run id and agent id of the first busy agent in `loads ping`'s output.
fn busy_agent(ping: &str) -> Option<(String, String)> {
    ping.lines().find_map(|l| {
        let l = l.trim();
        let at = l.find("busy (")?;
        let run = l[at + 6..].split(')').next()?.to_owned();
        let agent = l.split_whitespace().next()?.to_owned();
        Some((run, agent))
    })
}

/// The seconds of the summary's `Duration:` line.
fn duration_of(text: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix("Duration:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {text}"))
}

/// Sends SIGINT or SIGTERM to a process we started.
fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status();
}

/// Waits for `child` at most `limit`; kills it (by its PID) and fails past that.
fn wait_within(child: std::process::Child, limit: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            signal(pid, "KILL");
            panic!("process {pid} did not end within {limit:?}");
        }
    }
}

#[test]
fn forged_events_with_a_real_run_id_and_agent_id_change_nothing() {
    let server = DemoServer::start();
    let cluster = Cluster::start("forge", 1);
    let receiver = endpoint(&cluster.broker.line, "receiver");
    let caller = loads()
        .args([
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "2",
            "-d",
            "8s",
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
    // What `loads ping` tells anyone who can reach the front socket.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (run_id, agent_id) = loop {
        let ping = run_with_limit(
            &["ping", "--broker", &cluster.front],
            Duration::from_secs(30),
        );
        if let Some(found) = busy_agent(&stdout(&ping)) {
            break found;
        }
        assert!(Instant::now() < deadline, "{}", stdout(&ping));
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(2));
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).expect("push");
    push.connect(&receiver).expect("connect");
    let batch = serde_json::json!({
        "data_type": "batch", "run_id": run_id, "agent_id": agent_id, "hostname": "forger",
        "tests": {"example::health": {"started": 1_000_000, "hits": 1_000_000, "successes": 1_000_000,
                                      "failures": 0, "errors": 0}}
    })
    .to_string();
    let stop = serde_json::json!({
        "data_type": "stopTestRun", "run_id": run_id, "agent_id": agent_id, "hostname": "forger"
    })
    .to_string();
    for guess in ["", "0000", &"0".repeat(64)] {
        for body in [&batch, &stop] {
            if guess.is_empty() {
                push.send(body.as_bytes(), 0).expect("send");
            } else {
                push.send_multipart([guess.as_bytes(), body.as_bytes()], 0)
                    .expect("send");
            }
        }
    }
    let out = wait_within(caller, Duration::from_secs(120));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let hits = figure(&text, "Hits:");
    assert!(hits > 0 && hits < 1_000_000, "forged hits counted: {text}");
    // A forged stopTestRun did not end the run early.
    assert!(duration_of(&text) >= 7.5, "{text}");
    let report = cluster.report(&run_id_of(&text));
    assert_eq!(
        figure(&stdout(&report), "Hits:"),
        hits,
        "{}",
        stdout(&report)
    );
    let ping = stdout(&run_with_limit(
        &["ping", "--broker", &cluster.front],
        Duration::from_secs(30),
    ));
    let rejected: u64 = ping
        .split("; ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        rejected >= 6,
        "every forged message is counted as rejected: {ping}"
    );
}

#[test]
fn keys_have_roles_and_callers_see_their_own_runs_only() {
    let server = DemoServer::start();
    let dir = std::env::temp_dir().join(format!("loads-roles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["agents", "callers", "admins"] {
        std::fs::create_dir_all(dir.join(sub)).expect("dir");
    }
    for name in ["broker", "agent", "caller", "other", "admin"] {
        keygen(&dir, name);
    }
    let p = |f: &str| dir.join(f).to_str().expect("utf8").to_owned();
    for (name, role) in [
        ("agent", "agents"),
        ("caller", "callers"),
        ("other", "callers"),
        ("admin", "admins"),
    ] {
        std::fs::copy(p(&format!("{name}.pub")), p(&format!("{role}/{name}.pub"))).expect("copy");
    }
    let (broker_key, agents, callers, admins) =
        (p("broker.key"), p("agents"), p("callers"), p("admins"));
    let mut cluster = Cluster::start_with(
        "roles",
        0,
        None,
        &[
            "--curve-key",
            &broker_key,
            "--authorized-agents",
            &agents,
            "--authorized-callers",
            &callers,
            "--admin-keys",
            &admins,
        ],
    );
    let broker_pub = p("broker.pub");
    cluster.add_agent_with(&["--curve-key", &p("agent.key"), "--broker-key", &broker_pub]);
    let as_key = |key: &str, args: &[&str]| {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend([
            "--broker".into(),
            cluster.front.clone(),
            "--curve-key".into(),
            p(&format!("{key}.key")),
            "--broker-key".into(),
            broker_pub.clone(),
        ]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run_with_limit(&a, Duration::from_secs(120))
    };
    // A caller's key cannot register as an agent (it would receive jobs).
    let mut impostor = loads()
        .args([
            "agent",
            "--broker",
            &cluster.back,
            "--curve-key",
            &p("caller.key"),
            "--broker-key",
            &broker_pub,
            "--cache-dir",
            &p("cache-impostor"),
            "--test-dir",
            &p("work-impostor"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("impostor agent");
    std::thread::sleep(Duration::from_secs(3));
    let ping = stdout(&as_key("admin", &["ping"]));
    assert!(
        ping.contains("Agents:       1"),
        "only the real agent: {ping}"
    );
    let _ = impostor.kill();
    let _ = impostor.wait();

    let started = as_key(
        "caller",
        &[
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
            "--detach",
        ],
    );
    let text = stdout(&started);
    assert_eq!(started.status.code(), Some(0), "{text}{}", stderr(&started));
    let run_id = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no run id in {text}"))
        .trim_end_matches(';')
        .to_owned();
    // Run ids on a secured broker are the broker's own, and not guessable.
    assert!(run_id.len() >= 20, "{run_id}");
    // The owner sees it; another caller does not, and cannot act on it.
    assert!(stdout(&as_key("caller", &["runs"])).contains(&run_id));
    let other_runs = stdout(&as_key("other", &["runs"]));
    assert!(!other_runs.contains(&run_id), "{other_runs}");
    let other_ping = stdout(&as_key("other", &["ping"]));
    assert!(
        !other_ping.contains(&run_id) && other_ping.contains("another caller's run"),
        "{other_ping}"
    );
    let stop = as_key("other", &["stop", &run_id]);
    assert_eq!(stop.status.code(), Some(2), "{}", stdout(&stop));
    let report = as_key("other", &["report", &run_id]);
    assert_ne!(report.status.code(), Some(0), "{}", stdout(&report));
    assert!(!stdout(&report).contains("Hits:"), "{}", stdout(&report));
    // Another caller cannot follow it on the publisher either, even knowing its id.
    assert_eq!(
        subscribed_messages(
            &p("other.key"),
            &broker_pub,
            &endpoint(&cluster.broker.line, "publisher"),
            &run_id,
        ),
        0
    );
    assert!(
        subscribed_messages(
            &p("caller.key"),
            &broker_pub,
            &endpoint(&cluster.broker.line, "publisher"),
            &run_id,
        ) > 0,
        "the owner follows its run"
    );
    // Notifiers make the broker connect where they say: an admin's only.
    let notify = as_key(
        "caller",
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-s",
            &server.url,
            "--observer",
            "webhook",
            "--observer-webhook-url",
            "http://127.0.0.1:9/",
        ],
    );
    assert_ne!(notify.status.code(), Some(0));
    assert!(stderr(&notify).contains("admin"), "{}", stderr(&notify));
    // An admin sees every run and may stop it.
    assert!(stdout(&as_key("admin", &["runs"])).contains(&run_id));
    let stop = as_key("admin", &["stop", &run_id]);
    assert_eq!(stop.status.code(), Some(0), "{}", stderr(&stop));
    cluster.ping_until(Duration::from_secs(60), |_| {
        stdout(&as_key("caller", &["runs"]))
            .lines()
            .any(|l| l.contains(&run_id) && l.contains("stopped"))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The key pair in a `loads keygen` key file, decoded.
fn key_pair(path: &str) -> ([u8; 32], [u8; 32]) {
    let text = std::fs::read_to_string(path).expect("key file");
    let field = |name: &str| {
        let z85 = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split('"').nth(1))
            .expect("key");
        <[u8; 32]>::try_from(zmq::z85_decode(z85).expect("z85")).expect("32 bytes")
    };
    (field("public"), field("secret"))
}

/// How many publications a subscriber with the key pair in `key` gets in 3 s on `publisher`
/// for topic `run_id`.
fn subscribed_messages(key: &str, broker_pub: &str, publisher: &str, run_id: &str) -> usize {
    let (public, secret) = key_pair(key);
    let server = std::fs::read_to_string(broker_pub).expect("broker.pub");
    let server = zmq::z85_decode(server.trim()).expect("z85");
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).expect("sub");
    sub.set_curve_serverkey(&server).expect("server key");
    sub.set_curve_publickey(&public).expect("public");
    sub.set_curve_secretkey(&secret).expect("secret");
    sub.set_linger(0).expect("linger");
    sub.connect(publisher).expect("connect");
    sub.set_subscribe(run_id.as_bytes()).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    while Instant::now() < deadline {
        if sub.poll(zmq::POLLIN, 100).unwrap_or(0) > 0 {
            while sub.recv_multipart(zmq::DONTWAIT).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// A process that registers as an agent and heartbeats, but ignores every job.
fn silent_agent(back: &str, id: &str) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (back, id) = (back.to_owned(), id.to_owned());
    let handle = std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let s = ctx.socket(zmq::DEALER).expect("dealer");
        s.set_identity(id.as_bytes()).expect("identity");
        s.set_linger(0).expect("linger");
        s.connect(&back).expect("connect");
        s.send(r#"{"command":"register","host":"silent","pid":1}"#, 0)
            .expect("register");
        while !flag.load(Ordering::SeqCst) {
            let _ = s.send(r#"{"command":"heartbeat","busy":null}"#, zmq::DONTWAIT);
            // Whatever the broker sends (the welcome, jobs) is read and ignored.
            while s.recv_multipart(zmq::DONTWAIT).is_ok() {}
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    (stop, handle)
}

#[test]
fn a_worker_that_never_becomes_ready_does_not_hang_the_run() {
    let server = DemoServer::start();
    let mut cluster = Cluster::start_with("unready", 1, None, &["--ready-timeout", "4s"]);
    let (stop, handle) = silent_agent(&cluster.back, "silent-agent-1");
    cluster.ping_until(Duration::from_secs(20), |p| p.contains("Agents:       2"));
    // Two agents, one of which never starts its worker: the run goes on without it.
    let started = Instant::now();
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "2",
            "-u",
            "1",
            "--hits",
            "3",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(120),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert_eq!(figure(&text, "Hits:"), 3, "{text}");
    assert!(
        text.contains("silent-agent-1") && text.contains("not ready within 4s"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(90));
    // Only the silent one: the run fails, naming it, soon after the deadline.
    cluster.agents.clear();
    cluster.ping_until(Duration::from_secs(30), |p| p.contains("Agents:       1"));
    let started = Instant::now();
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(60),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("silent-agent-1") && text.contains("no worker was ready"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{text}");
    stop.store(true, Ordering::SeqCst);
    let _ = handle.join();
}

#[test]
fn ctrl_c_ends_the_wait_for_workers_at_once() {
    let server = DemoServer::start();
    let cluster = Cluster::start_with("waitctrlc", 0, None, &["--ready-timeout", "5m"]);
    let (stop, handle) = silent_agent(&cluster.back, "silent-agent-2");
    cluster.ping_until(Duration::from_secs(20), |p| p.contains("Agents:       1"));
    let caller = loads()
        .args([
            "run",
            "example::health",
            "--agents",
            "1",
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
    // Long enough for the binary upload and one plain progress line.
    cluster.ping_until(Duration::from_secs(90), |p| p.contains("busy ("));
    std::thread::sleep(Duration::from_secs(6));
    let pid = caller.id();
    signal(pid, "INT");
    let sent = Instant::now();
    let out = wait_within(caller, Duration::from_secs(20));
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("waiting for workers: 0/1 ready"),
        "{}",
        stderr(&out)
    );
    // The broker ended the run too: its agent is free again.
    cluster.ping_until(Duration::from_secs(10), |p| {
        p.contains("Active runs:  none")
    });
    stop.store(true, Ordering::SeqCst);
    let _ = handle.join();
}

#[test]
fn sigint_to_an_attached_observer_without_a_terminal_detaches() {
    let server = DemoServer::start();
    let cluster = Cluster::start("attachint", 1);
    let started = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "1",
            "-d",
            "40s",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--detach",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    let observer = loads()
        .args(["attach", "--broker", &cluster.front])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("attach");
    std::thread::sleep(Duration::from_secs(3));
    signal(observer.id(), "INT");
    let out = wait_within(observer, Duration::from_secs(20));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("Detached"), "{}", stdout(&out));
    // The run goes on.
    let ping = stdout(&run_with_limit(
        &["ping", "--broker", &cluster.front],
        Duration::from_secs(30),
    ));
    assert!(!ping.contains("Active runs:  none"), "{ping}");
    let _ = run_with_limit(
        &["stop", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
}

/// Mounts a tmpfs of `bytes` at `dir` (root only); `None` when it cannot.
fn small_disk(dir: &std::path::Path, bytes: u64) -> Option<()> {
    std::fs::create_dir_all(dir).ok()?;
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
        .arg("tmpfs")
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(())
}

#[test]
#[cfg_attr(
    loads_no_root,
    ignore = "needs root to mount a tmpfs (.ci/run runs as root)"
)]
fn a_full_disk_under_the_database_is_never_silent() {
    let base = std::env::temp_dir().join(format!("loads-fulldisk-{}", std::process::id()));
    let disk = base.join("disk");
    // Room for the test binary the caller uploads (kept beside the database) and a little more.
    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_loads"))
        .expect("binary")
        .len();
    assert!(
        small_disk(&disk, binary + 1024 * 1024).is_some(),
        "a tmpfs cannot be mounted although this runs as root"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(disk.clone());
    let server = DemoServer::start();
    let db = disk.join("broker.sqlite");
    let cluster = Cluster::start_with("fulldisk", 1, Some(&db), &[]);
    let wall = Instant::now();
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "10",
            "--hits",
            "2000",
            "--raw-events",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(300),
    );
    let text = stdout(&out);
    // The caller counted every hit, and says that the broker could not store them all.
    assert_eq!(figure(&text, "Hits:"), 20_000, "{text}{}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("could not store"), "{text}");
    // The 10 s the broker waited for its database are not part of the run's duration (nor of
    // its rates).
    assert!(
        duration_of(&text) + 8.0 < wall.elapsed().as_secs_f64(),
        "{} s of {:?}: {text}",
        duration_of(&text),
        wall.elapsed()
    );
    let run_id = run_id_of(&text);
    let runs = stdout(&run_with_limit(
        &["runs", "--broker", &cluster.front],
        Duration::from_secs(30),
    ));
    assert!(
        runs.lines()
            .any(|l| l.contains(&run_id) && l.contains("incompletely stored")),
        "{runs}"
    );
    let report = run_with_limit(
        &["report", &run_id, "--broker", &cluster.front],
        Duration::from_secs(60),
    );
    let rtext = stdout(&report);
    assert_eq!(report.status.code(), Some(1), "{rtext}{}", stderr(&report));
    assert!(rtext.contains("could not be stored"), "{rtext}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn an_agent_whose_worker_outlived_a_broker_restart_is_not_given_new_runs() {
    let server = DemoServer::start();
    let mut cluster = Cluster::start("orphan", 1);
    let eps = [
        cluster.front.clone(),
        cluster.back.clone(),
        endpoint(&cluster.broker.line, "receiver"),
        endpoint(&cluster.broker.line, "publisher"),
        endpoint(&cluster.broker.line, "heartbeat"),
    ];
    let started = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-d",
            "40s",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--detach",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    cluster.ping_until(Duration::from_secs(90), |p| p.contains("busy ("));
    std::thread::sleep(Duration::from_secs(2));
    cluster.broker.kill_group();
    cluster.broker = Cluster::broker(&cluster.dir, [&eps[0], &eps[1], &eps[2], &eps[3], &eps[4]]);
    // The agent registers again, still running the old run's worker: it is busy, not idle.
    cluster.ping_until(Duration::from_secs(30), |p| {
        p.contains("Agents:       1") && p.contains("outlived a restart")
    });
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("0 available"), "{}", stderr(&out));
}

#[test]
fn a_subscriber_gets_only_the_runs_it_names() {
    let server = DemoServer::start();
    let cluster = Cluster::start("subs", 1);
    let started = run_with_limit(
        &[
            "run",
            "example::health",
            "--agents",
            "1",
            "-d",
            "20s",
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "--detach",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    let run_id = stdout(&started)
        .split_whitespace()
        .nth(2)
        .expect("run id")
        .trim_end_matches(';')
        .to_owned();
    cluster.ping_until(Duration::from_secs(90), |p| p.contains("busy ("));
    let publisher = endpoint(&cluster.broker.line, "publisher");
    let count = |topic: &[u8]| {
        let ctx = zmq::Context::new();
        let sub = ctx.socket(zmq::SUB).expect("sub");
        sub.set_linger(0).expect("linger");
        sub.connect(&publisher).expect("connect");
        sub.set_subscribe(topic).expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut n = 0;
        while Instant::now() < deadline {
            if sub.poll(zmq::POLLIN, 100).unwrap_or(0) > 0 {
                while sub.recv_multipart(zmq::DONTWAIT).is_ok() {
                    n += 1;
                }
            }
        }
        n
    };
    // Everything (an empty prefix), a prefix of the run id, a made-up topic: nothing.
    assert_eq!(count(b""), 0);
    assert_eq!(count(&run_id.as_bytes()[..4]), 0);
    assert_eq!(count(&[b'x'; 200]), 0);
    // The run's id: its publications.
    assert!(count(run_id.as_bytes()) > 0);
    let _ = run_with_limit(
        &["stop", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
}

#[test]
fn a_database_that_cannot_be_opened_is_named_once() {
    let out = run_with_limit(
        &["broker", "--db", "/proc/loads-no-such-dir/broker.sqlite"],
        Duration::from_secs(30),
    );
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert_eq!(
        err.matches("/proc/loads-no-such-dir").count(),
        1,
        "the path once: {err}"
    );
}

/// Base64 of a per-second histogram as workers send it (V2 + deflate, the timeline's range and
/// precision) holding one request of 1 ms.
fn second_histogram() -> String {
    use base64::Engine as _;
    use hdrhistogram::serialization::Serializer as _;
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 2).expect("h");
    h.record(1000).expect("record");
    let mut buf = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(&h, &mut buf)
        .expect("serialize");
    base64::engine::general_purpose::STANDARD.encode(&buf)
}

/// `loads run example::health --agents 1 ...` on `cluster`, writing its JSON summary to
/// `summary`: the caller of a run for a [`FakeAgent`] to take.
fn caller_of_one_agent(cluster: &Cluster, summary: &std::path::Path) -> std::process::Child {
    loads()
        .args([
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "1",
            "--hits",
            "1",
            "-s",
            "http://127.0.0.1:9",
            "--broker",
            &cluster.front,
            "-q",
            "-o",
            "json",
            "--output-json-path",
            summary.to_str().expect("utf8"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caller")
}

#[test]
fn seconds_a_worker_dates_outside_the_run_cost_neither_broker_nor_caller() {
    // An agent with a valid key plays its worker: batches of 600 timeline seconds each (the
    // most a batch may carry), each second with its histogram (31 KiB once decoded), dated in
    // 2002. Merged as they came, 6000 of them held 6000 histograms in the broker and in the
    // caller until their next compaction, and 6000 seconds in the caller's timeline for good.
    let cluster = Cluster::start("stray-seconds", 0);
    let mut agent = FakeAgent::register(&cluster.back, "fake-agent-1");
    let summary = cluster.dir.join("summary.json");
    let caller = caller_of_one_agent(&cluster, &summary);
    let job = agent.take_job(Duration::from_secs(120));
    let (run_id, token) = (
        job["run_id"].as_str().expect("run id").to_owned(),
        job["token"].as_str().expect("token").to_owned(),
    );
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).expect("push");
    push.set_linger(5000).expect("linger");
    push.connect(&endpoint(&cluster.broker.line, "receiver"))
        .expect("connect");
    let send = |mut event: serde_json::Value| {
        event["run_id"] = run_id.clone().into();
        event["agent_id"] = agent.id.clone().into();
        event["hostname"] = "fake".into();
        push.send_multipart([token.as_bytes(), event.to_string().as_bytes()], 0)
            .expect("send");
    };
    let broker_pid = cluster.broker.child.id();
    let before = vm_hwm_kib(broker_pid);
    let h = second_histogram();
    for b in 0..10i64 {
        let timeline: serde_json::Map<String, serde_json::Value> = (0..600)
            .map(|j| {
                let second = serde_json::json!({
                    "hits": 0, "successes": 0, "failures": 0, "errors": 0, "requests": 1,
                    "socket_messages": 0, "users": 0, "latency": h,
                });
                ((1_009_843_200 + b * 600 + j).to_string(), second)
            })
            .collect();
        send(serde_json::json!({"data_type": "batch", "timeline": timeline}));
    }
    send(
        serde_json::json!({"data_type": "batch", "tests": {"example::health":
        {"started": 1, "hits": 1, "successes": 1, "failures": 0, "errors": 0}}}),
    );
    send(serde_json::json!({"data_type": "stopTestRun"}));
    // The broker takes them in a few turns of its loop.
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        agent.beat();
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = vm_hwm_kib(broker_pid);
    agent.send(&serde_json::json!({"command": "worker_exited", "run_id": run_id, "code": 0}));
    let out = wait_within(caller, Duration::from_secs(120));
    let err = stderr(&out);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let grew = after.saturating_sub(before) / 1024;
    eprintln!("the broker's peak memory grew by {grew} MiB");
    assert!(
        grew < 100,
        "the broker's peak memory grew by {grew} MiB ({before} KiB to {after} KiB)"
    );
    assert_eq!(j["hits"], 1, "{err}");
    let seconds = j["timeline"].as_array().expect("timeline").len();
    assert!(
        seconds < 30,
        "{seconds} timeline seconds in the caller's summary"
    );
    assert!(err.contains("figures dated outside the run"), "{err}");
}

#[test]
fn an_agent_s_long_host_names_are_cut() {
    // An agent's host (1 MiB at most, the back socket's bound) is listed to every caller, and
    // its worker's hostname (16 MiB at most) kept and shown in the summary's agents.
    let cluster = Cluster::start("long-hosts", 0);
    let mut agent = FakeAgent::register_on(&cluster.back, "fake-agent-1", &"h".repeat(512 << 10));
    let ping = run_with_limit(
        &["ping", "--broker", &cluster.front],
        Duration::from_secs(30),
    );
    let listed = stdout(&ping);
    let start: String = listed.chars().take(500).collect();
    assert!(listed.contains("hhh…"), "{start}");
    assert!(listed.len() < 16 * 1024, "{} bytes: {start}", listed.len());
    let summary = cluster.dir.join("summary.json");
    let caller = caller_of_one_agent(&cluster, &summary);
    let job = agent.take_job(Duration::from_secs(120));
    let run_id = job["run_id"].as_str().expect("run id").to_owned();
    let token = job["token"].as_str().expect("token").to_owned();
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).expect("push");
    push.set_linger(5000).expect("linger");
    push.connect(&endpoint(&cluster.broker.line, "receiver"))
        .expect("connect");
    for event in [
        serde_json::json!({"data_type": "batch", "tests": {"example::health":
            {"started": 1, "hits": 1, "successes": 1, "failures": 0, "errors": 0}}}),
        serde_json::json!({"data_type": "stopTestRun"}),
    ] {
        let mut event = event;
        event["run_id"] = run_id.clone().into();
        event["agent_id"] = agent.id.clone().into();
        event["hostname"] = "n".repeat(1 << 20).into();
        push.send_multipart([token.as_bytes(), event.to_string().as_bytes()], 0)
            .expect("send");
    }
    agent.send(&serde_json::json!({"command": "worker_exited", "run_id": run_id, "code": 0}));
    let out = wait_within(caller, Duration::from_secs(120));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    assert_eq!(j["hits"], 1, "{}", stderr(&out));
    let host = j["per_agent"][0]["hostname"].as_str().expect("hostname");
    assert!(
        host.len() <= 2048 + '…'.len_utf8() && host.ends_with('…'),
        "{} bytes",
        host.len()
    );
}

#[test]
fn an_agent_s_repeated_worker_errors_do_not_grow_the_broker() {
    // An agent with a valid key says again and again that the worker of its run failed, each
    // time with an error of almost 1 MiB (the back socket's bound): the broker held each one,
    // whole, until the run ended, and kept the first 100 (cut) only then.
    let cluster = Cluster::start("worker-errors", 0);
    let mut agent = FakeAgent::register(&cluster.back, "fake-agent-1");
    let summary = cluster.dir.join("summary.json");
    let caller = caller_of_one_agent(&cluster, &summary);
    let job = agent.take_job(Duration::from_secs(120));
    let run_id = job["run_id"].as_str().expect("run id").to_owned();
    let broker_pid = cluster.broker.child.id();
    let before = vm_hwm_kib(broker_pid);
    let error = "e".repeat((1 << 20) - 1024);
    for _ in 0..200 {
        agent.send(&serde_json::json!({
            "command": "worker_exited", "run_id": run_id, "code": 3, "error": error,
        }));
        agent.beat();
    }
    // The broker reads them in a few turns of its loop; the run ends 2 s after the last.
    std::thread::sleep(Duration::from_millis(1500));
    let after = vm_hwm_kib(broker_pid);
    let out = wait_within(caller, Duration::from_secs(120));
    let grew = after.saturating_sub(before) / 1024;
    eprintln!("the broker's peak memory grew by {grew} MiB");
    assert!(
        grew < 100,
        "the broker's peak memory grew by {grew} MiB ({before} KiB to {after} KiB)"
    );
    // What the run keeps is what it kept before: the first 100, cut, and a count of the rest.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let problems: Vec<&str> = j["run_problems"]
        .as_array()
        .expect("run problems")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    let cut = format!(
        "agent fake-agent-1: {}…",
        &error[..2048 - "agent fake-agent-1: ".len()]
    );
    assert_eq!(
        problems.iter().filter(|p| **p == cut).count(),
        100,
        "{} problems",
        problems.len()
    );
    assert!(
        problems.contains(&"100 more problems of this run were not kept (at most 100 are)"),
        "{:?}",
        problems
            .iter()
            .filter(|p| p.len() < 200)
            .collect::<Vec<_>>()
    );
}
