//! Agents' messages on the back socket: registration, heartbeats, blob requests and their
//! workers' readiness and exits, accepted only from registered agents with the key they
//! registered with. (Workers' leases of data rows come on the same socket: `leases`.)

use super::*;
use crate::db::MAX_PROBLEM_BYTES;
use crate::result::stats::{MAX_NAME_BYTES, cut};

impl Broker {
    pub(super) fn on_agent(&mut self, frames: Vec<Vec<u8>>, user: &str, back: &zmq::Socket) {
        if frames.len() < 2 {
            self.rejected += 1;
            return;
        }
        let id = String::from_utf8_lossy(&frames[0]).into_owned();
        let msg = match from_frame::<FromAgent>(&frames[1]) {
            Ok(m) => m,
            Err(_) => {
                self.rejected += 1;
                return;
            }
        };
        // A worker's lease of data rows, on a connection of its own: its token speaks for it.
        if matches!(
            msg,
            FromAgent::LeaseRows { .. } | FromAgent::ReleaseRows { .. }
        ) {
            return self.on_lease(&id, msg, user, back);
        }
        // Only a registered agent may fetch blobs or speak for a run, and only for a run it
        // was given, and with the key it registered with: a forged or stale identity changes
        // nothing.
        let registered = self.agents.get(&id).is_some_and(|a| a.key == user);
        if self.agents.contains_key(&id) && !registered {
            self.rejected += 1;
            return;
        }
        let in_run = |runs: &BTreeMap<String, ActiveRun>, run_id: &str| {
            runs.get(run_id).is_some_and(|r| r.agents.contains(&id))
        };
        let allowed = match &msg {
            FromAgent::Register { .. } | FromAgent::Heartbeat { .. } => true,
            FromAgent::NeedBinary { .. } => registered,
            FromAgent::WorkerReady { run_id } | FromAgent::WorkerExited { run_id, .. } => {
                registered && (in_run(&self.runs, run_id) || !self.runs.contains_key(run_id))
            }
            FromAgent::LeaseRows { .. } | FromAgent::ReleaseRows { .. } => false,
        };
        if !allowed {
            self.rejected += 1;
            return;
        }
        match msg {
            FromAgent::Register { host, pid } => {
                self.agents.insert(
                    id.clone(),
                    Agent {
                        // Listed to callers (`loads agents`, the broker's page): an agent's
                        // host may be as long as its message (1 MiB).
                        host: cut(&host, MAX_NAME_BYTES).into_owned(),
                        pid,
                        last_seen: Instant::now(),
                        busy: None,
                        key: user.to_owned(),
                    },
                );
                if let Ok(f) = to_frame(&ToAgent::Welcome) {
                    let _ = back.send_multipart([id.as_bytes(), &f], 0);
                }
            }
            FromAgent::Heartbeat { busy } => match self.agents.get_mut(&id) {
                Some(a) => {
                    a.last_seen = Instant::now();
                    match (busy, &a.busy) {
                        // Busy with a run this broker does not know (its worker outlived a
                        // broker restart): not given new runs until that worker ends.
                        (Some(r), None) => a.busy = Some(r),
                        (None, Some(r)) if !self.runs.contains_key(r) => a.busy = None,
                        _ => {}
                    }
                }
                None => {
                    // A broker restart, or a silence, forgot this agent: ask it to register
                    // again (runs it still works for are unknown here: they end on their own).
                    let _ = busy;
                    if let Ok(f) = to_frame(&ToAgent::Reregister) {
                        let _ = back.send_multipart([id.as_bytes(), &f], 0);
                    }
                }
            },
            FromAgent::NeedBinary { sha256, offset } => {
                let chunk = self
                    .binary_path(&sha256)
                    .and_then(|p| crate::transport::blobs::read_chunk(&p, offset).ok());
                if let Some((bytes, total)) = chunk
                    && let Ok(f) = to_frame(&ToAgent::Binary {
                        sha256,
                        offset,
                        total,
                    })
                {
                    let _ = back.send_multipart([id.as_bytes(), &f, &bytes], 0);
                }
            }
            FromAgent::WorkerReady { run_id } => {
                if let Some(run) = self.runs.get_mut(&run_id) {
                    run.ready.insert(id);
                    Self::go_when_ready(&run_id, run, back);
                }
            }
            FromAgent::WorkerExited {
                run_id,
                code,
                error,
            } => {
                if let Some(a) = self.agents.get_mut(&id) {
                    a.last_seen = Instant::now();
                    if a.busy.as_deref() == Some(run_id.as_str()) {
                        a.busy = None;
                    }
                }
                if let Some(run) = self.runs.get_mut(&run_id) {
                    if run.stopped || run.stopped_agents.contains_key(&id) {
                        // Stopped on request: whatever the exit, it is what was asked.
                    } else if let Some(e) = error.filter(|_| code != Some(0)) {
                        // Kept cut, or only counted: an agent may say this again and again.
                        run.errors
                            .push(&format!("agent {id}: {}", cut(&e, MAX_PROBLEM_BYTES)));
                    } else if code != Some(0) && !run.done.contains_key(&id) {
                        run.errors
                            .push(&format!("agent {id}: the worker exited with {code:?}"));
                    }
                    run.exited.insert(id, (Instant::now(), code == Some(0)));
                }
            }
            // Handled above.
            FromAgent::LeaseRows { .. } | FromAgent::ReleaseRows { .. } => {}
        }
    }
}
