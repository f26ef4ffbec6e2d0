//! One virtual user of a local run: it makes its test context and per-user state, runs its
//! hits (with think time, until its hits are done, its deadline passes, the run stops or it is
//! retired) and records each hit's outcome into its shard of the recorder (or sends raw events
//! with `--raw-events`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Control;
use crate::case::{Mix, TestCase, TestError, draw, run_hit};
use crate::config::RunArgs;
use crate::config::plan::Stop;
use crate::result::{Event, LoadsStatus, ProblemKind, UserRecorder, unix_now};

/// Counts a user as active while it lives, even when its task is aborted.
pub(super) struct Active<'a>(pub(super) &'a AtomicU64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One virtual user.
pub(super) struct VirtualUser {
    /// The tests each hit draws from.
    pub(super) mix: Arc<Mix>,
    /// This process's part of the run (an agent's index): it spreads the draws.
    pub(super) part: u64,
    /// Hits drawn so far.
    pub(super) drawn: AtomicU64,
    pub(super) args: Arc<RunArgs>,
    pub(super) recorder: UserRecorder,
    pub(super) control: Arc<Control>,
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

impl VirtualUser {
    /// A user like this one, numbered `user`, with a recorder of its own on the same shard.
    pub(super) fn clone_for(&self, user: u64) -> VirtualUser {
        VirtualUser {
            mix: self.mix.clone(),
            part: self.part,
            drawn: AtomicU64::new(0),
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
            // A cheap, well-spread draw per user and hit (the mix's splitmix64, part 0: the
            // same values as before mixes).
            let z = draw(0, self.user, hit);
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
    pub(super) fn prepare(&self) -> Option<(TestCase, Box<dyn crate::case::UserState>)> {
        let name = &*self.mix.entries()[0].name;
        let mut case = match TestCase::new(
            self.mix.entries()[0].name.clone(),
            self.args.clone(),
            self.recorder.clone(),
        ) {
            Ok(c) => c,
            Err(e) => {
                let err = TestError::from(e);
                let info = err.exc_info();
                self.recorder.record(|s| {
                    s.record_start(name);
                    s.record_problem(
                        ProblemKind::Error,
                        name,
                        info.message(),
                        info.kind(),
                        info.traceback(),
                        unix_now(),
                    )
                });
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
                self.recorder.record(|s| {
                    s.record_start(name);
                    s.record_problem(ProblemKind::Error, name, &message, "panic", "", unix_now())
                });
                return None;
            }
        };
        Some((case, state))
    }

    pub(super) async fn run(self) {
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
                        if case.data_stopped() {
                            break 'steps;
                        }
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
                    if case.data_stopped() {
                        break;
                    }
                }
            }
        }
    }

    /// Runs one hit and records its outcome. Cancellation aborts the whole user task (the
    /// driver aborts it), so an abandoned hit is simply never recorded.
    pub(super) async fn hit(
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
        let seq = self.drawn.fetch_add(1, Ordering::Relaxed);
        let entry = self.mix.pick(draw(self.part, self.user, seq));
        if self.mix.entries().len() > 1 {
            case.set_test(entry.name.clone());
        }
        let raw = self.recorder.send_raw(|loads_status| Event::StartTest {
            test: entry.name.to_string(),
            loads_status,
        });
        let outcome = run_hit(state, entry.test.index, case).await;
        if case.data_stopped() {
            // A `queue-stop` source ran out: the hit is not counted, and the user stops.
            return;
        }
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
