//! Helpers for the integration tests: run the real `loads` binary, start the real demo server
//! in its own process on a free loopback port, read figures from the summary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `loads` binary under test.
pub fn loads() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loads"));
    c.env_remove("LOADS_SERVER_URL").env("NO_COLOR", "1");
    c
}

/// Runs `loads ARGS` to its end, with a time limit.
pub fn run(args: &[&str]) -> Output {
    run_with_limit(args, Duration::from_secs(120))
}

/// Runs `loads ARGS`, killing it (by its PID) if it outlives `limit`.
pub fn run_with_limit(args: &[&str], limit: Duration) -> Output {
    run_in(Path::new("."), args, limit)
}

/// Runs `loads ARGS` in directory `dir`, killing it (by its PID) if it outlives `limit`.
pub fn run_in(dir: &Path, args: &[&str], limit: Duration) -> Output {
    run_env(dir, &[], args, limit)
}

/// Runs `loads ARGS` in directory `dir` with the environment variables `env` too, killing it
/// (by its PID) if it outlives `limit`.
pub fn run_env(dir: &Path, env: &[(&str, &str)], args: &[&str], limit: Duration) -> Output {
    let child = loads()
        .envs(env.iter().copied())
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loads");
    wait_or_kill(child, limit)
        .unwrap_or_else(|| panic!("loads {args:?} did not finish within {limit:?}"))
}

/// Waits for `child` (started with its output piped) and takes its output; kills it (by its
/// PID) and fails if it outlives `limit`.
pub fn wait_within(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    wait_or_kill(child, limit)
        .unwrap_or_else(|| panic!("process {pid} did not end within {limit:?}"))
}

/// `child`'s output, or `None` when it outlived `limit` (it is then killed by its PID).
fn wait_or_kill(child: Child, limit: Duration) -> Option<Output> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => Some(out.expect("output")),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            None
        }
    }
}

/// The JSON summary that `loads ARGS -q -o json` writes, from a run that must exit with `code`
/// (`name` names its scratch directory).
pub fn summary_of(name: &str, args: &[&str], code: i32) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("loads-summary-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("summary.json");
    let mut all = args.to_vec();
    all.extend([
        "-q",
        "-o",
        "json",
        "--output-json-path",
        path.to_str().expect("utf8"),
    ]);
    let out = run_with_limit(&all, Duration::from_secs(90));
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    let summary =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("summary")).expect("json");
    let _ = std::fs::remove_dir_all(&dir);
    summary
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The number after `label` at the start of a summary line, e.g. `Hits:`.
pub fn figure(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number on {line:?}"))
}

/// A demo server in its own process, stopped (by its PID) when dropped.
pub struct DemoServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl DemoServer {
    /// Starts `loads demo-server` on a free loopback port and waits until it listens.
    pub fn start() -> DemoServer {
        let mut child = loads()
            .args(["demo-server", "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start demo server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let started = Instant::now();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read banner");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "demo server too slow to start"
        );
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no URL in banner {line:?}"))
            .to_owned();
        DemoServer { child, url }
    }
}

impl DemoServer {
    /// Stops the server now (by its PID), as if it crashed.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python to run runners with (`LOADS_TEST_PYTHON`, default `python3`), which has pyzmq and
/// requests: the tests that call this are ignored when the build found none (build.rs), so a
/// missing one here is a failure, not a skip.
pub fn python() -> String {
    let py = std::env::var("LOADS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import zmq, requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{py} lacks pyzmq or requests, although the build found them: pip install pyzmq requests, or rebuild (cargo clean -p loads) so that these tests show as ignored"
    );
    py
}

/// Makes `cmd`'s process start with at most `n` open files (soft and hard limit).
pub fn limit_open_files(cmd: &mut Command, n: u64) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: setrlimit is async-signal-safe; it only lowers the child's own limit.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
pub mod cluster;
pub mod smtp;
