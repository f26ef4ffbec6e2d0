//! What the drivers of the plan's models share: the [`DriveCtx`] they are given (workers,
//! recorder, control, arguments), the making of a virtual user of the run, and
//! [`await_users`], which waits for (or aborts) the users' tasks at the end of a step.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::user::VirtualUser;
use super::worker::Worker;
use super::{Control, LocalRunner};
use crate::config::RunArgs;
use crate::result::{ProblemKind, Recorder, UserRecorder, unix_now};

/// How long in-flight hits may finish after a duration step ends, before they are cancelled.
pub(super) const GRACE: Duration = Duration::from_secs(5);

/// What the drivers share.
pub(super) struct DriveCtx<'a> {
    pub(super) workers: &'a [Worker],
    pub(super) recorder: &'a Arc<Recorder>,
    pub(super) control: &'a Arc<Control>,
    pub(super) args: Arc<RunArgs>,
    /// The name problems outside a test are kept under (the mix's first test).
    pub(super) name: Arc<str>,
}

impl LocalRunner {
    /// A virtual user of this run, on worker `w`.
    pub(super) fn user(&self, ctx: &DriveCtx<'_>, w: usize, users: u64, user: u64) -> VirtualUser {
        VirtualUser {
            mix: self.mix.clone(),
            part: self.args.plan.share.map_or(0, |(index, _)| index),
            drawn: std::sync::atomic::AtomicU64::new(0),
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
            scenario: None,
        }
    }
}

/// Waits for the users' tasks, or aborts them all when `cancel` fires (Ctrl-C, or the grace
/// period after the duration): abandoned hits are not recorded. A task that panicked outside
/// the guarded test code is counted as an error.
pub(super) async fn await_users(
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
