//! The local runner: executes the plan in this process with tokio tasks as virtual users.
//!
//! Thread per core: each worker thread ([`worker`]) runs its own single-threaded tokio runtime,
//! and the virtual users ([`user`]) are spread over the workers round-robin; a user stays on its
//! worker and records into that worker's shard of the run's [`Recorder`], so recording never
//! contends. A driver runtime on the calling thread starts the users of each scenario (a
//! [`Part`]: a run without `[[scenario]]` tables is one) as its plan's model says ([`cycles`],
//! [`stages`], [`rate`], with what they share in [`drive`]), the scenarios side by side, each
//! after its `start-after` delay; it keeps time and handles Ctrl-C, which cancels the run and
//! so every step ([`cancel`]). A collector thread ([`collect`]) drains the recorder once a second into an
//! `Event::Batch` for the [`EventSink`] (the [`TestResult`] in a normal run, a relay in a
//! worker) and ticks it so that live outputs refresh.
//!
//! Data enters as [`RunArgs`] ([`LocalRunner::new`] checks them into a [`Plan`]) and leaves as
//! events into the sink given to [`LocalRunner::run_into`] (or the finished [`TestResult`] of
//! [`Runner::execute`]).

mod cancel;
mod collect;
mod cycles;
mod drive;
mod load;
mod rate;
mod stages;
mod user;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use super::collector::COLLECT_EVERY;
use super::{RunArgs, RunError, Runner};
use crate::case::{Mix, MixError};
use crate::config::UsageError;
use crate::config::new_run_id;
use crate::config::plan::{Model, Plan};
use crate::result::{EventSink, Recorder, RunMeta, TestResult};
use collect::collect_local;
use drive::{DriveCtx, Part};
use worker::Worker;

pub(crate) use load::LoadKind;
pub use load::{ChangeLoad, LoadControl};

/// Runs a test (or a mix, or several scenarios) in this process.
pub struct LocalRunner {
    args: RunArgs,
    parts: Vec<Part>,
    /// The run's test data, shared by its users.
    data: Arc<crate::data::DataSet>,
    handle_ctrl_c: bool,
    collect_every: Duration,
    load: Arc<LoadControl>,
}

/// How long the users' `on_stop` hooks may run once a step is cancelled (Ctrl-C, the end of the
/// grace period), before the users' tasks are aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Shared state of a run, seen by every virtual user.
struct Control {
    /// No new hits start.
    stopping: AtomicBool,
    /// In-flight hits are abandoned.
    cancel: cancel::Cancel,
    /// Ctrl-C or an explicit stop happened.
    interrupted: AtomicBool,
    /// Virtual users running (in the open model: busy with a hit, and their peak).
    active_users: user::ActiveUsers,
    /// The run's test data (given to each user's test context).
    data: Arc<crate::data::DataSet>,
    /// Changes of the load while the run goes on.
    load: Arc<LoadControl>,
}

impl LocalRunner {
    /// A runner for `args`; fails on an unknown test or a bad plan.
    pub fn new(args: RunArgs) -> Result<Self, RunError> {
        super::checked_plan(&args)?;
        let mix_of = |tests: &[String]| {
            Mix::parse(tests).map_err(|e| match e {
                MixError::Unknown(u) => RunError::UnknownTest(u),
                MixError::Usage(u) => RunError::Usage(u),
            })
        };
        let mut parts = Vec::new();
        for (scenario, plan, start_after) in args.plan.checked_scenarios()? {
            let mix = match scenario {
                None => mix_of(&args.plan.tests)?,
                Some(s) => mix_of(&s.tests).map_err(|e| {
                    let message = match &e {
                        RunError::Usage(u) => u.message.clone(),
                        other => other.to_string(),
                    };
                    RunError::Usage(UsageError::new(
                        format!("[[scenario]] {:?}: tests", s.name),
                        format!("scenario {:?}: {message}", s.name),
                    ))
                })?,
            };
            parts.push(Part {
                name: scenario.map(|s| Arc::from(s.name.as_str())),
                mix: Arc::new(mix),
                plan,
                start_after,
            });
        }
        check_targets(&args.report.thresholds, &parts)?;
        ensure_open_files(parts.iter().map(|p| peak_users(&p.plan)).sum())?;
        let data = super::data::load_data(
            &args,
            parts
                .iter()
                .flat_map(|p| p.mix.entries().iter())
                .map(|e| (&*e.name, e.test.info())),
        )?;
        let mut args = args;
        // A suite's default server URL, when the run gives none.
        if args.plan.server_url.is_none() {
            args.plan.server_url = parts
                .iter()
                .find_map(|p| p.mix.suite().server_url)
                .map(str::to_owned);
        }
        // The tests as the mixes understood them (full names, weights).
        let describe = |m: &Mix| m.describe().split(' ').map(str::to_owned).collect();
        if args.plan.scenarios.is_empty() {
            args.plan.tests = describe(&parts[0].mix);
        } else {
            for (s, p) in args.plan.scenarios.iter_mut().zip(&parts) {
                s.tests = describe(&p.mix);
            }
        }
        if args.run_id.is_empty() {
            args.run_id = new_run_id();
        }
        let load = Arc::new(LoadControl::new(
            parts
                .iter()
                .map(|p| (p.name.as_deref().map(str::to_owned), LoadKind::of(&p.plan)))
                .collect(),
            args.plan.share.unwrap_or((0, 1)),
        ));
        Ok(LocalRunner {
            args,
            parts,
            data,
            handle_ctrl_c: false,
            collect_every: COLLECT_EVERY,
            load,
        })
    }

    /// Stops the run cleanly on Ctrl-C (a second Ctrl-C exits at once). For the command line.
    pub fn handle_ctrl_c(mut self, yes: bool) -> Self {
        self.handle_ctrl_c = yes;
        self
    }

    /// How often the collector drains the recorder into a batch (a worker sends one batch per
    /// second to its relay, and so does a local run by default).
    pub fn collect_every(mut self, every: Duration) -> Self {
        self.collect_every = every;
        self
    }

    /// The control of this run's load while it runs (the dashboard's).
    pub fn load_control(&self) -> Arc<LoadControl> {
        self.load.clone()
    }

    /// The run's arguments (with the full test name and a run id filled in).
    pub fn args(&self) -> &RunArgs {
        &self.args
    }

    /// The run's test data (a cluster's worker gives it the broker's leases).
    pub fn data(&self) -> &Arc<crate::data::DataSet> {
        &self.data
    }

    /// The description of this run that outputs show.
    pub fn meta(&self) -> RunMeta {
        super::run_meta(&self.args)
    }

    /// Runs the plan, sending every event to `sink`, and returns the sink and whether the run was
    /// interrupted. This is the whole execution; `execute` wraps it with a [`TestResult`].
    pub fn run_into<S: EventSink + 'static>(&self, sink: S) -> Result<(S, bool), RunError> {
        let threads = self.args.plan.worker_threads();
        let workers = (0..threads)
            .map(Worker::start)
            .collect::<Result<Vec<_>, _>>()?;
        let driver = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let recorder = Arc::new(if self.args.plan.raw_events {
            Recorder::raw(threads, 100_000)
        } else {
            Recorder::new(threads)
        });
        let control = Arc::new(Control {
            stopping: AtomicBool::new(false),
            cancel: cancel::Cancel::new(),
            interrupted: AtomicBool::new(false),
            active_users: user::ActiveUsers::default(),
            data: self.data.clone(),
            load: self.load.clone(),
        });

        let (done_tx, done_rx) = mpsc::channel::<()>();
        let collector = {
            let recorder = recorder.clone();
            let control = control.clone();
            thread::Builder::new()
                .name("loads-collector".into())
                .spawn({
                    let every = self.collect_every;
                    move || collect_local(sink, &recorder, &control, &done_rx, every)
                })?
        };

        driver.block_on(self.drive(&workers, &recorder, &control));
        drop(workers);
        // Virtual users are done; nothing records any more.
        let _ = done_tx.send(());
        let sink = collector.join().map_err(|_| {
            RunError::System(std::io::Error::other("the collector thread panicked"))
        })?;
        Ok((sink, control.interrupted.load(Ordering::SeqCst)))
    }

    async fn drive(&self, workers: &[Worker], recorder: &Arc<Recorder>, control: &Arc<Control>) {
        if self.handle_ctrl_c {
            // Ctrl-C, or SIGTERM (an agent stopping its worker, a process manager), stops the
            // run cleanly; a second Ctrl-C quits at once.
            let interrupts = crate::config::signals::interrupts();
            interrupts.quit_on_second_press();
            let control = control.clone();
            tokio::spawn(async move {
                interrupts.wait().await;
                if interrupts.presses() > 0 {
                    eprintln!(
                        "\nInterrupted: stopping the virtual users (press Ctrl-C again to quit at once)"
                    );
                }
                control.interrupted.store(true, Ordering::SeqCst);
                control.stopping.store(true, Ordering::SeqCst);
                control.cancel.cancel();
            });
        }
        let args = Arc::new(self.args.clone());
        let drives = self.parts.iter().enumerate().map(|(index, part)| {
            let ctx = DriveCtx {
                index,
                workers,
                recorder,
                control,
                args: args.clone(),
                part,
                name: part.mix.entries()[0].name.clone(),
            };
            async move {
                if !part.start_after.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(part.start_after) => {}
                        _ = ctx.control.cancel.cancelled() => return,
                    }
                }
                match &part.plan.model {
                    Model::Cycles => cycles::drive_cycles(&ctx).await,
                    Model::Stages(stages) => stages::drive_stages(&ctx, stages).await,
                    Model::Rate {
                        start,
                        stages,
                        max_users,
                        offset,
                    } => rate::drive_rate(&ctx, *start, stages, *max_users, *offset).await,
                }
            }
        });
        futures_util::future::join_all(drives).await;
    }

    fn build_result(&self) -> Result<TestResult, RunError> {
        Ok(crate::output::build_result(
            self.meta(),
            &self.args.report,
            self.args.plan.abort_on_threshold,
        )?)
    }
}

impl Runner for LocalRunner {
    fn execute(&mut self) -> Result<TestResult, RunError> {
        let result = self.build_result()?;
        let (mut result, interrupted) = self.run_into(result)?;
        if interrupted {
            result.set_interrupted();
        }
        result.finish();
        let totals = result.totals();
        tracing::info!(
            test = %self.args.plan.test(),
            hits = totals.hits,
            failures = totals.failures,
            errors = totals.errors,
            requests = result.stats().requests.count,
            duration_s = result.duration().as_secs_f64(),
            rps = result.requests_per_second(),
            "run finished"
        );
        Ok(result)
    }
}

/// Refuses, before any load, a threshold scoped to a test or a scenario this run does not have
/// (`test=shop::chekout`, `scenario=shopers`): it could only fail at the end.
fn check_targets(thresholds: &[String], parts: &[Part]) -> Result<(), RunError> {
    use crate::result::threshold::{Target, parse_all};
    let parsed =
        parse_all(thresholds).map_err(|e| UsageError::new("--threshold", e.to_string()))?;
    let tests: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.mix.entries().iter().map(|e| &*e.name))
        .collect();
    let scenarios: Vec<&str> = parts.iter().filter_map(|p| p.name.as_deref()).collect();
    for t in &parsed {
        let (known, what, listed) = match &t.target {
            None => continue,
            Some(Target::Test(name)) => {
                let bare = |full: &&&str| full.rsplit("::").next() == Some(name.as_str());
                let known =
                    tests.contains(&name.as_str()) || tests.iter().filter(bare).count() == 1;
                (known, format!("test {name:?}"), ("tests", &tests))
            }
            Some(Target::Scenario(name)) => (
                scenarios.contains(&name.as_str()),
                format!("scenario {name:?}"),
                ("scenarios", &scenarios),
            ),
        };
        if !known {
            let (kind, names) = listed;
            let names = if names.is_empty() {
                format!("the run has no {kind}")
            } else {
                format!("the run's {kind}: {}", names.join(", "))
            };
            return Err(RunError::Usage(UsageError::new(
                "--threshold",
                format!(
                    "--threshold {:?} names {what}, which this run does not have ({names}): fix the name",
                    t.expression
                ),
            )));
        }
    }
    Ok(())
}

/// The most virtual users the plan has at once.
fn peak_users(plan: &Plan) -> u64 {
    match &plan.model {
        Model::Cycles => plan.users.values().iter().copied().max().unwrap_or(1),
        Model::Stages(stages) => stages.iter().map(|(u, _)| *u).max().unwrap_or(0),
        // The pool grows on demand: count what 30 s of the peak rate could need at most.
        Model::Rate {
            start,
            stages,
            max_users,
            ..
        } => {
            let peak = stages.iter().map(|(r, _)| *r).fold(*start, f64::max);
            (*max_users).min((peak * 30.0).ceil() as u64 + 1)
        }
    }
}

/// Files a run needs besides one connection per user (runtime, sockets, logs, outputs).
const SPARE_FILES: u64 = 256;

/// Makes sure `users` virtual users (a connection each) fit in the open-file limit: raises the
/// soft limit up to the hard one when needed, and otherwise says what to do, instead of a run
/// full of "too many open files" errors.
pub(super) fn ensure_open_files(users: u64) -> Result<(), RunError> {
    let need = users.saturating_add(SPARE_FILES);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    let (soft, hard): (u64, u64) = (lim.rlim_cur, lim.rlim_max);
    if need <= soft {
        return Ok(());
    }
    if need <= hard {
        lim.rlim_cur = need;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            tracing::info!(from = soft, to = need, "raised the open-file limit");
            return Ok(());
        }
    }
    Err(RunError::Usage(UsageError::new(
        "--users",
        format!(
            "{users} virtual users need about {need} open files (a connection each), but this process may open {soft} (hard limit {hard}): \
         raise the limit (e.g. `ulimit -n {need}` in this shell, as root or after raising the hard limit in /etc/security/limits.conf) \
         or spread the users over agents (--agents N)"
        ),
    )))
}
