//! The open model (`--rate`): arrivals at the plan's rate, independent of how fast the server
//! answers. Each worker thread takes every n-th arrival and serves it from a pool of virtual
//! users of its own (the [`Scheduler`]); late starts wait in a bounded backlog, and those beyond
//! it are counted as dropped. A new pool user runs its `on_start` when the first arrival it
//! serves is due, and every user that started runs its `on_stop` when the plan ends. A rate
//! set from the dashboard ([`LoadControl`](super::LoadControl)) replaces the plan's from then
//! to the plan's end (0 pauses the arrivals). Users enter as tasks on the workers of the
//! [`DriveCtx`]; their hits leave through the recorder.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::drive::{DriveCtx, GRACE, await_users};
use super::user::{CancelWatch, VirtualUser, micros};
use crate::case::{Hook, TestCase};

/// Open model: each worker thread takes every n-th arrival of the rate and serves it from a
/// pool of virtual users of its own.
pub(super) async fn drive_rate(
    ctx: &DriveCtx<'_>,
    start_rate: f64,
    stages: &[(f64, Duration)],
    max_users: u64,
    offset: f64,
) {
    let step_cancel = ctx.control.cancel.child();
    let start = Instant::now();
    let total: Duration = stages.iter().map(|(_, d)| *d).sum();
    let end = start + total;
    // One lane of arrivals per worker, but never more lanes than users in the pool.
    let n = (ctx.workers.len() as u64).min(max_users).max(1);
    let mut tasks = Vec::new();
    for (w, worker) in ctx.workers.iter().enumerate().take(n as usize) {
        let pool = crate::config::share_of(max_users, (w as u64, n));
        let scheduler = Scheduler {
            first_user: w as u64 * max_users.div_ceil(n),
            template: ctx.user(w, 0, 0, &step_cancel),
            stages: stages.to_vec(),
            start_rate,
            start,
            end,
            lane: (w as u64, n),
            part: ctx.index,
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
    /// The part of the run (its load's index in the run's `LoadControl`).
    part: usize,
    pool: u64,
    /// Phase of this process's arrivals (see `Model::Rate`).
    offset: f64,
    cancel: Cancel,
}

/// A virtual user of the open model's pool, with its test context and code.
struct PoolUser {
    vu: VirtualUser,
    case: TestCase,
    code: super::user::Code,
    hits: u64,
    /// Its `on_start` succeeded.
    started: bool,
}

/// A rate set while the run goes on: from `since`, `rate` arrivals per second (of this
/// process) until the plan's end.
#[derive(Clone, Copy, PartialEq)]
struct SetRate {
    since: Instant,
    rate: f64,
}

impl Scheduler {
    /// When this lane's arrival `k` (from 0) is due: by the plan, or by the rate set since;
    /// `None` once there are no more before the plan's end.
    fn arrival(&self, set: Option<SetRate>, k: u64) -> Option<Instant> {
        let j = (k * self.lane.1 + self.lane.0 + 1) as f64 - self.offset;
        match set {
            None => crate::config::plan::arrival_at(self.start_rate, &self.stages, j)
                .map(|t| self.start + Duration::from_secs_f64(t)),
            Some(s) if s.rate > 0.0 => {
                // A tiny rate puts the arrival beyond what an Instant holds: never due.
                let t = s
                    .since
                    .checked_add(Duration::try_from_secs_f64(j / s.rate).ok()?)?;
                (t < self.end).then_some(t)
            }
            Some(_) => None,
        }
    }

    /// Counts `n` starts due at `due` that never happened (at once, so that an abort loses
    /// none).
    fn drop_starts(&self, n: u64, due: Instant) {
        if n > 0 {
            let second = crate::result::recorder::unix_second_at(due);
            self.template.recorder.record(|s| s.drop_starts(n, second));
        }
    }

    async fn run(self) {
        // Users come back after each hit (`None`: the user was dropped, its `on_start` failed).
        let (back_tx, mut back_rx) = tokio::sync::mpsc::unbounded_channel::<Option<PoolUser>>();
        // The hits in flight: aborted with the scheduler (an abandoned hit is not recorded).
        let mut hits = tokio::task::JoinSet::new();
        let mut idle: Vec<PoolUser> = Vec::new();
        let mut backlog: std::collections::VecDeque<Instant> = Default::default();
        let backlog_max = (self.pool as usize).saturating_mul(BACKLOG_PER_USER);
        let (mut created, mut in_flight) = (0u64, 0u64);
        let mut k = 0u64;
        let mut set: Option<SetRate> = None;
        let mut next = self.arrival(set, k);
        let control = self.template.control.clone();
        // A rate that can change is looked for at each turn, and ten times a second when
        // nothing else happens.
        let watch = control.load.rate_changes(self.part);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if control.stopping.load(Ordering::Relaxed) {
                break;
            }
            if watch
                && let Some(rate) = control.load.rate(self.part)
                && set.is_none_or(|s| s.rate != rate)
            {
                set = Some(SetRate {
                    since: Instant::now(),
                    rate,
                });
                k = 0;
                next = self.arrival(set, k);
            }
            let waiting_for_end = next.is_none() && !backlog.is_empty();
            tokio::select! {
                _ = tokio::time::sleep_until(next.unwrap_or(self.end).into()), if next.is_some() => {
                    // A rate set while this lane slept applies to this arrival too (the top of
                    // the loop schedules anew): one made at the old rate after a pause would
                    // start after the pause took effect.
                    let changed = watch
                        && control
                            .load
                            .rate(self.part)
                            .is_some_and(|rate| set.is_none_or(|s| s.rate != rate));
                    if !changed {
                        if let Some(t) = next {
                            backlog.push_back(t);
                            if backlog.len() > backlog_max
                                && let Some(due) = backlog.pop_front()
                            {
                                self.drop_starts(1, due);
                            }
                        }
                        k += 1;
                        next = self.arrival(set, k);
                    }
                }
                Some(u) = back_rx.recv() => {
                    in_flight -= 1;
                    match u {
                        Some(u) => idle.push(u),
                        // A new user may take the place of one whose `on_start` failed.
                        None => created -= 1,
                    }
                }
                _ = tokio::time::sleep_until(self.end.into()), if waiting_for_end => {}
                _ = tick.tick(), if watch => {}
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
                            Some((case, code)) => PoolUser {
                                vu,
                                case,
                                code,
                                hits: 0,
                                started: false,
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
                    let control = user.vu.control.clone();
                    let active = control.active_users.in_flight();
                    let PoolUser {
                        vu,
                        case,
                        code,
                        hits,
                        started,
                    } = &mut user;
                    // A new user starts (its `on_start`) when the first arrival it serves is
                    // due: that hit starts late by as much, and its lag says so.
                    if !*started {
                        if !vu.hook(case, code, Hook::Start).await {
                            // No hit for this arrival: a dropped start (and the user's failed
                            // `on_start` is in the results); a new user may come.
                            let second = crate::result::recorder::unix_second_at(intended);
                            vu.recorder.record(|s| s.drop_starts(1, second));
                            drop(active);
                            let _ = back.send(None);
                            return;
                        }
                        *started = true;
                    }
                    let now = Instant::now();
                    let lag = now.saturating_duration_since(intended);
                    let lag_us = micros(lag);
                    vu.recorder.set_lag(Some(lag_us));
                    *hits += 1;
                    let mut cancel = CancelWatch::new(&vu.cancel);
                    if let Some(end) = vu.hit(case, code, 0, *hits, now, &mut cancel).await {
                        let took = micros(end.saturating_duration_since(now));
                        vu.recorder.record(|s| s.record_hit_time(took, lag_us));
                    }
                    drop(active);
                    let _ = back.send(Some(user));
                });
            }
            // Reap finished hit tasks (their users came back through the channel).
            while hits.try_join_next().is_some() {}
            if next.is_none() {
                // The plan's arrivals are over: late starts may still get a user until the
                // plan's end; what waits then never starts.
                let ended = Instant::now() >= self.end;
                if ended {
                    self.drop_starts(backlog.len() as u64, Instant::now());
                    backlog.clear();
                }
                // A rate that can change may start arrivals again until the plan's end.
                if backlog.is_empty() && in_flight == 0 && (ended || !watch) {
                    break;
                }
            }
        }
        self.drop_starts(backlog.len() as u64, Instant::now());
        // Wait for the hits in flight (each gives its user back before it ends; a cancelled
        // step makes them abandon their hits), then every user that started runs its
        // `on_stop` (the driver aborts this task, and them, after the stop grace).
        while hits.join_next().await.is_some() {}
        while let Ok(u) = back_rx.try_recv() {
            idle.extend(u);
        }
        for mut user in idle.into_iter().filter(|u| u.started) {
            hits.spawn(async move {
                let PoolUser { vu, case, code, .. } = &mut user;
                vu.hook(case, code, Hook::Stop).await;
            });
        }
        while hits.join_next().await.is_some() {}
    }
}
