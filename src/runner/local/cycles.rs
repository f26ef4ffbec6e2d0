//! The cycles driver: users × hits (or users for a duration), one cycle step after the other,
//! each step's users started together or over the ramp-up. Users enter as tasks on the workers
//! of the [`DriveCtx`]; their hits leave through the recorder.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::drive::{DriveCtx, GRACE, await_users};
use crate::config::plan::Stop;

/// Users × hits cycles (or users for a duration), each step's users started together or over
/// the ramp-up.
pub(super) async fn drive_cycles(ctx: &DriveCtx<'_>) {
    let plan = &ctx.part.plan;
    for &users in plan.users.values() {
        if ctx.control.stopping.load(Ordering::SeqCst) {
            break;
        }
        let step_cancel = ctx.control.cancel.child_token();
        let deadline = match &plan.stop {
            // `Plan::check` bounds durations, so this cannot overflow in practice.
            Stop::Duration(d) => Instant::now().checked_add(*d),
            Stop::Hits(_) => None,
        };
        let mut tasks = Vec::with_capacity(users as usize);
        for u in 1..=users {
            let w = (u as usize - 1) % ctx.workers.len();
            let mut vu = ctx.user(w, users, u, &step_cancel);
            vu.deadline = deadline;
            if let Some(ramp) = plan.ramp_up {
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
