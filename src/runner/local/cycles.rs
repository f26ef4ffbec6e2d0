//! The cycles driver: users × hits (or users for a duration), one cycle step after the other,
//! each step's users started together or over the ramp-up. Users enter as tasks on the workers
//! of the [`DriveCtx`]; their hits leave through the recorder.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

use super::cancel::Cancel;
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
        let step_cancel = ctx.control.cancel.child();
        let deadline = match &plan.stop {
            // `Plan::check` bounds durations, so this cannot overflow in practice.
            Stop::Duration(d) => Instant::now().checked_add(*d),
            Stop::Hits(_) => None,
        };
        let mut tasks = Vec::with_capacity(users as usize);
        // The users of a duration step, each with its retirement flag (for load changes).
        let mut live: Vec<(Arc<AtomicBool>, usize)> = Vec::new();
        for u in 1..=users {
            let w = (u as usize - 1) % ctx.workers.len();
            let mut vu = ctx.user(w, users, u, &step_cancel);
            vu.deadline = deadline;
            if let Some(ramp) = plan.ramp_up {
                // User u of n starts (u-1)/n of the ramp-up after the step.
                vu.start_delay = ramp.mul_f64((u - 1) as f64 / users as f64);
            }
            if deadline.is_some() {
                let retire = Arc::new(AtomicBool::new(false));
                vu.retire = Some(retire.clone());
                live.push((retire, tasks.len()));
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
        if let Some(deadline) = deadline {
            follow_changes(ctx, &mut tasks, live, users + 1, deadline, &step_cancel).await;
        }
        await_users(tasks, &step_cancel, ctx).await;
        step_cancel.cancel();
    }
}

/// Until the end of a duration step: follows the users target a load change sets (ten times a
/// second), adding users (with the step's deadline) or retiring the newest ones after their
/// current hit (they run their `on_stop`).
async fn follow_changes(
    ctx: &DriveCtx<'_>,
    tasks: &mut Vec<JoinHandle<()>>,
    mut live: Vec<(Arc<AtomicBool>, usize)>,
    mut next_user: u64,
    deadline: Instant,
    cancel: &Cancel,
) {
    let mut retiring: Vec<(Arc<AtomicBool>, usize)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if Instant::now() >= deadline
            || ctx.control.stopping.load(Ordering::SeqCst)
            || tasks.iter().all(|t| t.is_finished())
        {
            break;
        }
        let Some(target) = ctx.control.load.target(ctx.index) else {
            continue;
        };
        retiring.retain(|(_, i)| !tasks[*i].is_finished());
        live.retain(|(_, i)| !tasks[*i].is_finished());
        while (live.len() as u64) < target {
            // A user still finishing its last hit comes back before a new one starts.
            if let Some((r, i)) = retiring.pop() {
                r.store(false, Ordering::Relaxed);
                live.push((r, i));
                continue;
            }
            let w = (next_user as usize - 1) % ctx.workers.len();
            let mut vu = ctx.user(w, target, next_user, cancel);
            vu.deadline = Some(deadline);
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
}
