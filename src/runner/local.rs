//! The local runner: executes the plan in this process with tokio tasks as virtual users.
//!
//! Thread per core: each worker thread runs its own single-threaded tokio runtime, and the
//! virtual users are spread over the workers round-robin; a user stays on its worker and
//! records into that worker's shard of the run's [`Recorder`], so recording never contends. A
//! driver runtime on the calling thread starts the cycle steps, keeps time and handles Ctrl-C. A
//! collector thread drains the recorder five times a second into an `Event::Batch` for the
//! [`EventSink`] (the [`TestResult`] in a normal run, a relay in slave mode) and ticks it so
//! that live outputs refresh.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::plan::{Plan, Stop};
use super::{RunArgs, RunError, Runner};
use crate::case::{TestCase, TestError, TestRef, find_test, run_hit};
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
        let plan = args.plan()?;
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
            // SIGTERM (an agent stopping its worker, a process manager) stops the run cleanly.
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                let control = control.clone();
                tokio::spawn(async move {
                    if term.recv().await.is_some() {
                        control.interrupted.store(true, Ordering::SeqCst);
                        control.stopping.store(true, Ordering::SeqCst);
                        control.cancel.cancel();
                    }
                });
            }
            let control = control.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!(
                        "\nInterrupted: stopping the virtual users (press Ctrl-C again to quit at once)"
                    );
                    control.interrupted.store(true, Ordering::SeqCst);
                    control.stopping.store(true, Ordering::SeqCst);
                    control.cancel.cancel();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
        }
        let args = Arc::new(self.args.clone());
        let test_name: Arc<str> = Arc::from(self.args.test.as_str());
        for &users in self.plan.users.values() {
            if control.stopping.load(Ordering::SeqCst) {
                break;
            }
            let step_cancel = control.cancel.child_token();
            let deadline = match &self.plan.stop {
                // `Plan::check` bounds durations, so this cannot overflow in practice.
                Stop::Duration(d) => Instant::now().checked_add(*d),
                Stop::Hits(_) => None,
            };
            let mut tasks = Vec::with_capacity(users as usize);
            for u in 1..=users {
                let w = (u as usize - 1) % workers.len();
                let vu = VirtualUser {
                    test: self.test,
                    name: test_name.clone(),
                    args: args.clone(),
                    recorder: UserRecorder::new(recorder.clone(), w),
                    control: control.clone(),
                    stop: self.plan.stop.clone(),
                    deadline,
                    users,
                    user: u,
                };
                tasks.push(workers[w].handle.spawn(vu.run()));
            }
            if let Some(deadline) = deadline.and_then(|d| d.checked_add(GRACE)) {
                let cancel = step_cancel.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(deadline.into()).await;
                    cancel.cancel();
                });
            }
            // Wait for the users, or abort them all when the step is cancelled (Ctrl-C, or the
            // grace period after the duration): abandoned hits are not recorded.
            let mut tasks: Vec<Option<tokio::task::JoinHandle<()>>> =
                tasks.into_iter().map(Some).collect();
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
                    _ = step_cancel.cancelled() => {}
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
                    // A virtual user's task died outside the guarded test code: count it.
                    let message = format!("virtual user task panicked: {e}");
                    recorder.record(0, |s| {
                        s.record_problem(
                            ProblemKind::Error,
                            &test_name,
                            &message,
                            "runner",
                            "",
                            unix_now(),
                        )
                    });
                }
            }
            step_cancel.cancel();
        }
    }

    fn build_result(&self) -> Result<TestResult, RunError> {
        crate::output::build_result(self.meta(), &self.args)
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

/// A new run id: time-based and unique enough to tell runs apart.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}-{:04x}",
        now.as_secs(),
        (now.subsec_nanos() >> 8) & 0xffff ^ std::process::id() & 0xffff
    )
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
        // Sample the active users once for every second that has fully passed (and, at the end,
        // for the last partial second).
        let now = unix_now();
        let upto = if finished { now } else { now - 1 };
        while sampled_until < upto {
            sampled_until += 1;
            batch.sample_users(sampled_until, users);
        }
        if !batch.is_empty() {
            sink.ingest(Event::Batch(Box::new(batch)));
        }
        sink.tick(users);
        if sink.should_stop() && !control.stopping.swap(true, Ordering::SeqCst) {
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

/// One virtual user of one cycle step.
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
}

impl VirtualUser {
    async fn run(self) {
        let mut case =
            match TestCase::new(self.name.clone(), self.args.clone(), self.recorder.clone()) {
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
                    return;
                }
            };
        let mut state = match std::panic::catch_unwind(self.test.suite.new_user) {
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
                return;
            }
        };
        /// Counts the user as active while it lives, even when its task is aborted.
        struct Active<'a>(&'a AtomicU64);
        impl Drop for Active<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.control.active_users.fetch_add(1, Ordering::Relaxed);
        let _active = Active(&self.control.active_users);
        match &self.stop {
            Stop::Hits(hits) => {
                'steps: for &h in hits.values() {
                    for i in 1..=h {
                        if self.control.stopping.load(Ordering::Relaxed) {
                            break 'steps;
                        }
                        self.hit(&mut case, &mut *state, h, i).await;
                    }
                }
            }
            Stop::Duration(_) => {
                let deadline = self.deadline.unwrap_or_else(Instant::now);
                let mut i = 0;
                while Instant::now() < deadline && !self.control.stopping.load(Ordering::Relaxed) {
                    i += 1;
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
