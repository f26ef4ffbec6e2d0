//! Helpers for the cluster tests: a real broker and real agents, each its own process, over
//! ZeroMQ on loopback, stopped by their PIDs (and process groups) when dropped.
#![allow(dead_code)]

use super::{loads, run_with_limit, stderr, stdout};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A process we started, stopped by its PID (and its process group) when dropped.
pub struct Proc {
    pub child: Child,
    pub line: String,
}

impl Proc {
    pub fn start(args: &[&str]) -> Proc {
        let mut child = loads()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("start loads");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("banner");
        Proc { child, line }
    }

    pub fn kill_group(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_group();
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub broker: Proc,
    pub front: String,
    pub back: String,
    pub agents: Vec<Proc>,
}

pub fn endpoint(line: &str, name: &str) -> String {
    let at = line
        .find(&format!("{name} tcp://"))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"));
    line[at + name.len() + 1..]
        .split([',', ';', ' '])
        .next()
        .unwrap_or_default()
        .to_owned()
}

impl Cluster {
    pub fn start(name: &str, agents: usize) -> Cluster {
        Self::start_with(name, agents, None, &[])
    }

    /// A cluster whose broker keeps its database at `db` (default: in the cluster's directory)
    /// and takes the options `extra`.
    pub fn start_with(
        name: &str,
        agents: usize,
        db: Option<&std::path::Path>,
        extra: &[&str],
    ) -> Cluster {
        let dir = std::env::temp_dir().join(format!("loads-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let db = db
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| dir.join("broker.sqlite"));
        let broker = Self::broker_at(&db, ["tcp://127.0.0.1:*"; 5], extra);
        let front = endpoint(&broker.line, "front");
        let back = endpoint(&broker.line, "back");
        let mut c = Cluster {
            dir,
            broker,
            front,
            back,
            agents: Vec::new(),
        };
        for _ in 0..agents {
            c.add_agent();
        }
        c
    }

    pub fn broker(dir: &std::path::Path, eps: [&str; 5]) -> Proc {
        Self::broker_at(&dir.join("broker.sqlite"), eps, &[])
    }

    /// A broker on `eps` (front, back, receiver, publisher, heartbeat) with its database at
    /// `db` and the options `extra`.
    pub fn broker_at(db: &std::path::Path, eps: [&str; 5], extra: &[&str]) -> Proc {
        let mut args = vec![
            "broker",
            "--frontend",
            eps[0],
            "--backend",
            eps[1],
            "--receiver",
            eps[2],
            "--publisher",
            eps[3],
            "--heartbeat",
            eps[4],
            "--db",
            db.to_str().expect("utf8"),
            "--agent-timeout",
            // Long enough for an agent busy storing a 100 MB debug binary on a loaded machine.
            "6s",
        ];
        args.extend_from_slice(extra);
        Proc::start(&args)
    }

    pub fn add_agent(&mut self) {
        self.add_agent_with(&[]);
    }

    /// Starts an agent with the options `extra` too, and waits for its registration.
    pub fn add_agent_with(&mut self, extra: &[&str]) {
        let i = self.agents.len();
        let cache = self.dir.join(format!("cache{i}"));
        let work = self.dir.join(format!("work{i}"));
        let agent = Proc::start(
            &[
                "agent",
                "--broker",
                &self.back,
                "--cache-dir",
                cache.to_str().expect("utf8"),
                "--test-dir",
                work.to_str().expect("utf8"),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>(),
        );
        assert!(agent.line.contains("registered"), "{}", agent.line);
        self.agents.push(agent);
    }
}

impl Cluster {
    /// `loads report RUN` of this cluster's broker (within 30 s): the stored run, shown again.
    pub fn report(&self, run_id: &str) -> std::process::Output {
        run_with_limit(
            &["report", run_id, "--broker", &self.front],
            Duration::from_secs(30),
        )
    }

    /// Kills the broker and starts another on the same endpoints and database (its agents
    /// register again with it).
    pub fn restart_broker(&mut self) {
        let eps = [
            self.front.clone(),
            self.back.clone(),
            endpoint(&self.broker.line, "receiver"),
            endpoint(&self.broker.line, "publisher"),
            endpoint(&self.broker.line, "heartbeat"),
        ];
        self.broker.kill_group();
        self.broker = Self::broker(&self.dir, [&eps[0], &eps[1], &eps[2], &eps[3], &eps[4]]);
    }

    /// Pings the broker until `ok` holds for its output (polling), failing after `limit`.
    pub fn ping_until(&self, limit: Duration, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let ping = run_with_limit(&["ping", "--broker", &self.front], Duration::from_secs(30));
            if ok(&stdout(&ping)) {
                return;
            }
            assert!(Instant::now() < deadline, "{}", stdout(&ping));
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.agents.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run_id_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Run id:"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| panic!("no run id in {text}"))
}

/// Runs `loads keygen NAME` in `dir`.
pub fn keygen(dir: &std::path::Path, name: &str) {
    let out = super::run_in(dir, &["keygen", name], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A cheap, deterministic stream of bytes.
pub fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 24) as u8
        })
        .collect()
}

/// An agent of our own on the broker's back socket (a DEALER with identity `id`, no key, as
/// the test clusters have none): it registers, takes a job and plays its worker by hand,
/// with the job's token, as an agent with a valid key may. Every wait heartbeats.
pub struct FakeAgent {
    pub id: String,
    back: zmq::Socket,
    last_beat: Instant,
    _ctx: zmq::Context,
}

impl FakeAgent {
    /// Registers with the broker whose back socket is `back` and waits for the welcome.
    pub fn register(back: &str, id: &str) -> FakeAgent {
        Self::register_on(back, id, "fake")
    }

    /// The same, as an agent on host `host`.
    pub fn register_on(back: &str, id: &str, host: &str) -> FakeAgent {
        let ctx = zmq::Context::new();
        let s = ctx.socket(zmq::DEALER).expect("dealer");
        s.set_identity(id.as_bytes()).expect("identity");
        s.set_linger(0).expect("linger");
        s.connect(back).expect("connect");
        let mut agent = FakeAgent {
            id: id.to_owned(),
            back: s,
            last_beat: Instant::now(),
            _ctx: ctx,
        };
        agent.send(&serde_json::json!({"command": "register", "host": host, "pid": 1}));
        agent.wait_for("welcome", Duration::from_secs(20));
        agent
    }

    /// Sends `msg` to the broker.
    pub fn send(&mut self, msg: &serde_json::Value) {
        self.back
            .send(msg.to_string().as_bytes(), 0)
            .expect("send to the broker");
    }

    /// Sends a heartbeat if the last one is half a second old.
    pub fn beat(&mut self) {
        if self.last_beat.elapsed() >= Duration::from_millis(500) {
            self.last_beat = Instant::now();
            let _ = self
                .back
                .send(r#"{"command":"heartbeat","busy":null}"#, zmq::DONTWAIT);
        }
    }

    /// Waits at most `limit` (heartbeating) for a message of the broker with `command`, and
    /// returns it; fails past the limit.
    pub fn wait_for(&mut self, command: &str, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            self.beat();
            if self.back.poll(zmq::POLLIN, 100).unwrap_or(0) > 0
                && let Ok(frames) = self.back.recv_multipart(0)
                && let Some(v) = frames
                    .first()
                    .and_then(|f| serde_json::from_slice::<serde_json::Value>(f).ok())
                && v["command"] == command
            {
                return v;
            }
        }
        panic!("no {command:?} from the broker within {limit:?}");
    }

    /// Waits at most `limit` for a job, reports its worker ready and waits for the go: the
    /// job (its `run_id`, `token`, `receiver`...).
    pub fn take_job(&mut self, limit: Duration) -> serde_json::Value {
        let job = self.wait_for("run", limit);
        self.send(&serde_json::json!({"command": "worker_ready", "run_id": job["run_id"]}));
        self.wait_for("go", Duration::from_secs(30));
        job
    }
}

/// The peak resident memory of process `pid` (`VmHWM`), in KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
