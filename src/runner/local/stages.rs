//! The stages driver: the closed model by stages, where a controller follows the stages' line
//! of users ten times a second, adding users or retiring the newest ones. Users enter as tasks
//! on the workers of the [`DriveCtx`]; their hits leave through the recorder.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::drive::{DriveCtx, GRACE, await_users};

/// Closed model by stages: a controller adds users (or retires the newest ones, after their
/// current hit; they run their `on_stop` then) ten times a second to follow the stages' line.
/// A user that ended (its `on_start` failed) no longer counts and is replaced at the next tick.
pub(super) async fn drive_stages(ctx: &DriveCtx<'_>, stages: &[(u64, Duration)]) {
    let step_cancel = ctx.control.cancel.child();
    let start = Instant::now();
    let total: Duration = stages.iter().map(|(_, d)| *d).sum();
    let end = start + total;
    let grace_cancel = step_cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until((end + GRACE).into()).await;
        grace_cancel.cancel();
    });
    // Users counted in the line, and users told to stop after their hit (with their task);
    // the tasks of users that ended, reaped now and then (a user whose `on_start` fails ends at
    // once and is replaced: these must not pile up over a long run).
    type User = (Arc<AtomicBool>, tokio::task::JoinHandle<()>);
    let mut live: Vec<User> = Vec::new();
    let mut retiring: Vec<User> = Vec::new();
    let mut ended: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut next_user = 1u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let split = |users: Vec<User>, ended: &mut Vec<tokio::task::JoinHandle<()>>| -> Vec<User> {
        let (done, going): (Vec<User>, Vec<User>) =
            users.into_iter().partition(|(_, t)| t.is_finished());
        ended.extend(done.into_iter().map(|(_, t)| t));
        going
    };
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= end || ctx.control.stopping.load(Ordering::SeqCst) {
            break;
        }
        // A change from the dashboard holds until the end of the stages.
        let target = ctx
            .control
            .load
            .target(ctx.index)
            .unwrap_or_else(|| users_at(stages, now - start));
        retiring = split(std::mem::take(&mut retiring), &mut ended);
        // A user that ended anyway (its `on_start` failed) no longer counts.
        live = split(std::mem::take(&mut live), &mut ended);
        if ended.len() >= REAP_AT {
            // Finished tasks: this only records the panics among them.
            await_users(std::mem::take(&mut ended), &step_cancel, ctx).await;
        }
        while (live.len() as u64) < target {
            // A user still finishing its last hit comes back before a new one starts.
            if let Some((r, t)) = retiring.pop() {
                r.store(false, Ordering::Relaxed);
                live.push((r, t));
                continue;
            }
            let w = (next_user as usize - 1) % ctx.workers.len();
            let mut vu = ctx.user(w, target, next_user, &step_cancel);
            vu.deadline = Some(end);
            let retire = Arc::new(AtomicBool::new(false));
            vu.retire = Some(retire.clone());
            live.push((retire, ctx.workers[w].handle.spawn(vu.run())));
            next_user += 1;
        }
        while (live.len() as u64) > target {
            if let Some((r, t)) = live.pop() {
                r.store(true, Ordering::Relaxed);
                retiring.push((r, t));
            }
        }
    }
    let tasks = ended
        .into_iter()
        .chain(live.into_iter().chain(retiring).map(|(_, t)| t))
        .collect();
    await_users(tasks, &step_cancel, ctx).await;
    step_cancel.cancel();
}

/// Ended users' tasks kept before they are reaped.
const REAP_AT: usize = 256;

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
