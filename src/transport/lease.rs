//! A worker's leases of data rows: [`BrokerLease`] is the [`Lease`] a cluster's worker gives
//! its data sources, so that the rows of `queue`, `queue-stop` and `per-user` sources come in
//! blocks that the broker gives to this worker only. It talks to the broker's back socket on a
//! DEALER of its own (with the agent's CURVE keys, like the relay), each request carrying the
//! worker's token and answered before the next one is sent.
//!
//! Requests enter from the data sources (a block wanted, the unused rest given back); row
//! numbers leave, or the reason there are none.

use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{FromAgent, ToAgent, TransportError, from_frame, to_frame, z};
use crate::data::Lease;

/// How long a worker waits for the broker's answer to a lease.
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(10);

struct Conn {
    socket: zmq::Socket,
    // Dropped after the socket.
    _ctx: zmq::Context,
    /// The number of the last request.
    last: u64,
}

/// The broker's leases of data rows, for one worker.
pub struct BrokerLease {
    conn: Mutex<Conn>,
    token: String,
}

impl BrokerLease {
    /// Leases for the worker whose token is `token`, from the broker's back socket `backend`.
    pub fn connect(backend: &str, token: &str) -> Result<BrokerLease, TransportError> {
        let ctx = zmq::Context::new();
        let socket = z("lease socket", ctx.socket(zmq::DEALER))?;
        // An identity of its own (the broker answers by it), never an agent's.
        let identity = format!("lease-{}", super::random_hex(8)?);
        z("lease identity", socket.set_identity(identity.as_bytes()))?;
        // The release a worker sends as it ends leaves before the socket closes.
        z("lease linger", socket.set_linger(2000))?;
        z("lease max message", socket.set_maxmsgsize(64 * 1024))?;
        super::security::secure_client(&socket)?;
        z(&format!("connecting to {backend}"), socket.connect(backend))?;
        Ok(BrokerLease {
            conn: Mutex::new(Conn {
                socket,
                _ctx: ctx,
                last: 0,
            }),
            token: token.to_owned(),
        })
    }
}

impl Lease for BrokerLease {
    fn lease(&self, name: &str, want: u64) -> Result<Range<u64>, String> {
        let mut c = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.last += 1;
        let id = c.last;
        let request = to_frame(&FromAgent::LeaseRows {
            token: self.token.clone(),
            id,
            source: name.to_owned(),
            want,
        })
        .map_err(|e| e.to_string())?;
        c.socket.send(request, 0).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + LEASE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "the broker did not answer within {}s",
                    LEASE_TIMEOUT.as_secs()
                ));
            }
            let mut items = [c.socket.as_poll_item(zmq::POLLIN)];
            super::poll(&mut items, left.as_millis() as i64).map_err(|e| e.to_string())?;
            if !items[0].is_readable() {
                continue;
            }
            let Ok(frame) = c.socket.recv_bytes(zmq::DONTWAIT) else {
                continue;
            };
            // An answer to an earlier request that timed out, or garbage: not this one.
            match from_frame::<ToAgent>(&frame) {
                Ok(ToAgent::Rows {
                    id: got,
                    source,
                    start,
                    end,
                    error,
                }) if got == id && source == name => {
                    return match error {
                        Some(e) => Err(e),
                        None if start <= end => Ok(start..end),
                        None => Err(format!("the broker leased rows {start}..{end}")),
                    };
                }
                _ => continue,
            }
        }
    }

    fn release(&self, name: &str, unused: Range<u64>) {
        let c = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(f) = to_frame(&FromAgent::ReleaseRows {
            token: self.token.clone(),
            source: name.to_owned(),
            start: unused.start,
            end: unused.end,
        }) {
            let _ = c.socket.send(f, zmq::DONTWAIT);
        }
    }
}
