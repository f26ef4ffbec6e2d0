//! The worker process of a cluster run: [`run_worker`] takes a [`Job`] from its agent, runs it
//! with the runner that [`runner_for`] picks (the local one, or the external one for
//! `--test-runner`) once the broker gives the go, and sends every event through a [`Relay`] to
//! the broker instead of into a test result; the rows of its unique data sources are leased
//! from the broker ([`BrokerLease`]), and those it did not use are given back at its end. After
//! the go, its stdin brings the load changes of the dashboard (one
//! [`ToAgent::Load`](crate::transport::ToAgent::Load) per line, the run's total, of which the
//! runner's [`LoadControl`](crate::runner::LoadControl) takes this worker's share). What went
//! wrong (failed runners, unsent events, an interruption) leaves as the error.

use std::time::Duration;

use crate::runner::{ChangeLoad as _, LocalOrExternal, RunError, runner_for};
use crate::transport::Job;
use crate::transport::lease::BrokerLease;
use crate::transport::relay::Relay;

/// How long a worker waits for the go of its run.
const GO_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest line the agent sends after the go (a load change).
const MAX_LINE: u64 = 4096;

/// Reads the agent's load changes from stdin until it closes, and makes them.
fn follow_load_changes(load: Option<&crate::runner::LoadControl>) {
    use std::io::BufRead as _;
    use std::io::Read as _;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut input).take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.last() != Some(&b'\n') => {
                // Longer than any change: skip to its end.
                if input.skip_until(b'\n').unwrap_or(0) == 0 {
                    return;
                }
            }
            Ok(_) => {
                let change = serde_json::from_slice::<crate::transport::ToAgent>(&line);
                match (change, load) {
                    (
                        Ok(crate::transport::ToAgent::Load {
                            scenario, value, ..
                        }),
                        Some(load),
                    ) => match load.set(scenario.as_deref(), value) {
                        Ok(what) => tracing::info!("load change: {what}"),
                        Err(why) => tracing::warn!("load change refused: {why}"),
                    },
                    (Ok(_), None) => {
                        tracing::warn!("load change refused: an external runner paces itself")
                    }
                    _ => tracing::warn!("not a load change from the agent"),
                }
            }
        }
    }
}

/// The worker: runs a job with the local runner, sending its events through a relay.
pub fn run_worker(job: &Job) -> Result<(), RunError> {
    // A registered test runs in this process; an external one in processes of its own.
    let runner = runner_for(job.args.clone())?
        .collect_every(Duration::from_secs(1))
        .agent_id(&job.agent_id)
        .handle_ctrl_c(true);
    let relay = Relay::connect(&job.receiver, &job.run_id, &job.agent_id, &job.token)?;
    // Unique data rows (queue, per-user) come from the broker's leases, unique in the run.
    let data = runner.data().clone();
    if job.args.plan.data.iter().any(|d| d.strategy.unique()) {
        let lease = BrokerLease::connect(&job.backend, &job.token)?;
        data.use_lease(std::sync::Arc::new(lease));
    }
    // Wait for the go: the broker gives it when every worker of the run is ready, so that they
    // start together. A closed pipe (the agent stopping us) or no go in time ends the worker.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line).unwrap_or(0);
        let _ = tx.send(n > 0 && line.trim() == "go");
    });
    match rx.recv_timeout(GO_TIMEOUT) {
        Ok(true) => {
            // The agent keeps the pipe open while it lives: when it closes (the agent ended,
            // even killed), the worker stops as on SIGTERM, so that it never loads on alone.
            let load = runner.load_control();
            std::thread::spawn(move || {
                follow_load_changes(load.as_deref());
                // SAFETY: raise only sends a signal to this process, whose handler stops the run.
                unsafe {
                    libc::raise(libc::SIGTERM);
                }
            });
        }
        Ok(false) => return Ok(()),
        Err(_) => {
            return Err(RunError::Cluster(format!(
                "no go from the broker within {}s",
                GO_TIMEOUT.as_secs()
            )));
        }
    }
    let ran = match runner {
        LocalOrExternal::Local(r) => {
            let (relay, interrupted) = r.run_into(relay)?;
            (relay, interrupted, Vec::new())
        }
        LocalOrExternal::External(r) => {
            let (relay, interrupted, mut problems, rejected) = r.run_into(relay)?;
            problems.extend(rejected.problems());
            for w in rejected.warnings() {
                eprintln!("warning: {w}");
            }
            (relay, interrupted, problems)
        }
    };
    // The rows leased and not used go back to the broker, for the workers still running.
    data.release_unused();
    let (relay, interrupted, problems) = ran;
    if !problems.is_empty() {
        // The agent reports the worker's error (the tail of its stderr) to the broker, which
        // shows it among the run's problems.
        return Err(RunError::Cluster(problems.join("\n")));
    }
    if relay.failures() > 0 {
        return Err(RunError::Cluster(format!(
            "{} events could not be sent to the broker",
            relay.failures()
        )));
    }
    if interrupted {
        // Stopped by a signal: the broker counts it as a problem unless it asked for the stop.
        return Err(RunError::Cluster(
            "the worker was interrupted (SIGTERM or SIGINT) before the end of its plan".into(),
        ));
    }
    Ok(())
}
