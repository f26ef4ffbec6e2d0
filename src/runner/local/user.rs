//! One virtual user of a local run: it makes its test context and per-user state, runs its
//! suite's `on_start`, its hits (with think time, until its hits are done, its deadline passes,
//! the run stops or it is retired) and then its `on_stop`, and records each hit's and hook's
//! outcome into its shard of the recorder (or sends raw events with `--raw-events`). When its
//! step is cancelled (Ctrl-C, the end of the grace period) it abandons the hit in flight, which
//! is not recorded, and still runs its `on_stop`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::{Control, STOP_GRACE};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::cancel::Cancel;

use crate::case::{
    FutureSlot, Hook, Mix, Outcome, TestCase, TestError, UserState, draw, run_hit, run_hook,
};
use crate::config::RunArgs;
use crate::config::plan::Stop;
use crate::result::{
    Event, Hit, HitOutcome, LoadsStatus, ProblemKind, UserRecorder, unix_now, unix_second_at,
};

/// How often a pause between hits checks whether the stages retired the user.
const RETIRE_POLL: Duration = Duration::from_millis(100);

/// The virtual users active: in the closed model, the users alive now; in the open model,
/// those busy with a hit, and the most that were at once since the collector last looked. A
/// count of hits in flight sampled at one instant says little: with responses of a few
/// milliseconds, a sample between two arrivals finds none busy however many the load takes.
#[derive(Default)]
pub(super) struct ActiveUsers {
    /// Closed model: users alive now.
    alive: AtomicU64,
    /// Open model: users busy with a hit now.
    in_flight: AtomicU64,
    /// The most `in_flight` since the last [`take`](Self::take).
    peak: AtomicU64,
}

impl ActiveUsers {
    /// A user of the closed model is alive, until the guard is dropped.
    pub(super) fn alive(&self) -> Active<'_> {
        self.alive.fetch_add(1, Ordering::Relaxed);
        Active(&self.alive)
    }

    /// A user of the open model is busy with a hit, until the guard is dropped.
    pub(super) fn in_flight(&self) -> Active<'_> {
        let n = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        // Written only when it rises: most hits only read it.
        if n > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(n, Ordering::Relaxed);
        }
        Active(&self.in_flight)
    }

    /// The users active for the collector's period, the live line and the timeline: the
    /// closed model's alive now, plus the most hits in flight at once since the last call.
    pub(super) fn take(&self) -> u64 {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let peak = self.peak.swap(in_flight, Ordering::Relaxed).max(in_flight);
        self.alive.load(Ordering::Relaxed).saturating_add(peak)
    }
}

/// Counts a user as active while it lives (or, in the open model, while its hit runs), even
/// when its task is aborted.
pub(super) struct Active<'a>(&'a AtomicU64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A virtual user's code: its suite's per-user state, and the slot the futures of its tests
/// and hooks run in (one block per user, reused on every hit).
pub(super) struct Code {
    state: Box<dyn UserState>,
    slot: FutureSlot,
}

/// One virtual user.
pub(super) struct VirtualUser {
    /// The tests each hit draws from.
    pub(super) mix: Arc<Mix>,
    /// The scenario the user belongs to (`None`: the run's own test and model); its hits'
    /// figures are kept per scenario too.
    pub(super) scenario: Option<Arc<str>>,
    /// This process's part of the run (an agent's index): it spreads the draws.
    pub(super) part: u64,
    /// Hits drawn so far.
    pub(super) drawn: AtomicU64,
    pub(super) args: Arc<RunArgs>,
    pub(super) recorder: UserRecorder,
    pub(super) control: Arc<Control>,
    /// Fires when the user's step is cancelled: the hit in flight is abandoned.
    pub(super) cancel: Cancel,
    pub(super) stop: Stop,
    pub(super) deadline: Option<Instant>,
    pub(super) users: u64,
    pub(super) user: u64,
    /// Ramp-up: how long after its step the user starts.
    pub(super) start_delay: Duration,
    /// Pause between hits.
    pub(super) think: Option<(Duration, Duration)>,
    /// Stages: set when the user must stop after its current hit.
    pub(super) retire: Option<Arc<AtomicBool>>,
}

/// How a hit or a hook ended, as the statistics record it.
pub(super) fn hit_outcome(outcome: &Result<(), TestError>) -> HitOutcome<'_> {
    match outcome {
        Ok(()) => HitOutcome::Success,
        Err(e) => {
            let info = e.exc_info();
            HitOutcome::Problem {
                outcome: if e.is_failure() {
                    ProblemKind::Failure
                } else {
                    ProblemKind::Error
                },
                message: info.message(),
                kind: info.kind(),
                traceback: info.traceback(),
            }
        }
    }
}

/// Watches a user's cancellation token across its hits: the token's waiter is registered once
/// per user (again only if the task's waker changes), where a `select!` on `cancelled()` per hit
/// registered and removed one per hit (a lock each time).
pub(super) struct CancelWatch {
    token: Cancel,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker the waiter was registered with.
    waker: Option<Waker>,
}

impl CancelWatch {
    pub(super) fn new(token: &Cancel) -> Self {
        CancelWatch {
            token: token.clone(),
            cancelled: Box::pin(token.cancelled_owned()),
            waker: None,
        }
    }

    /// Runs `fut` to its end (`Some`), or until the token is cancelled (`None`: `fut` is
    /// dropped).
    async fn run<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            // Before the first poll too (two atomic loads): a think time that ended because
            // the step was cancelled is followed by no hit.
            if self.token.is_cancelled() {
                return Poll::Ready(None);
            }
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                if self.cancelled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                self.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// The µs of `d`, bounded so that sums cannot overflow.
pub(super) fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX / 2)) as u64
}

impl VirtualUser {
    /// A user like this one, numbered `user`, with a recorder of its own on the same shard.
    pub(super) fn clone_for(&self, user: u64) -> VirtualUser {
        VirtualUser {
            mix: self.mix.clone(),
            scenario: self.scenario.clone(),
            part: self.part,
            drawn: AtomicU64::new(0),
            args: self.args.clone(),
            recorder: self.recorder.fresh(),
            control: self.control.clone(),
            cancel: self.cancel.clone(),
            stop: self.stop.clone(),
            deadline: self.deadline,
            users: self.users,
            user,
            start_delay: Duration::ZERO,
            think: self.think,
            retire: None,
        }
    }

    /// Pause between two hits (think time), uniform between the bounds; says whether it paused.
    async fn think(&self, hit: u64) -> bool {
        let Some((lo, hi)) = self.think else {
            return false;
        };
        let span = hi.saturating_sub(lo);
        let pause = if span.is_zero() {
            lo
        } else {
            // A cheap, well-spread draw per user and hit (the mix's splitmix64, part 0: the
            // same values as before mixes).
            let z = draw(0, self.user, hit);
            lo + span.mul_f64((z >> 11) as f64 / (1u64 << 53) as f64)
        };
        // The pause ends early when the step is cancelled, the deadline passes or the stages
        // retire the user (checked every 100 ms), so that `on_stop` runs on time.
        let until = Instant::now() + pause;
        let until = self.deadline.map_or(until, |d| until.min(d));
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.retired() {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(left.min(RETIRE_POLL)) => {}
                _ = self.cancel.cancelled() => return true,
            }
        }
    }

    fn retired(&self) -> bool {
        self.retire
            .as_ref()
            .is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// The user's test context and code, or `None` after recording why they could not be made.
    pub(super) fn prepare(&self) -> Option<(TestCase, Code)> {
        let name = &*self.mix.entries()[0].name;
        let mut case = match TestCase::new(
            self.mix.entries()[0].name.clone(),
            self.args.clone(),
            self.recorder.clone(),
        ) {
            Ok(c) => c,
            Err(e) => {
                let err = Err(TestError::from(e));
                self.record_unrun(name, hit_outcome(&err));
                return None;
            }
        };
        case.set_data(self.control.data.clone());
        let state = match std::panic::catch_unwind(self.mix.suite().new_user) {
            Ok(s) => s,
            Err(payload) => {
                let message = format!(
                    "creating the suite's per-user state panicked: {}",
                    crate::case::panic_message(payload.as_ref())
                );
                self.record_unrun(
                    name,
                    HitOutcome::Problem {
                        outcome: ProblemKind::Error,
                        message: &message,
                        kind: "panic",
                        traceback: "",
                    },
                );
                return None;
            }
        };
        Some((
            case,
            Code {
                state,
                slot: FutureSlot::new(),
            },
        ))
    }

    /// Whether the user must stop making hits: the run is stopping or the step was cancelled.
    fn stopped(&self) -> bool {
        self.control.stopping.load(Ordering::Relaxed) || self.cancel.is_cancelled()
    }

    /// Records a hit of `test` that never ran (the user could not be made): no duration.
    fn record_unrun(&self, test: &str, outcome: HitOutcome<'_>) {
        self.recorder.record(|s| {
            s.record_hit(&Hit {
                test,
                scenario: self.scenario.as_deref(),
                micros: None,
                second: unix_now(),
                outcome,
            })
        });
    }

    /// The user's whole life: `on_start`, the hits, `on_stop`.
    pub(super) async fn run(self) {
        if !self.start_delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.start_delay) => {}
                _ = self.cancel.cancelled() => return,
            }
        }
        let Some((mut case, mut code)) = self.prepare() else {
            return;
        };
        let _active = self.control.active_users.alive();
        if !self.hook(&mut case, &mut code, Hook::Start).await {
            return;
        }
        self.hits(&mut case, &mut code).await;
        self.hook(&mut case, &mut code, Hook::Stop).await;
    }

    /// Runs the user's hits until its plan, deadline, retirement or the run says stop. Without
    /// think time, a hit starts at the instant the previous one ended (one reading of the clock
    /// per hit, not three).
    async fn hits(&self, case: &mut TestCase, code: &mut Code) {
        let mut cancel = CancelWatch::new(&self.cancel);
        let mut now = Instant::now();
        match &self.stop {
            Stop::Hits(hits) => {
                'steps: for &h in hits.values() {
                    for i in 1..=h {
                        if self.stopped() {
                            break 'steps;
                        }
                        if i > 1 && self.think.is_some() && self.think(i).await {
                            now = Instant::now();
                        }
                        match self.hit(case, code, h, i, now, &mut cancel).await {
                            Some(end) => now = end,
                            None => break 'steps,
                        }
                    }
                }
            }
            Stop::Duration(_) => {
                let deadline = self.deadline.unwrap_or(now);
                let mut i = 0;
                while now < deadline && !self.stopped() && !self.retired() {
                    i += 1;
                    if i > 1 && self.think.is_some() && self.think(i).await {
                        now = Instant::now();
                        if now >= deadline || self.retired() {
                            break;
                        }
                    }
                    match self.hit(case, code, 0, i, now, &mut cancel).await {
                        Some(end) => now = end,
                        None => break,
                    }
                }
            }
        }
    }

    /// Runs the user's lifecycle `hook` if its suite has one and records its outcome apart
    /// from the hits. Returns whether the user goes on: `false` when `on_start` failed (the
    /// user then runs no hits and no `on_stop`) or was abandoned (the step was cancelled while
    /// it ran). An `on_stop` runs even after the step was cancelled; the driver aborts it
    /// [`STOP_GRACE`](super::STOP_GRACE) later.
    pub(super) async fn hook(&self, case: &mut TestCase, code: &mut Code, hook: Hook) -> bool {
        let name: Arc<str> = Arc::from(format!("{}::{}", self.mix.suite().name, hook.method()));
        let test = case.test_name_arc();
        case.set_test(name.clone());
        let started = Instant::now();
        // A hook the run cannot wait for is abandoned, and says so: `on_start` when the step is
        // cancelled, `on_stop` shortly before the driver aborts the users after the stop grace.
        let cut_off = async {
            self.cancel.cancelled().await;
            if hook == Hook::Stop {
                tokio::time::sleep(STOP_GRACE.saturating_sub(Duration::from_millis(500))).await;
            }
        };
        let outcome = tokio::select! {
            biased;
            o = run_hook(&mut *code.state, hook, case, &mut code.slot) => o,
            _ = cut_off => Some(Err(TestError::error(match hook {
                Hook::Start => "on_start abandoned: the run stopped while it ran".to_owned(),
                Hook::Stop => format!(
                    "on_stop abandoned: still running {} after the run stopped",
                    humantime::format_duration(STOP_GRACE)
                ),
            }))),
        };
        case.set_test(test);
        let Some(outcome) = outcome else {
            return true;
        };
        let ok = outcome.is_ok();
        self.record_hook(&name, micros(started.elapsed()), &outcome);
        ok
    }

    /// Records the outcome of a lifecycle hook.
    fn record_hook(&self, name: &str, micros: u64, outcome: &Outcome) {
        let outcome = hit_outcome(outcome);
        self.recorder
            .record(|s| s.record_hook(name, micros, &outcome));
    }

    /// Runs one hit, which starts at `started`, and records its outcome; returns the instant
    /// it ended, or `None`, recording nothing, when the step was cancelled before the hit
    /// ended (the hit is abandoned).
    pub(super) async fn hit(
        &self,
        case: &mut TestCase,
        code: &mut Code,
        hits: u64,
        i: u64,
        started: Instant,
        cancel: &mut CancelWatch,
    ) -> Option<Instant> {
        case.set_status(LoadsStatus {
            hits,
            users: self.users,
            current_hit: i,
            current_user: self.user,
        });
        let status = case.status();
        let seq = self.drawn.fetch_add(1, Ordering::Relaxed);
        let entry = self.mix.pick(draw(self.part, self.user, seq));
        if self.mix.entries().len() > 1 {
            case.set_test(entry.name.clone());
        }
        let raw = self.recorder.send_raw(|loads_status| Event::StartTest {
            test: entry.name.to_string(),
            loads_status,
        });
        let outcome = cancel
            .run(run_hit(
                &mut *code.state,
                entry.test.index,
                case,
                &mut code.slot,
            ))
            .await?;
        if case.data_stopped() {
            // A `queue-stop` source ran out: the hit is not counted, and the user stops.
            return None;
        }
        let ended = Instant::now();
        let took = micros(ended.saturating_duration_since(started));
        let name = &*entry.name;
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
                elapsed: Some(took as f64 / 1e6),
            });
            return Some(ended);
        }
        let hit = Hit {
            test: name,
            scenario: self.scenario.as_deref(),
            micros: Some(took),
            // A hit is counted in the second it started, as its requests are: the per-second
            // history then shows a hit and its requests together.
            second: unix_second_at(started),
            outcome: hit_outcome(&outcome),
        };
        self.recorder.record_hit(&entry.name, &hit);
        Some(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_on_a_cancelled_step_starts_no_hit() {
        let run = Cancel::new();
        let step = run.child();
        let mut watch = CancelWatch::new(&step);
        let started = std::sync::atomic::AtomicBool::new(false);
        assert_eq!(watch.run(async { 1 }).await, Some(1));
        step.cancel();
        let r = watch
            .run(async {
                started.store(true, Ordering::Relaxed);
                2
            })
            .await;
        assert_eq!(r, None);
        assert!(!started.load(Ordering::Relaxed), "the hit was started");
    }
}
