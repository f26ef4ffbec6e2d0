//! Leases of test data rows, on the back socket: the workers of a run ask for blocks of row
//! numbers of its `queue`, `queue-stop` and `per-user` data sources (`FromAgent::LeaseRows`,
//! with their token), and the broker hands out disjoint blocks, so that no row goes to two
//! users of the run, whichever agents they run on.
//!
//! Per source, the broker keeps the next row never leased, the rows given back by workers that
//! ended (leased again first), and each agent's current block. Blocks shrink as the rows run
//! out (a quarter of what is left per agent, at most what the worker asks for), so that little
//! is held by a worker that is lost, and the last rows are spread one by one. The rows of a
//! lost agent's block are never leased again: its worker may have used them before it was lost,
//! and a row used twice is worse than one not used; the rows not yet leased stay for the others.

use super::*;
use std::ops::Range;

/// The leases of one data source of a run.
#[derive(Debug, Default)]
pub(super) struct SourceLeases {
    /// Rows of the source.
    total: u64,
    /// The first row never leased.
    next: u64,
    /// Rows given back, to lease again first.
    free: Vec<Range<u64>>,
    /// Each agent's current block (the rest of it is all a release may give back).
    held: HashMap<String, Range<u64>>,
}

impl SourceLeases {
    /// A block of at most `want` rows for `agent`, one of `agents`; empty when none is left.
    fn lease(&mut self, agent: &str, want: u64, agents: u64) -> Range<u64> {
        let want = want.clamp(1, crate::data::LEASE_BLOCK);
        let block = if let Some(r) = self.free.pop() {
            let end = r.start + want.min(r.end - r.start);
            if end < r.end {
                self.free.push(end..r.end);
            }
            r.start..end
        } else {
            let left = self.total.saturating_sub(self.next);
            let n = want.min((left / (4 * agents.max(1))).max(1)).min(left);
            let start = self.next;
            self.next += n;
            start..start + n
        };
        self.held.insert(agent.to_owned(), block.clone());
        block
    }

    /// Takes back `start..end` from `agent`: only the end of its current block.
    fn release(&mut self, agent: &str, start: u64, end: u64) -> bool {
        let Some(held) = self.held.get_mut(agent) else {
            return false;
        };
        if start >= end || start < held.start || end != held.end {
            return false;
        }
        held.end = start;
        self.free.push(start..end);
        true
    }
}

impl Broker {
    /// A worker's lease or release of rows (`id` is its connection's identity).
    pub(super) fn on_lease(&mut self, id: &str, msg: FromAgent, user: &str, back: &zmq::Socket) {
        let token = match &msg {
            FromAgent::LeaseRows { token, .. } | FromAgent::ReleaseRows { token, .. } => token,
            _ => return,
        };
        // The token says which run and agent the worker works for; its key must be that
        // agent's, and the agent still one of the run's.
        let Some((run_id, agent)) = self.tokens.get(token).cloned() else {
            // A worker's release often comes after its run ended (its token with it): nothing
            // to give back to then, and nothing wrong.
            if matches!(msg, FromAgent::LeaseRows { .. }) {
                self.rejected += 1;
            }
            return;
        };
        let agent_ok = self.agents.get(&agent).is_some_and(|a| a.key == user);
        let Some(run) = self.runs.get_mut(&run_id) else {
            self.rejected += 1;
            return;
        };
        let lost = run.row.lost_agents.contains(&agent);
        match msg {
            FromAgent::LeaseRows {
                id: request,
                source,
                want,
                ..
            } => {
                let answer = |start: u64, end: u64, error: Option<String>| ToAgent::Rows {
                    id: request,
                    source: source.clone(),
                    start,
                    end,
                    error,
                };
                let reply = if !agent_ok || lost {
                    answer(
                        0,
                        0,
                        Some(
                            "the broker lost this worker's agent: it leases it no more rows".into(),
                        ),
                    )
                } else {
                    let n = run.agents.len() as u64;
                    match leases_of(run, &source) {
                        Ok(leases) => {
                            let block = leases.lease(&agent, want, n);
                            answer(block.start, block.end, None)
                        }
                        Err(e) => answer(0, 0, Some(e)),
                    }
                };
                if let Ok(f) = to_frame(&reply) {
                    let _ = back.send_multipart([id.as_bytes(), &f], zmq::DONTWAIT);
                }
            }
            FromAgent::ReleaseRows {
                source, start, end, ..
            } => {
                let released = agent_ok
                    && !lost
                    && run
                        .leases
                        .get_mut(&source)
                        .is_some_and(|l| l.release(&agent, start, end));
                if !released {
                    self.rejected += 1;
                }
            }
            _ => {}
        }
    }
}

/// The leases of `source` in `run`, made at its first lease: a data source of the run whose
/// rows are unique (`queue`, `queue-stop`, `per-user`), with the number of rows the caller
/// counted.
fn leases_of<'a>(run: &'a mut ActiveRun, source: &str) -> Result<&'a mut SourceLeases, String> {
    if !run.leases.contains_key(source) {
        let Some(spec) = run.args.plan.data.iter().find(|d| d.name == source) else {
            return Err(format!("the run has no data source {source:?}"));
        };
        if !spec.strategy.unique() {
            return Err(format!(
                "data '{source}' is {}: its rows are not leased",
                spec.strategy
            ));
        }
        let total = spec
            .rows
            .ok_or_else(|| format!("data '{source}': the run did not say how many rows it has"))?;
        run.leases.insert(
            source.to_owned(),
            SourceLeases {
                total,
                ..SourceLeases::default()
            },
        );
    }
    run.leases
        .get_mut(source)
        .ok_or_else(|| format!("data '{source}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_disjoint_shrink_and_only_the_held_tail_comes_back() {
        let mut l = SourceLeases {
            total: 1000,
            ..SourceLeases::default()
        };
        let mut seen = Vec::new();
        let a = l.lease("a", 100, 3);
        assert_eq!(a, 0..83, "a quarter of what is left per agent");
        // Not the tail of a's block, nor b's rows: refused.
        assert!(!l.release("a", 10, 20));
        assert!(!l.release("b", 50, 83));
        assert!(l.release("a", 50, 83));
        seen.extend(0..50);
        let mut last = 0;
        loop {
            let b = l.lease("b", 100, 3);
            if b.is_empty() {
                break;
            }
            last = b.end - b.start;
            seen.extend(b);
        }
        seen.sort();
        assert_eq!(
            seen,
            (0..1000).collect::<Vec<_>>(),
            "each row once, none lost"
        );
        assert_eq!(last, 1, "the last rows go one by one");
    }
}
