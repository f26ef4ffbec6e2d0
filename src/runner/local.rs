//! The local runner: executes the plan in this process with tokio tasks as virtual users.
//!
//! Thread per core: each worker thread runs its own single-threaded tokio runtime, and the
//! virtual users are spread over the workers round-robin; a user stays on its worker and
//! records into that worker's shard of the run's [`Recorder`], so recording never contends. A
//! driver runtime on the calling thread starts the cycle steps, keeps time and handles Ctrl-C. A
//! collector thread drains the recorder five times a second into an `Event::Batch` for the
//! [`EventSink`] (the [`TestResult`] in a normal run, a relay in a worker) and ticks it so
//! that live outputs refresh.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::{RunArgs, RunError, Runner};
use crate::case::{TestCase, TestError, TestRef, find_test, run_hit};
use crate::config::new_run_id;
use crate::config::plan::{Model, Plan, Stop};
use crate::result::{
    Event, EventSink, LoadsStatus, ProblemKind, Recorder, RunMeta, Stats, TestResult, UserRecorder,
    unix_now,
};

/// How often the collector drains the recorder.
pub(crate) const COLLECT_EVERY: Duration = Duration::from_millis(200);
/// How long in-flight hits may finish after a duration step ends, before they are cancelled.
const GRACE: Duration = Duration::from_secs(5);

/// Runs a test in this process.
pub struct LocalRunner {
    args: RunArgs,
    test: TestRef,
    plan: Plan,
    handle_ctrl_c: bool,
    collect_every: Duration,
}

/// Shared state of a run, seen by every virtual user.
struct Control {
    /// No new hits start.
    stopping: AtomicBool,
    /// In-flight hits are abandoned.
    cancel: CancellationToken,
    /// Ctrl-C or an explicit stop happened.
    interrupted: AtomicBool,
    /// Virtual users currently running.
    active_users: AtomicU64,
}

/// A worker thread with its single-threaded runtime.
struct Worker {
    handle: tokio::runtime::Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Worker {
    fn start(index: usize) -> std::io::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name(format!("loads-vu-{index}"))
            .spawn(move || {
                runtime.block_on(async {
                    let _ = rx.await;
                });
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(Worker {
            handle,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl LocalRunner {
    /// A runner for `args`; fails on an unknown test or a bad plan.
    pub fn new(args: RunArgs) -> Result<Self, RunError> {
        if args.test.trim().is_empty() {
            return Err(RunError::Usage(
                "no test given: `loads run SUITE::TEST` (`loads list` shows the tests)".into(),
            ));
        }
        let test = find_test(&args.test)?;
        let plan = super::checked_plan(&args)?;
        ensure_open_files(peak_users(&plan))?;
        let mut args = args;
        args.test = test.full_name();
        if args.run_id.is_empty() {
            args.run_id = new_run_id();
        }
        Ok(LocalRunner {
            args,
            test,
            plan,
            handle_ctrl_c: false,
            collect_every: COLLECT_EVERY,
        })
    }

    /// Stops the run cleanly on Ctrl-C (a second Ctrl-C exits at once). For the command line.
    pub fn handle_ctrl_c(mut self, yes: bool) -> Self {
        self.handle_ctrl_c = yes;
        self
    }

    /// How often the collector drains the recorder into a batch (a worker sends one batch per
    /// second to its relay; a local run refreshes five times a second).
    pub fn collect_every(mut self, every: Duration) -> Self {
        self.collect_every = every;
        self
    }

    /// The validated plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The run's arguments (with the full test name and a run id filled in).
    pub fn args(&self) -> &RunArgs {
        &self.args
    }

    /// The description of this run that outputs show.
    pub fn meta(&self) -> RunMeta {
        super::run_meta(&self.args, &self.plan)
    }

    /// Runs the plan, sending every event to `sink`, and returns the sink and whether the run was
    /// interrupted. This is the whole execution; `execute` wraps it with a [`TestResult`].
    pub fn run_into<S: EventSink + 'static>(&self, sink: S) -> Result<(S, bool), RunError> {
        let threads = self.args.worker_threads();
        let workers = (0..threads)
            .map(Worker::start)
            .collect::<Result<Vec<_>, _>>()?;
        let driver = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let recorder = Arc::new(if self.args.raw_events {
            Recorder::raw(threads, 100_000)
        } else {
            Recorder::new(threads)
        });
        let control = Arc::new(Control {
            stopping: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            interrupted: AtomicBool::new(false),
            active_users: AtomicU64::new(0),
        });

        let (done_tx, done_rx) = mpsc::channel::<()>();
        let collector = {
            let recorder = recorder.clone();
            let control = control.clone();
            thread::Builder::new()
                .name("loads-collector".into())
                .spawn({
                    let every = self.collect_every;
                    move || collect(sink, &recorder, &control, &done_rx, every)
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
        let test_name: Arc<str> = Arc::from(self.args.test.as_str());
        let ctx = DriveCtx {
            workers,
            recorder,
            control,
            args,
            name: test_name,
        };
        match &self.plan.model {
            Model::Cycles => self.drive_cycles(&ctx).await,
            Model::Stages(stages) => self.drive_stages(&ctx, stages).await,
            Model::Rate {
                start,
                stages,
                max_users,
                offset,
            } => {
                self.drive_rate(&ctx, *start, stages, *max_users, *offset)
                    .await
            }
        }
    }

    /// A virtual user of this run, on worker `w`.
    fn user(&self, ctx: &DriveCtx<'_>, w: usize, users: u64, user: u64) -> VirtualUser {
        VirtualUser {
            test: self.test,
            name: ctx.name.clone(),
            args: ctx.args.clone(),
            recorder: UserRecorder::new(ctx.recorder.clone(), w),
            control: ctx.control.clone(),
            stop: self.plan.stop.clone(),
            deadline: None,
            users,
            user,
            start_delay: Duration::ZERO,
            think: self.plan.think,
            retire: None,
        }
    }

    /// Users × hits cycles (or users for a duration), each step's users started together or
    /// over the ramp-up.
    async fn drive_cycles(&self, ctx: &DriveCtx<'_>) {
        for &users in self.plan.users.values() {
            if ctx.control.stopping.load(Ordering::SeqCst) {
                break;
            }
            let step_cancel = ctx.control.cancel.child_token();
            let deadline = match &self.plan.stop {
                // `Plan::check` bounds durations, so this cannot overflow in practice.
                Stop::Duration(d) => Instant::now().checked_add(*d),
                Stop::Hits(_) => None,
            };
            let mut tasks = Vec::with_capacity(users as usize);
            for u in 1..=users {
                let w = (u as usize - 1) % ctx.workers.len();
                let mut vu = self.user(ctx, w, users, u);
                vu.deadline = deadline;
                if let Some(ramp) = self.plan.ramp_up {
                    // User u of n starts (u-1)/n of the ramp-up after the step.
                    vu.start_delay = ramp.mul_f64((u - 1) as f64 / users as f64);
                }
                tasks.push(ctx.workers[w].handle.spawn(vu.run()));
            }
            if let Some(deadline) = deadline.and_then(|d| d.checked_add(GRACE)) {
                let cancel = step_cancel.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(deadline.into()).await;
                    cancel.cancel();
                });
            }
            await_users(tasks, &step_cancel, ctx).await;
            step_cancel.cancel();
        }
    }

    /// Closed model by stages: a controller adds users (or retires the newest ones, after their
    /// current hit) ten times a second to follow the stages' line.
    async fn drive_stages(&self, ctx: &DriveCtx<'_>, stages: &[(u64, Duration)]) {
        let step_cancel = ctx.control.cancel.child_token();
        let start = Instant::now();
        let total: Duration = stages.iter().map(|(_, d)| *d).sum();
        let end = start + total;
        let grace_cancel = step_cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((end + GRACE).into()).await;
            grace_cancel.cancel();
        });
        // Users counted in the line, and users told to stop after their hit (with their task).
        let mut live: Vec<(Arc<AtomicBool>, usize)> = Vec::new();
        let mut retiring: Vec<(Arc<AtomicBool>, usize)> = Vec::new();
        let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
        let mut next_user = 1u64;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let now = Instant::now();
            if now >= end || ctx.control.stopping.load(Ordering::SeqCst) {
                break;
            }
            let target = users_at(stages, now - start);
            retiring.retain(|(_, i)| !tasks[*i].is_finished());
            // A user that ended anyway (its task died) no longer counts.
            live.retain(|(_, i)| !tasks[*i].is_finished());
            while (live.len() as u64) < target {
                // A user still finishing its last hit comes back before a new one starts.
                if let Some((r, i)) = retiring.pop() {
                    r.store(false, Ordering::Relaxed);
                    live.push((r, i));
                    continue;
                }
                let w = (next_user as usize - 1) % ctx.workers.len();
                let mut vu = self.user(ctx, w, target, next_user);
                vu.deadline = Some(end);
                let retire = Arc::new(AtomicBool::new(false));
                vu.retire = Some(retire.clone());
                live.push((retire, tasks.len()));
                tasks.push(ctx.workers[w].handle.spawn(vu.run()));
                next_user += 1;
            }
            while (live.len() as u64) > target {
                if let Some((r, i)) = live.pop() {
                    r.store(true, Ordering::Relaxed);
                    retiring.push((r, i));
                }
            }
        }
        await_users(tasks, &step_cancel, ctx).await;
        step_cancel.cancel();
    }

    /// Open model: each worker thread takes every n-th arrival of the rate and serves it from a
    /// pool of virtual users of its own.
    async fn drive_rate(
        &self,
        ctx: &DriveCtx<'_>,
        start_rate: f64,
        stages: &[(f64, Duration)],
        max_users: u64,
        offset: f64,
    ) {
        let step_cancel = ctx.control.cancel.child_token();
        let start = Instant::now();
        let total: Duration = stages.iter().map(|(_, d)| *d).sum();
        let end = start + total;
        // One lane of arrivals per worker, but never more lanes than users in the pool.
        let n = (ctx.workers.len() as u64).min(max_users).max(1);
        let mut tasks = Vec::new();
        for (w, worker) in ctx.workers.iter().enumerate().take(n as usize) {
            let pool = super::share_of(max_users, (w as u64, n));
            let scheduler = Scheduler {
                first_user: w as u64 * max_users.div_ceil(n),
                template: self.user(ctx, w, 0, 0),
                stages: stages.to_vec(),
                start_rate,
                start,
                end,
                lane: (w as u64, n),
                pool,
                offset,
                cancel: step_cancel.clone(),
            };
            tasks.push(worker.handle.spawn(scheduler.run()));
        }
        let grace_cancel = step_cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((end + GRACE).into()).await;
            grace_cancel.cancel();
        });
        await_users(tasks, &step_cancel, ctx).await;
        step_cancel.cancel();
    }

    fn build_result(&self) -> Result<TestResult, RunError> {
        Ok(crate::output::build_result(self.meta(), &self.args)?)
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
            test = %self.args.test,
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

/// The collector thread: drains the recorder into batches until the users are done.
fn collect<S: EventSink>(
    mut sink: S,
    recorder: &Recorder,
    control: &Control,
    done: &mpsc::Receiver<()>,
    every: Duration,
) -> S {
    sink.ingest(Event::StartTestRun);
    let mut sampled_until = unix_now() - 1;
    loop {
        let finished = !matches!(
            done.recv_timeout(every),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let users = control.active_users.load(Ordering::Relaxed);
        recorder.drain_raw(|e| sink.ingest(e));
        let mut batch = Stats::default();
        recorder.drain_into(&mut batch);
        let stop = deliver(&mut sink, batch, users, &mut sampled_until, finished);
        if stop && !control.stopping.swap(true, Ordering::SeqCst) {
            // --abort-on-threshold: stop the users as Ctrl-C would, but the run is not
            // "interrupted": the test result says why it stopped.
            control.cancel.cancel();
        }
        if finished {
            break;
        }
    }
    sink.ingest(Event::StopTestRun);
    sink
}

/// Hands a collected `batch` to `sink` with the active `users` sampled once for every second
/// that has fully passed since `sampled_until` (and, when `finished`, for the last partial
/// second), then ticks the sink; returns whether the sink asks the run to stop. Every collector
/// (native and external runs) delivers this way.
pub(crate) fn deliver<S: EventSink>(
    sink: &mut S,
    mut batch: Stats,
    users: u64,
    sampled_until: &mut i64,
    finished: bool,
) -> bool {
    let now = unix_now();
    let upto = if finished { now } else { now - 1 };
    while *sampled_until < upto {
        *sampled_until += 1;
        batch.sample_users(*sampled_until, users);
    }
    if !batch.is_empty() {
        sink.ingest(Event::Batch(Box::new(batch)));
    }
    sink.tick(users);
    sink.should_stop()
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
fn ensure_open_files(users: u64) -> Result<(), RunError> {
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
    Err(RunError::Usage(format!(
        "{users} virtual users need about {need} open files (a connection each), but this process may open {soft} (hard limit {hard}): \
         raise the limit (e.g. `ulimit -n {need}` in this shell, as root or after raising the hard limit in /etc/security/limits.conf) \
         or spread the users over agents (--agents N)"
    )))
}

/// What the drivers share.
struct DriveCtx<'a> {
    workers: &'a [Worker],
    recorder: &'a Arc<Recorder>,
    control: &'a Arc<Control>,
    args: Arc<RunArgs>,
    name: Arc<str>,
}

/// Waits for the users' tasks, or aborts them all when `cancel` fires (Ctrl-C, or the grace
/// period after the duration): abandoned hits are not recorded. A task that panicked outside
/// the guarded test code is counted as an error.
async fn await_users(
    tasks: Vec<tokio::task::JoinHandle<()>>,
    cancel: &CancellationToken,
    ctx: &DriveCtx<'_>,
) {
    let mut tasks: Vec<Option<tokio::task::JoinHandle<()>>> = tasks.into_iter().map(Some).collect();
    let mut outcomes = Vec::new();
    {
        let all = async {
            for slot in tasks.iter_mut() {
                if let Some(t) = slot.as_mut() {
                    let r = t.await;
                    *slot = None;
                    outcomes.push(r);
                }
            }
        };
        tokio::select! {
            _ = all => {}
            _ = cancel.cancelled() => {}
        }
    }
    for t in tasks.iter().flatten() {
        t.abort();
    }
    for t in tasks.into_iter().flatten() {
        outcomes.push(t.await);
    }
    for r in outcomes {
        if let Err(e) = r
            && e.is_panic()
        {
            let message = format!("virtual user task panicked: {e}");
            ctx.recorder.record(0, |s| {
                s.record_problem(
                    ProblemKind::Error,
                    &ctx.name,
                    &message,
                    "runner",
                    "",
                    unix_now(),
                )
            });
        }
    }
}

/// The users the stages ask for `elapsed` into the plan: linear from the previous stage's count
/// (0 at first) to each stage's.
fn users_at(stages: &[(u64, Duration)], elapsed: Duration) -> u64 {
    let mut from = 0u64;
    let mut t = Duration::ZERO;
    for (to, d) in stages {
        if elapsed < t + *d {
            let x = (elapsed - t).as_secs_f64() / d.as_secs_f64();
            let v = from as f64 + (*to as f64 - from as f64) * x;
            return v.round().max(0.0) as u64;
        }
        t += *d;
        from = *to;
    }
    from
}

/// Starts of late hits that may wait for a free virtual user, per user of the pool; beyond
/// that, starts are dropped.
const BACKLOG_PER_USER: usize = 100;

/// The open model on one worker thread: arrivals at the rate, served by a pool of users.
struct Scheduler {
    /// Number of this worker's first user (users are numbered across workers).
    first_user: u64,
    /// A user to copy: name, test, recorder shard, control.
    template: VirtualUser,
    stages: Vec<(f64, Duration)>,
    start_rate: f64,
    start: Instant,
    end: Instant,
    /// `(w, n)`: this worker takes arrivals w+1, w+1+n, w+1+2n...
    lane: (u64, u64),
    pool: u64,
    /// Phase of this process's arrivals (see `Model::Rate`).
    offset: f64,
    cancel: CancellationToken,
}

/// A virtual user of the open model's pool, with its test context and state.
struct PoolUser {
    vu: VirtualUser,
    case: TestCase,
    state: Box<dyn crate::case::UserState>,
    hits: u64,
}

impl Scheduler {
    /// Counts `n` starts that never happened (at once, so that an abort loses none).
    fn drop_starts(&self, n: u64) {
        if n > 0 {
            self.template
                .recorder
                .record(|s| s.open_mut().dropped = s.open_mut().dropped.saturating_add(n));
        }
    }

    async fn run(self) {
        let (back_tx, mut back_rx) = tokio::sync::mpsc::unbounded_channel::<PoolUser>();
        // The hits in flight: aborted with the scheduler (an abandoned hit is not recorded).
        let mut hits = tokio::task::JoinSet::new();
        let mut idle: Vec<PoolUser> = Vec::new();
        let mut backlog: std::collections::VecDeque<Instant> = Default::default();
        let backlog_max = (self.pool as usize).saturating_mul(BACKLOG_PER_USER);
        let (mut created, mut in_flight) = (0u64, 0u64);
        let mut k = 0u64;
        let arrival = |k: u64| {
            let j = k * self.lane.1 + self.lane.0 + 1;
            crate::config::plan::arrival_at(self.start_rate, &self.stages, j as f64 - self.offset)
                .map(|t| self.start + Duration::from_secs_f64(t))
        };
        let mut next = arrival(k);
        let control = self.template.control.clone();
        loop {
            if control.stopping.load(Ordering::Relaxed) {
                break;
            }
            let waiting_for_end = next.is_none() && !backlog.is_empty();
            tokio::select! {
                _ = tokio::time::sleep_until(next.unwrap_or(self.end).into()), if next.is_some() => {
                    if let Some(t) = next {
                        backlog.push_back(t);
                        if backlog.len() > backlog_max {
                            backlog.pop_front();
                            self.drop_starts(1);
                        }
                    }
                    k += 1;
                    next = arrival(k);
                }
                Some(u) = back_rx.recv() => {
                    in_flight -= 1;
                    idle.push(u);
                }
                _ = tokio::time::sleep_until(self.end.into()), if waiting_for_end => {}
                _ = self.cancel.cancelled() => break,
            }
            while let Some(&intended) = backlog.front() {
                let user = match idle.pop() {
                    Some(u) => u,
                    None if created < self.pool => {
                        created += 1;
                        let vu = self.template.clone_for(self.first_user + created);
                        vu.recorder.set_lag(Some(0));
                        match vu.prepare() {
                            Some((case, state)) => PoolUser {
                                vu,
                                case,
                                state,
                                hits: 0,
                            },
                            None => continue,
                        }
                    }
                    None => break,
                };
                backlog.pop_front();
                in_flight += 1;
                let back = back_tx.clone();
                hits.spawn(async move {
                    let mut user = user;
                    let now = Instant::now();
                    let lag = now.saturating_duration_since(intended);
                    let lag_us = lag.as_micros().min(u64::MAX as u128 / 2) as u64;
                    user.vu.recorder.set_lag(Some(lag_us));
                    user.hits += 1;
                    let control = user.vu.control.clone();
                    control.active_users.fetch_add(1, Ordering::Relaxed);
                    let active = Active(&control.active_users);
                    let PoolUser {
                        vu,
                        case,
                        state,
                        hits,
                    } = &mut user;
                    vu.hit(case, &mut **state, 0, *hits).await;
                    let took = now.elapsed().as_micros().min(u64::MAX as u128 / 2) as u64;
                    vu.recorder.record(|s| s.record_hit_time(took, lag_us));
                    drop(active);
                    let _ = back.send(user);
                });
            }
            // Reap finished hit tasks (their users came back through the channel).
            while hits.try_join_next().is_some() {}
            if next.is_none() {
                // The plan's arrivals are over: late starts may still get a user until the
                // plan's end; what waits then never starts.
                if Instant::now() >= self.end {
                    self.drop_starts(backlog.len() as u64);
                    backlog.clear();
                }
                if backlog.is_empty() && in_flight == 0 {
                    break;
                }
            }
        }
        self.drop_starts(backlog.len() as u64);
        // Wait for the hits in flight (the driver aborts this task, and them, after the grace
        // period).
        while hits.join_next().await.is_some() {}
    }
}

/// Counts a user as active while it lives, even when its task is aborted.
struct Active<'a>(&'a AtomicU64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One virtual user.
struct VirtualUser {
    test: TestRef,
    name: Arc<str>,
    args: Arc<RunArgs>,
    recorder: UserRecorder,
    control: Arc<Control>,
    stop: Stop,
    deadline: Option<Instant>,
    users: u64,
    user: u64,
    /// Ramp-up: how long after its step the user starts.
    start_delay: Duration,
    /// Pause between hits.
    think: Option<(Duration, Duration)>,
    /// Stages: set when the user must stop after its current hit.
    retire: Option<Arc<AtomicBool>>,
}

impl VirtualUser {
    /// A user like this one, numbered `user`, with a recorder of its own on the same shard.
    fn clone_for(&self, user: u64) -> VirtualUser {
        VirtualUser {
            test: self.test,
            name: self.name.clone(),
            args: self.args.clone(),
            recorder: self.recorder.fresh(),
            control: self.control.clone(),
            stop: self.stop.clone(),
            deadline: self.deadline,
            users: self.users,
            user,
            start_delay: Duration::ZERO,
            think: self.think,
            retire: None,
        }
    }

    /// Pause between two hits (think time), uniform between the bounds.
    async fn think(&self, hit: u64) {
        let Some((lo, hi)) = self.think else {
            return;
        };
        let span = hi.saturating_sub(lo);
        let pause = if span.is_zero() {
            lo
        } else {
            // A cheap, well-spread draw per user and hit (splitmix64).
            let mut z = self
                .user
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(hit.wrapping_mul(0xBF58_476D_1CE4_E5B9));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            lo + span.mul_f64((z >> 11) as f64 / (1u64 << 53) as f64)
        };
        tokio::time::sleep(pause).await;
    }

    fn retired(&self) -> bool {
        self.retire
            .as_ref()
            .is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// The user's test context and state, or `None` after recording why they could not be made.
    fn prepare(&self) -> Option<(TestCase, Box<dyn crate::case::UserState>)> {
        let case = match TestCase::new(self.name.clone(), self.args.clone(), self.recorder.clone())
        {
            Ok(c) => c,
            Err(e) => {
                let err = TestError::from(e);
                let info = err.exc_info();
                self.recorder.record(|s| {
                    s.record_start(&self.name);
                    s.record_problem(
                        ProblemKind::Error,
                        &self.name,
                        info.message(),
                        info.kind(),
                        info.traceback(),
                        unix_now(),
                    )
                });
                return None;
            }
        };
        let state = match std::panic::catch_unwind(self.test.suite.new_user) {
            Ok(s) => s,
            Err(payload) => {
                let message = format!(
                    "creating the suite's per-user state panicked: {}",
                    crate::case::panic_message(payload.as_ref())
                );
                self.recorder.record(|s| {
                    s.record_start(&self.name);
                    s.record_problem(
                        ProblemKind::Error,
                        &self.name,
                        &message,
                        "panic",
                        "",
                        unix_now(),
                    )
                });
                return None;
            }
        };
        Some((case, state))
    }

    async fn run(self) {
        if !self.start_delay.is_zero() {
            tokio::time::sleep(self.start_delay).await;
        }
        let Some((mut case, mut state)) = self.prepare() else {
            return;
        };
        self.control.active_users.fetch_add(1, Ordering::Relaxed);
        let _active = Active(&self.control.active_users);
        match &self.stop {
            Stop::Hits(hits) => {
                'steps: for &h in hits.values() {
                    for i in 1..=h {
                        if self.control.stopping.load(Ordering::Relaxed) {
                            break 'steps;
                        }
                        if i > 1 {
                            self.think(i).await;
                        }
                        self.hit(&mut case, &mut *state, h, i).await;
                    }
                }
            }
            Stop::Duration(_) => {
                let deadline = self.deadline.unwrap_or_else(Instant::now);
                let mut i = 0;
                while Instant::now() < deadline
                    && !self.control.stopping.load(Ordering::Relaxed)
                    && !self.retired()
                {
                    i += 1;
                    if i > 1 {
                        self.think(i).await;
                        if Instant::now() >= deadline || self.retired() {
                            break;
                        }
                    }
                    self.hit(&mut case, &mut *state, 0, i).await;
                }
            }
        }
    }

    /// Runs one hit and records its outcome. Cancellation aborts the whole user task (the
    /// driver aborts it), so an abandoned hit is simply never recorded.
    async fn hit(
        &self,
        case: &mut TestCase,
        state: &mut dyn crate::case::UserState,
        hits: u64,
        i: u64,
    ) {
        case.set_status(LoadsStatus {
            hits,
            users: self.users,
            current_hit: i,
            current_user: self.user,
        });
        let status = case.status();
        let raw = self.recorder.send_raw(|loads_status| Event::StartTest {
            test: self.name.to_string(),
            loads_status,
        });
        let outcome = run_hit(state, self.test.index, case).await;
        let name = &*self.name;
        if raw {
            let test = name.to_owned();
            let _ = self.recorder.send_raw(|_| match &outcome {
                Ok(()) => Event::AddSuccess {
                    test: test.clone(),
                    loads_status: status,
                },
                Err(TestError::Failure(e)) => Event::AddFailure {
                    test: test.clone(),
                    exc_info: e.clone(),
                    loads_status: status,
                },
                Err(TestError::Error(e)) => Event::AddError {
                    test: test.clone(),
                    exc_info: e.clone(),
                    loads_status: status,
                },
            });
            let _ = self.recorder.send_raw(|_| Event::StopTest {
                test,
                loads_status: status,
            });
            return;
        }
        let second = unix_now();
        self.recorder.record(|s| match &outcome {
            Ok(()) => s.record_hit_success(name, second),
            Err(e) => {
                s.record_start(name);
                let kind = if e.is_failure() {
                    ProblemKind::Failure
                } else {
                    ProblemKind::Error
                };
                let e = e.exc_info();
                s.record_problem(kind, name, e.message(), e.kind(), e.traceback(), second)
            }
        });
    }
}
