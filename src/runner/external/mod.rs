//! The [`ExternalRunner`]: runs a test written in another language. For each cycle step it
//! starts one long-lived process per virtual user (`--test-runner "CMD ARGS {test}"`), with the
//! plan in its environment (`LOADS_ZMQ_RECEIVER`, `LOADS_RUN_ID`, `LOADS_AGENT_ID`,
//! `LOADS_TOTAL_USERS`, `LOADS_CURRENT_USER`, `LOADS_TOTAL_HITS` or `LOADS_DURATION`,
//! `LOADS_SERVER_URL`, and with `--data` `LOADS_DATA_ENDPOINT` and `LOADS_DATA_USER`, where they
//! ask for the rows of the run's data sources: `data`). The processes report their events over a ZeroMQ PUSH socket to a PULL
//! socket bound here on loopback; a collector thread parses them, checks their run id, and
//! hands them to the [`EventSink`] — merged into per-period batches like a native run's, or one
//! by one with `--raw-events`. The protocol is in `docs/external-runners.md`.
//!
//! Tolerated and counted, never fatal: malformed messages (bad JSON, missing fields, wrong
//! types), messages of another run, messages of an unknown `data_type`, `startTestRun`/
//! `stopTestRun` from a runner; v1 producers' forms are read (`result::runner_message`). A process that
//! exits non-zero or dies is a problem of the run, with its exit status and the tail of its
//! stderr; one still running 10 s after the end of a duration step, or longer than
//! `--external-process-timeout` in a hits step, is terminated (SIGTERM, then SIGKILL 3 s later).
//! A run whose runners sent only messages of another run fails with a problem that says so.
//!
//! The runner itself (this file) walks the cycle steps; `processes` starts and stops a step's
//! runner processes, `receiver` reads their events, `data` answers their requests for data rows.

mod data;
mod processes;
mod receiver;

pub use processes::split_command;
pub use receiver::Rejected;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use super::{Plan, RunArgs, RunError, Runner, Stop, new_run_id, run_meta};
use crate::case::NamedMix;
use crate::config::UsageError;
use crate::result::{EventSink, RunMeta, TestResult};

/// Runs a test through an external program, one process per virtual user and cycle step.
pub struct ExternalRunner {
    args: RunArgs,
    plan: Plan,
    /// The `--test-runner` command line, `{test}` not yet replaced.
    command: String,
    /// The tests, by weight: each virtual user's process gets one.
    mix: NamedMix,
    /// The run's test data, served to the runners' processes.
    data: Arc<crate::data::DataSet>,
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
        if !args.plan.scenarios.is_empty() {
            return Err(RunError::Usage(UsageError::new(
                "--test-runner",
                "[[scenario]] tables are not supported with --test-runner: run each scenario as a run of its own",
            )));
        }
        let mix = NamedMix::parse(&args.plan.tests)?;
        // The command must split (each user's test is put in later).
        split_command(&line, mix.pick(0))?;
        let plan = super::checked_plan(&args)?;
        if plan.model != super::Model::Cycles || plan.ramp_up.is_some() || plan.think.is_some() {
            return Err(RunError::Usage(UsageError::new(
                "--test-runner",
                "--stages, --rate, --ramp-up and --think-time are not supported with --test-runner: a runner's process runs its user's hits at its own pace (use users × hits or a duration)",
            )));
        }
        // The tests are not ours to read: the names they ask for are checked as they ask.
        let data = super::data::load_data(&args, [])?;
        let mut args = args;
        args.plan.tests = mix.describe().split(' ').map(str::to_owned).collect();
        if args.run_id.is_empty() {
            args.run_id = new_run_id();
        }
        Ok(ExternalRunner {
            args,
            plan,
            command: line,
            mix,
            data,
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

    /// The run's test data (a cluster's worker gives it the broker's leases).
    pub fn data(&self) -> &Arc<crate::data::DataSet> {
        &self.data
    }

    /// The description of this run that outputs show.
    pub fn meta(&self) -> RunMeta {
        run_meta(&self.args)
    }

    /// Runs the plan, sending every event the runners report to `sink`. Returns the sink,
    /// whether the run was interrupted, the problems of the run (failed runners) and what the
    /// receiver refused.
    pub fn run_into<S: EventSink + Send + 'static>(
        &self,
        sink: S,
    ) -> Result<(S, bool, Vec<String>, Rejected), RunError> {
        let (_ctx, socket, endpoint) = receiver::bind()?;
        let stop = if self.handle_signals {
            crate::config::signals::stop_flag()
        } else {
            Arc::new(AtomicBool::new(false))
        };
        let users = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        // The runners' processes ask for data rows here (`LOADS_DATA_ENDPOINT`).
        let data_server = if self.data.is_empty() {
            None
        } else {
            let (ctx, socket, endpoint) = data::bind()?;
            let (data, done) = (self.data.clone(), done.clone());
            let server = thread::Builder::new()
                .name("loads-external-data".into())
                .spawn(move || {
                    let _ctx = ctx;
                    data::serve(&socket, &data, &done);
                })?;
            Some((server, endpoint))
        };
        let data_endpoint = data_server.as_ref().map(|(_, e)| e.as_str());
        let collector = {
            let (stop, users, done) = (stop.clone(), users.clone(), done.clone());
            let run_id = self.args.run_id.clone();
            let raw = self.args.plan.raw_events;
            let every = self.collect_every;
            thread::Builder::new()
                .name("loads-external".into())
                .spawn(move || {
                    receiver::receive(
                        sink,
                        &socket,
                        &receiver::Receiving {
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
            .and_then(|_| self.run_steps(&endpoint, data_endpoint, &tmp, &stop, &users));
        done.store(true, Ordering::SeqCst);
        if let Some((server, _)) = data_server {
            let _ = server.join();
        }
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
        data_endpoint: Option<&str>,
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
            let r = self.run_step(
                step,
                n_users,
                hits,
                (endpoint, data_endpoint),
                tmp,
                stop,
                &mut problems,
            );
            users.store(0, Ordering::SeqCst);
            r?;
        }
        Ok(problems)
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
        for p in rejected.problems() {
            result.add_run_problem(p);
        }
        for w in rejected.warnings() {
            eprintln!("warning: {w}");
        }
        if interrupted {
            result.set_interrupted();
        }
        result.finish();
        Ok(result)
    }
}
