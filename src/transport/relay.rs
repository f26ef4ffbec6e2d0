//! The relay: a drop-in replacement for the test result in a worker. It is an
//! [`EventSink`] that sends every event it is given (in a local run: the periodic batches) to the
//! broker's receiver over a ZeroMQ PUSH socket, wrapped in an [`Envelope`] and preceded by the
//! worker's token ([`Job::token`](super::Job::token)), which the broker checks before it
//! decodes anything. The worker's code does not know whether it records locally or remotely.

use crate::result::{Envelope, Event, EventSink};

use super::{TransportError, hostname, z};

/// Sends a worker's events to the broker.
pub struct Relay {
    socket: zmq::Socket,
    // Dropped after the socket: its linger flushes what is queued.
    _ctx: zmq::Context,
    run_id: String,
    agent_id: String,
    hostname: String,
    token: String,
    failures: u64,
}

impl Relay {
    /// A relay to `receiver` for `run_id`, on behalf of `agent_id`, whose messages carry the
    /// worker's `token`.
    pub fn connect(
        receiver: &str,
        run_id: &str,
        agent_id: &str,
        token: &str,
    ) -> Result<Relay, TransportError> {
        let ctx = zmq::Context::new();
        let socket = z("relay socket", ctx.socket(zmq::PUSH))?;
        z("relay linger", socket.set_linger(30_000))?;
        super::security::secure_client(&socket)?;
        z(
            &format!("connecting to {receiver}"),
            socket.connect(receiver),
        )?;
        Ok(Relay {
            socket,
            _ctx: ctx,
            run_id: run_id.to_owned(),
            agent_id: agent_id.to_owned(),
            hostname: hostname(),
            token: token.to_owned(),
            failures: 0,
        })
    }

    /// Events that could not be sent.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

impl EventSink for Relay {
    fn ingest(&mut self, event: Event) {
        let env = Envelope {
            run_id: self.run_id.clone(),
            agent_id: self.agent_id.clone(),
            hostname: self.hostname.clone(),
            event,
        };
        match serde_json::to_vec(&env) {
            // A blocking send: when the broker is slow, the worker waits rather than drops.
            // Larger than the receiver takes: ZeroMQ would drop the connection, and the events
            // with it; counted as not sent instead (the worker then fails, saying so).
            Ok(bytes) if bytes.len() + self.token.len() > super::MAX_WORKER_MESSAGE => {
                self.failures += 1
            }
            Ok(bytes) => {
                if self
                    .socket
                    .send_multipart([self.token.as_bytes(), &bytes], 0)
                    .is_err()
                {
                    self.failures += 1;
                }
            }
            Err(_) => self.failures += 1,
        }
    }
}
