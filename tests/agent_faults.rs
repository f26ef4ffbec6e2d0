//! An agent facing a broker that refuses its key, or that restarts: what it says, and how it
//! stops. Real processes over ZeroMQ on loopback, stopped by their PIDs.

mod common;

use common::cluster::{Cluster, Proc, endpoint, keygen};
use common::loads;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// An agent we started, its stdout and stderr in files; killed by its PID when dropped.
struct Agent {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Agent {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Agent {
        let (out, err) = (
            dir.join(format!("{name}.stdout")),
            dir.join(format!("{name}.stderr")),
        );
        let child = loads()
            .arg("agent")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .process_group(0)
            .spawn()
            .expect("start agent");
        Agent { child, out, err }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits (polling, at most `limit`) until `ok` holds for its stderr.
    fn wait_stderr(&self, limit: Duration, ok: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ok(&self.stderr()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        ok(&self.stderr())
    }

    /// Sends `signal` to the agent (by its PID) and waits at most `limit` for its exit code.
    fn signal_and_wait(&mut self, signal: &str, limit: Duration) -> Option<i32> {
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loads-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn an_agent_whose_key_is_refused_warns_and_stops_cleanly_on_sigterm() {
    let dir = temp_dir("refused-agent");
    std::fs::create_dir_all(dir.join("authorized")).expect("dir");
    for name in ["broker", "agent", "stranger"] {
        keygen(&dir, name);
    }
    std::fs::copy(dir.join("agent.pub"), dir.join("authorized/agent.pub")).expect("copy");
    let p = |f: &str| dir.join(f).to_str().expect("utf8").to_owned();
    let any = "tcp://127.0.0.1:*";
    let broker = Proc::start(&[
        "broker",
        "--curve-key",
        &p("broker.key"),
        "--authorized-keys",
        &p("authorized"),
        "--frontend",
        any,
        "--backend",
        any,
        "--receiver",
        any,
        "--publisher",
        any,
        "--heartbeat",
        any,
        "--db",
        &p("broker.sqlite"),
    ]);
    let back = endpoint(&broker.line, "back");
    for signal in ["TERM", "INT"] {
        let started = Instant::now();
        let mut agent = Agent::start(
            &dir,
            &format!("stranger-{signal}"),
            &[
                "--broker",
                &back,
                "--curve-key",
                &p("stranger.key"),
                "--broker-key",
                &p("broker.pub"),
                "--cache-dir",
                &p("cache"),
                "--test-dir",
                &p("work"),
            ],
        );
        let warned = agent.wait_stderr(Duration::from_secs(15), |e| {
            e.contains("no answer from the broker") && e.contains("Still trying")
        });
        assert!(
            warned,
            "no warning after {:?}: {:?}",
            started.elapsed(),
            agent.stderr()
        );
        assert!(
            !agent.stdout().contains("registered"),
            "{:?}",
            agent.stdout()
        );
        // It keeps trying, and still stops at once when asked.
        std::thread::sleep(Duration::from_secs(1));
        let code = agent.signal_and_wait(signal, Duration::from_secs(3));
        let err = agent.stderr();
        assert_eq!(code, Some(0), "SIG{signal}: {err}");
        assert!(!err.contains("Interrupted system call"), "{err}");
        assert!(!err.to_lowercase().contains("error"), "{err}");
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_agent_says_when_it_registers_again_after_a_broker_restart() {
    let mut cluster = Cluster::start("reregister", 0);
    let dir = cluster.dir.clone();
    let p = |f: &str| dir.join(f).to_str().expect("utf8").to_owned();
    let agent = Agent::start(
        &dir,
        "agent",
        &[
            "--broker",
            &cluster.back,
            "--cache-dir",
            &p("cache"),
            "--test-dir",
            &p("work"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agent.stdout().contains("registered") {
        assert!(Instant::now() < deadline, "never registered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let eps = [
        cluster.front.clone(),
        cluster.back.clone(),
        endpoint(&cluster.broker.line, "receiver"),
        endpoint(&cluster.broker.line, "publisher"),
        endpoint(&cluster.broker.line, "heartbeat"),
    ];
    cluster.broker.kill_group();
    cluster.broker = Cluster::broker(&dir, [&eps[0], &eps[1], &eps[2], &eps[3], &eps[4]]);
    let again = agent.wait_stderr(Duration::from_secs(20), |e| {
        e.contains("asks this agent to register again") && e.contains("registered again with")
    });
    assert!(again, "{:?}", agent.stderr());
    cluster.ping_until(Duration::from_secs(20), |out| {
        out.contains("Agents:       1")
    });
}
