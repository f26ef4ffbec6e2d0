//! The agent's outbox: what the agent says to the broker goes through it, never blocking.
//!
//! Messages enter by [`Outbox::push`] (the agent's every message) and leave by
//! [`Outbox::flush`], tried every turn of the agent's loop, as far as the broker's connection
//! takes them: one that is down or refuses this agent's key takes nothing, and nothing is queued
//! in libzmq for it.

use std::collections::VecDeque;

use super::super::{FromAgent, TransportError, to_frame, z};

/// Most messages waiting for the broker in an agent's outbox.
pub const OUTBOX: usize = 64;

/// The agent's messages that the broker could not take yet (its connection is down, refused,
/// or its queue is full), oldest first, sent without blocking every turn of the agent's loop.
///
/// Bounded: a registration, a heartbeat, a request for a blob (per blob) or a worker's
/// readiness (per run) replaces the one of its kind still waiting; when full, the oldest
/// message that is not a worker's exit makes room. A worker's exit is never dropped silently:
/// only an outbox full of exits loses the oldest one, and says so.
#[derive(Default)]
pub(super) struct Outbox(VecDeque<FromAgent>);

impl Outbox {
    /// Queues `m` behind the waiting messages (in place of one of its kind).
    pub(super) fn push(&mut self, m: FromAgent) {
        let same = |w: &FromAgent| match (w, &m) {
            (FromAgent::Register { .. }, FromAgent::Register { .. })
            | (FromAgent::Heartbeat { .. }, FromAgent::Heartbeat { .. }) => true,
            (FromAgent::NeedBinary { sha256: a, .. }, FromAgent::NeedBinary { sha256: b, .. }) => {
                a == b
            }
            (FromAgent::WorkerReady { run_id: a }, FromAgent::WorkerReady { run_id: b }) => a == b,
            _ => false,
        };
        self.0.retain(|w| !same(w));
        if self.0.len() >= OUTBOX {
            let victim = self
                .0
                .iter()
                .position(|w| !matches!(w, FromAgent::WorkerExited { .. }))
                .unwrap_or(0);
            if let Some(FromAgent::WorkerExited { run_id, .. }) = self.0.remove(victim) {
                eprintln!(
                    "loads agent: {OUTBOX} messages wait for the broker: the report that the worker of run {run_id} ended is dropped"
                );
            }
        }
        self.0.push_back(m);
    }

    /// Sends what waits, in order, without blocking, until the broker takes no more.
    pub(super) fn flush(&mut self, socket: &zmq::Socket) -> Result<(), TransportError> {
        while let Some(m) = self.0.front() {
            match socket.send(to_frame(m)?, zmq::DONTWAIT) {
                Ok(()) => {
                    self.0.pop_front();
                }
                // Not now (no connection, a full queue, a signal): next turn.
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => return Ok(()),
                Err(e) => return z("sending to the broker", Err(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_coalesces_and_keeps_every_worker_exit() {
        let mut o = Outbox::default();
        let exit = |i: usize| FromAgent::WorkerExited {
            run_id: format!("run{i}"),
            code: Some(0),
            error: None,
        };
        for _ in 0..10 {
            o.push(FromAgent::Register {
                host: "h".into(),
                pid: 1,
            });
            o.push(FromAgent::Heartbeat { busy: None });
            o.push(FromAgent::NeedBinary {
                sha256: "a".into(),
                offset: 0,
            });
        }
        assert_eq!(o.0.len(), 3, "one of each kind");
        for i in 0..OUTBOX {
            o.push(exit(i));
        }
        assert_eq!(o.0.len(), OUTBOX);
        let exits =
            o.0.iter()
                .filter(|m| matches!(m, FromAgent::WorkerExited { .. }))
                .count();
        assert_eq!(exits, OUTBOX, "the others made room for the exits");
        // A socket with no broker takes nothing: nothing is lost, nothing blocks.
        let ctx = zmq::Context::new();
        let s = ctx.socket(zmq::DEALER).expect("socket");
        s.set_immediate(true).expect("immediate");
        s.set_linger(0).expect("linger");
        s.connect("tcp://127.0.0.1:9").expect("connect");
        o.flush(&s).expect("flush");
        assert_eq!(o.0.len(), OUTBOX);
    }
}
