//! The [`ExternalRunner`]: runs a test written in another language. For each cycle step it
//! starts one long-lived process per virtual user (`--test-runner "CMD ARGS {test}"`), with the
//! plan in its environment (`LOADS_ZMQ_RECEIVER`, `LOADS_RUN_ID`, `LOADS_AGENT_ID`,
//! `LOADS_TOTAL_USERS`, `LOADS_CURRENT_USER`, `LOADS_TOTAL_HITS` or `LOADS_DURATION`,
//! `LOADS_SERVER_URL`). The processes report their events over a ZeroMQ PUSH socket to a PULL
//! socket bound here on loopback; a collector thread parses them, checks their run id, and
//! hands them to the [`EventSink`] — merged into per-period batches like a native run's, or one
//! by one with `--raw-events`. The protocol is in `docs/external-runners.md`.
//!
//! Tolerated and counted, never fatal: malformed messages (bad JSON, missing fields, wrong
//! types), messages of another run, `startTestRun`/`stopTestRun` from a runner. A process that
//! exits non-zero or dies is a problem of the run, with its exit status and the tail of its
//! stderr; one still running 10 s after the end of a duration step is terminated (SIGTERM, then
//! SIGKILL 5 s later).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{Plan, RunArgs, RunError, Runner, Stop, new_run_id, run_meta};
use crate::config::UsageError;
use crate::result::{Envelope, Event, EventSink, RunMeta, Stats, TestResult, unix_now};

/// How long a runner may outlive its duration step before it is terminated.
pub const GRACE: Duration = Duration::from_secs(10);
/// How long a terminated runner has to exit before it is killed (shorter than the 5 s an agent
/// gives its worker, so that the worker is done with its runners before the agent kills it).
const KILL_AFTER: Duration = Duration::from_secs(3);
/// Bytes of a failed runner's stderr shown in its problem.
const STDERR_TAIL: usize = 2000;
/// Largest message accepted from a runner: larger ones are refused by ZeroMQ, not allocated.
const MAX_MESSAGE: i64 = 16 * 1024 * 1024;
/// After the last runner of the run exited, how long the receiver waits for late messages.
const DRAIN_QUIET: Duration = Duration::from_millis(300);

/// What the receiver refused, for the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Messages that are not events (bad JSON, missing fields, wrong types).
    pub malformed: u64,
    /// Events of another run (or without a run id).
    pub foreign: u64,
}

impl Rejected {
    /// Malformed messages are lost data: a problem of the run. Messages of another run are
    /// not this run's data, so they are only counted and logged.
    pub fn problem(&self) -> Option<String> {
        (self.malformed > 0).then(|| {
            format!(
                "the receiver ignored {} malformed message(s) from the test runners (see the log); their data is missing",
                self.malformed
            )
        })
    }
}

/// Runs a test through an external program, one process per virtual user and cycle step.
pub struct ExternalRunner {
    args: RunArgs,
    plan: Plan,
    command: Vec<String>,
    agent_id: String,
    handle_signals: bool,
    collect_every: Duration,
}

impl ExternalRunner {
    /// A runner for `args`, which must have a `test_runner` command; fails on a bad command or
    /// plan.
    pub fn new(args: RunArgs) -> Result<Self, RunError> {
        let Some(line) = args.plan.test_runner.clone() else {
            return Err(RunError::Usage(UsageError::new(
                "--test-runner",
                "no --test-runner: give the command that runs one virtual user, e.g. --test-runner \"python3 -m loads_client {test}\"",
            )));
        };
        if args.plan.test().trim().is_empty() {
            return Err(RunError::Usage(UsageError::new(
                "--test-runner",
                "no test given: `loads run TEST --test-runner \"CMD {test}\"`",
            )));
        }
        let command = split_command(&line, args.plan.test())?;
        let plan = super::checked_plan(&args)?;
        if plan.model != super::Model::Cycles || plan.ramp_up.is_some() || plan.think.is_some() {
            return Err(RunError::Usage(UsageError::new(
                "--test-runner",
                "--stages, --rate, --ramp-up and --think-time are not supported with --test-runner: a runner's process runs its user's hits at its own pace (use users × hits or a duration)",
            )));
        }
        let mut args = args;
        if args.run_id.is_empty() {
            args.run_id = new_run_id();
        }
        Ok(ExternalRunner {
            args,
            plan,
            command,
            agent_id: String::new(),
            handle_signals: false,
            collect_every: super::collector::COLLECT_EVERY,
        })
    }

    /// Stops the run cleanly on SIGINT or SIGTERM (the runners are terminated, what they sent
    /// is kept).
    pub fn handle_ctrl_c(mut self, yes: bool) -> Self {
        self.handle_signals = yes;
        self
    }

    /// How often the received events are merged into a batch for the sink.
    pub fn collect_every(mut self, every: Duration) -> Self {
        self.collect_every = every;
        self
    }

    /// The agent this runner works for (`LOADS_AGENT_ID`; empty for a local run).
    pub fn agent_id(mut self, id: &str) -> Self {
        id.clone_into(&mut self.agent_id);
        self
    }

    /// The run's arguments (with a run id filled in).
    pub fn args(&self) -> &RunArgs {
        &self.args
    }

    /// The description of this run that outputs show.
    pub fn meta(&self) -> RunMeta {
        run_meta(&self.args, &self.plan)
    }

    /// Runs the plan, sending every event the runners report to `sink`. Returns the sink,
    /// whether the run was interrupted, the problems of the run (failed runners) and what the
    /// receiver refused.
    pub fn run_into<S: EventSink + Send + 'static>(
        &self,
        sink: S,
    ) -> Result<(S, bool, Vec<String>, Rejected), RunError> {
        let ctx = zmq::Context::new();
        let socket = ctx
            .socket(zmq::PULL)
            .map_err(|e| RunError::System(std::io::Error::other(e)))?;
        let bound = socket
            .set_maxmsgsize(MAX_MESSAGE)
            .and_then(|_| socket.bind("tcp://127.0.0.1:*"))
            .and_then(|_| socket.get_last_endpoint())
            .map_err(|e| RunError::System(std::io::Error::other(e)))?;
        let endpoint = bound.map_err(|_| {
            RunError::System(std::io::Error::other(
                "the receiver's endpoint is not UTF-8",
            ))
        })?;
        let stop = if self.handle_signals {
            crate::config::signals::stop_flag()
        } else {
            Arc::new(AtomicBool::new(false))
        };
        let users = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let collector = {
            let (stop, users, done) = (stop.clone(), users.clone(), done.clone());
            let run_id = self.args.run_id.clone();
            let raw = self.args.plan.raw_events;
            let every = self.collect_every;
            thread::Builder::new()
                .name("loads-external".into())
                .spawn(move || {
                    receive(
                        sink,
                        &socket,
                        &Receiving {
                            run_id,
                            raw,
                            every,
                            stop,
                            users,
                            done,
                        },
                    )
                })?
        };
        let tmp = std::env::temp_dir().join(format!(
            "loads-external-{}-{}",
            self.args.run_id,
            std::process::id()
        ));
        let outcome = std::fs::create_dir_all(&tmp)
            .map_err(RunError::System)
            .and_then(|_| self.run_steps(&endpoint, &tmp, &stop, &users));
        done.store(true, Ordering::SeqCst);
        let joined = collector.join();
        let _ = std::fs::remove_dir_all(&tmp);
        let (sink, rejected) = joined
            .map_err(|_| RunError::System(std::io::Error::other("the receiver thread panicked")))?;
        let problems = outcome?;
        let interrupted = stop.load(Ordering::SeqCst) && !sink.should_stop();
        Ok((sink, interrupted, problems, rejected))
    }

    /// Every cycle step in order; returns the problems of failed runners.
    fn run_steps(
        &self,
        endpoint: &str,
        tmp: &Path,
        stop: &AtomicBool,
        users: &AtomicU64,
    ) -> Result<Vec<String>, RunError> {
        let mut problems = Vec::new();
        let steps: Vec<(u64, Option<u64>)> = match &self.plan.stop {
            Stop::Hits(h) => self
                .plan
                .users
                .values()
                .iter()
                .flat_map(|u| h.values().iter().map(move |n| (*u, Some(*n))))
                .collect(),
            Stop::Duration(_) => self
                .plan
                .users
                .values()
                .iter()
                .map(|u| (*u, None))
                .collect(),
        };
        for (step, (n_users, hits)) in steps.into_iter().enumerate() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            users.store(n_users, Ordering::SeqCst);
            let r = self.run_step(step, n_users, hits, endpoint, tmp, stop, &mut problems);
            users.store(0, Ordering::SeqCst);
            r?;
        }
        Ok(problems)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        step: usize,
        n_users: u64,
        hits: Option<u64>,
        endpoint: &str,
        tmp: &Path,
        stop: &AtomicBool,
        problems: &mut Vec<String>,
    ) -> Result<(), RunError> {
        let mut children: Vec<(u64, Child, PathBuf)> = Vec::new();
        let started = Instant::now();
        for user in 1..=n_users {
            let err_path = tmp.join(format!("step{step}-user{user}.stderr"));
            let err_file = std::fs::File::create(&err_path)?;
            let mut c = Command::new(&self.command[0]);
            // Each runner leads a process group of its own: a runner started through a shell
            // is stopped with everything it started, and Ctrl-C on the terminal reaches loads
            // only, which then stops the runners itself.
            c.process_group(0);
            c.args(&self.command[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err_file)
                .env("LOADS_ZMQ_RECEIVER", endpoint)
                .env("LOADS_RUN_ID", &self.args.run_id)
                .env("LOADS_AGENT_ID", &self.agent_id)
                .env("LOADS_TOTAL_USERS", n_users.to_string())
                .env("LOADS_CURRENT_USER", user.to_string())
                .env_remove("LOADS_TOTAL_HITS")
                .env_remove("LOADS_DURATION")
                .env_remove("LOADS_SERVER_URL");
            match (hits, &self.plan.stop) {
                (Some(h), _) => c.env("LOADS_TOTAL_HITS", h.to_string()),
                (None, Stop::Duration(d)) => c.env("LOADS_DURATION", d.as_secs_f64().to_string()),
                (None, Stop::Hits(_)) => c.env("LOADS_TOTAL_HITS", "1"),
            };
            if let Some(url) = &self.args.plan.server_url {
                c.env("LOADS_SERVER_URL", url);
            }
            match c.spawn() {
                Ok(child) => children.push((user, child, err_path)),
                Err(e) => {
                    // Nothing of this step can run: stop the ones started and say why.
                    signal_groups("-TERM", children.iter().map(|(_, c, _)| c.id()));
                    for (_, mut c, _) in children {
                        let _ = c.wait();
                    }
                    let what = if e.kind() == std::io::ErrorKind::NotFound {
                        format!(
                            "cannot start the test runner {:?}: no such program (check --test-runner and PATH)",
                            self.command[0]
                        )
                    } else {
                        format!("cannot start the test runner {:?}: {e}", self.command[0])
                    };
                    return Err(RunError::Usage(UsageError::new("--test-runner", what)));
                }
            }
        }
        let deadline = match &self.plan.stop {
            Stop::Duration(d) => Some(started + *d + GRACE),
            Stop::Hits(_) => None,
        };
        let mut terminated_at: Option<Instant> = None;
        while !children.is_empty() {
            let mut i = 0;
            while i < children.len() {
                match children[i].1.try_wait() {
                    Ok(Some(status)) => {
                        let (user, _, err_path) = children.swap_remove(i);
                        // Runners that loads stopped (Ctrl-C, a stop, an abort) exit as told.
                        let stopped = terminated_at.is_some() || stop.load(Ordering::SeqCst);
                        if !status.success() && !stopped {
                            problems.push(format!(
                                "test runner of user {user}/{n_users} (step {}) exited with {status}{}",
                                step + 1,
                                stderr_tail(&err_path)
                            ));
                        }
                    }
                    Ok(None) => i += 1,
                    Err(e) => {
                        let (user, _, _) = children.swap_remove(i);
                        problems.push(format!("cannot wait for the runner of user {user}: {e}"));
                    }
                }
            }
            if children.is_empty() {
                break;
            }
            let now = Instant::now();
            match terminated_at {
                None => {
                    let stopping = stop.load(Ordering::SeqCst);
                    let late = deadline.is_some_and(|d| now >= d);
                    if stopping || late {
                        if late && !stopping {
                            problems.push(format!(
                                "{} test runner(s) of step {} still ran {}s after the end of the step: terminated",
                                children.len(),
                                step + 1,
                                GRACE.as_secs()
                            ));
                        }
                        signal_groups("-TERM", children.iter().map(|(_, c, _)| c.id()));
                        terminated_at = Some(now);
                    }
                }
                Some(t) if now - t >= KILL_AFTER => {
                    signal_groups("-KILL", children.iter().map(|(_, c, _)| c.id()));
                    for (_, c, _) in children.iter_mut() {
                        let _ = c.kill();
                    }
                }
                Some(_) => {}
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Runner for ExternalRunner {
    fn execute(&mut self) -> Result<TestResult, RunError> {
        let result = crate::output::build_result(
            self.meta(),
            &self.args.report,
            self.args.plan.abort_on_threshold,
        )?;
        let (mut result, interrupted, problems, rejected) = self.run_into(result)?;
        for p in problems {
            result.add_run_problem(p);
        }
        if let Some(p) = rejected.problem() {
            result.add_run_problem(p);
        }
        if rejected.foreign > 0 {
            eprintln!(
                "warning: the receiver ignored {} message(s) of another run (or without a run id)",
                rejected.foreign
            );
        }
        if interrupted {
            result.set_interrupted();
        }
        result.finish();
        Ok(result)
    }
}

/// Splits the `--test-runner` command line like a POSIX shell (no shell runs it) and puts the
/// test name in place of every `{test}`.
pub fn split_command(line: &str, test: &str) -> Result<Vec<String>, RunError> {
    let words = shlex::split(line).ok_or_else(|| {
        RunError::Usage(UsageError::new(
            "--test-runner",
            format!("invalid --test-runner {line:?}: unbalanced quotes or a trailing backslash"),
        ))
    })?;
    if words.is_empty() {
        return Err(RunError::Usage(UsageError::new(
            "--test-runner",
            "empty --test-runner: give the command that runs one virtual user, e.g. \"python3 -m loads_client {test}\"",
        )));
    }
    Ok(words
        .into_iter()
        .map(|w| w.replace("{test}", test))
        .collect())
}

/// Sends `signal` (`-TERM`, `-KILL`) to the process groups led by `pids`.
fn signal_groups(signal: &str, pids: impl Iterator<Item = u32>) {
    let groups: Vec<String> = pids.map(|p| format!("-{p}")).collect();
    if !groups.is_empty() {
        let _ = Command::new("kill")
            .arg(signal)
            .arg("--")
            .args(&groups)
            .stderr(Stdio::null())
            .status();
    }
}

/// `: <last lines of stderr>` or nothing.
fn stderr_tail(path: &Path) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; stderr ends with:\n    {}", text.replace('\n', "\n    "))
    }
}

/// What the receiver thread needs.
struct Receiving {
    run_id: String,
    raw: bool,
    every: Duration,
    stop: Arc<AtomicBool>,
    users: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

/// The receiver thread: events from the runners into the sink until the runners are done and
/// the socket is quiet.
fn receive<S: EventSink>(mut sink: S, socket: &zmq::Socket, r: &Receiving) -> (S, Rejected) {
    let mut rejected = Rejected::default();
    let mut batch = Stats::default();
    let mut last_flush = Instant::now();
    let mut last_message = Instant::now();
    let mut sampled_until = unix_now() - 1;
    sink.ingest(Event::StartTestRun);
    loop {
        let mut items = [socket.as_poll_item(zmq::POLLIN)];
        let _ = zmq::poll(&mut items, 50);
        // Drain what is there, a bounded number at a time so that ticks keep coming.
        for _ in 0..50_000 {
            let Ok(msg) = socket.recv_bytes(zmq::DONTWAIT) else {
                break;
            };
            last_message = Instant::now();
            accept(&msg, r, &mut sink, &mut batch, &mut rejected);
        }
        let done = r.done.load(Ordering::SeqCst);
        let finished = done && last_message.elapsed() >= DRAIN_QUIET;
        if finished || last_flush.elapsed() >= r.every {
            last_flush = Instant::now();
            let users = r.users.load(Ordering::Relaxed);
            let batch = std::mem::take(&mut batch);
            if super::collector::deliver(&mut sink, batch, users, &mut sampled_until, finished) {
                r.stop.store(true, Ordering::SeqCst);
            }
        }
        if finished {
            break;
        }
    }
    sink.ingest(Event::StopTestRun);
    (sink, rejected)
}

/// One message from a runner.
fn accept<S: EventSink>(
    msg: &[u8],
    r: &Receiving,
    sink: &mut S,
    batch: &mut Stats,
    rejected: &mut Rejected,
) {
    let env: Envelope = match serde_json::from_slice(msg) {
        Ok(e) => e,
        Err(e) => {
            rejected.malformed += 1;
            if rejected.malformed <= 10 || rejected.malformed.is_multiple_of(10_000) {
                let shown = String::from_utf8_lossy(&msg[..msg.len().min(120)]).into_owned();
                tracing::warn!(
                    malformed = rejected.malformed,
                    "ignored a malformed message from a test runner ({e}): {shown:?}"
                );
            }
            return;
        }
    };
    if env.run_id != r.run_id {
        rejected.foreign += 1;
        if rejected.foreign <= 10 {
            tracing::warn!(
                run_id = %env.run_id,
                "ignored a message of another run from a test runner"
            );
        }
        return;
    }
    match env.event {
        // The runner's own start and stop are not the run's.
        Event::StartTestRun | Event::StopTestRun => {}
        event if r.raw => sink.ingest(event),
        event => event.apply_to(batch, unix_now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell_and_take_the_test_name() {
        let c = split_command(
            "python3 -m loads_client '{test}' --tag \"a b\"",
            "t.Site.test_home",
        )
        .expect("split");
        assert_eq!(
            c,
            vec![
                "python3",
                "-m",
                "loads_client",
                "t.Site.test_home",
                "--tag",
                "a b"
            ]
        );
        assert!(split_command("python3 'oops", "t").is_err());
        assert!(split_command("   ", "t").is_err());
    }
}
