//! What the drivers of the plan's models share: the scenario they drive ([`Part`]), the
//! [`DriveCtx`] they are given (workers, recorder, control, arguments, the part), the making of
//! a virtual user of the part, and [`await_users`], which waits for the users' tasks at the end
//! of a step: once the step is cancelled, users abandon their hits and run their `on_stop`
//! for at most [`STOP_GRACE`] before their tasks are aborted.

use std::sync::Arc;
use std::time::Duration;

use super::cancel::Cancel;
use super::user::VirtualUser;
use super::worker::Worker;
use super::{Control, STOP_GRACE};
use crate::case::Mix;
use crate::config::RunArgs;
use crate::config::plan::Plan;
use crate::result::{ProblemKind, Recorder, UserRecorder, unix_now};

/// How long in-flight hits may finish after a duration step ends, before they are cancelled.
pub(super) const GRACE: Duration = Duration::from_secs(5);

/// One scenario of the run as the local runner drives it (a run without `[[scenario]]` tables
/// is one unnamed part).
pub(super) struct Part {
    /// The scenario's name (`None`: the run's own test and model).
    pub(super) name: Option<Arc<str>>,
    /// The tests each hit draws from.
    pub(super) mix: Arc<Mix>,
    /// Its load plan (this process's share of it).
    pub(super) plan: Plan,
    /// How long after the run starts it starts.
    pub(super) start_after: Duration,
}

/// What the drivers share.
pub(super) struct DriveCtx<'a> {
    /// The part's index in the run (for its load target).
    pub(super) index: usize,
    pub(super) workers: &'a [Worker],
    pub(super) recorder: &'a Arc<Recorder>,
    pub(super) control: &'a Arc<Control>,
    pub(super) args: Arc<RunArgs>,
    /// The scenario driven.
    pub(super) part: &'a Part,
    /// The name problems outside a test are kept under (the mix's first test).
    pub(super) name: Arc<str>,
}

impl DriveCtx<'_> {
    /// A virtual user of this part, on worker `w`, whose hits end when `cancel` fires.
    pub(super) fn user(&self, w: usize, users: u64, user: u64, cancel: &Cancel) -> VirtualUser {
        VirtualUser {
            mix: self.part.mix.clone(),
            scenario: self.part.name.clone(),
            part: self.args.plan.share.map_or(0, |(index, _)| index),
            drawn: std::sync::atomic::AtomicU64::new(0),
            args: self.args.clone(),
            recorder: UserRecorder::new(self.recorder.clone(), w),
            control: self.control.clone(),
            cancel: cancel.clone(),
            stop: self.part.plan.stop.clone(),
            deadline: None,
            users,
            user,
            start_delay: Duration::ZERO,
            think: self.part.plan.think,
            retire: None,
        }
    }
}

/// Waits for the users' tasks. When `cancel` fires (Ctrl-C, or the grace period after the
/// duration) the users abandon their hits (an abandoned hit is not recorded) and run their
/// `on_stop`; tasks still running [`STOP_GRACE`] later are aborted. A task that panicked outside
/// the guarded test code is counted as an error.
pub(super) async fn await_users(
    tasks: Vec<tokio::task::JoinHandle<()>>,
    cancel: &Cancel,
    ctx: &DriveCtx<'_>,
) {
    let mut tasks: Vec<Option<tokio::task::JoinHandle<()>>> = tasks.into_iter().map(Some).collect();
    let mut outcomes = Vec::new();
    async fn all(
        tasks: &mut [Option<tokio::task::JoinHandle<()>>],
        outcomes: &mut Vec<Result<(), tokio::task::JoinError>>,
    ) {
        for slot in tasks.iter_mut() {
            if let Some(t) = slot.as_mut() {
                let r = t.await;
                *slot = None;
                outcomes.push(r);
            }
        }
    }
    let finished = tokio::select! {
        _ = all(&mut tasks, &mut outcomes) => true,
        _ = cancel.cancelled() => false,
    };
    if !finished {
        tokio::select! {
            _ = all(&mut tasks, &mut outcomes) => {}
            _ = tokio::time::sleep(STOP_GRACE) => {}
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
