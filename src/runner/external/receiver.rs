//! The receiver of an external run: a ZeroMQ PULL socket bound on loopback, where the test
//! runners' processes PUSH their events, and the thread that reads it. Messages enter as JSON
//! envelopes; the ones of this run leave into the run's [`EventSink`] through the collector
//! shared with local runs (`runner::collector`), merged into per-period batches or one by one
//! with `--raw-events`. Malformed messages and messages of another run are counted
//! ([`Rejected`]), never fatal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::result::{Envelope, Event, EventSink, Stats, unix_now};
use crate::runner::RunError;
use crate::runner::collector::{Turn, collect};

/// Largest message accepted from a runner: larger ones are refused by ZeroMQ, not allocated.
const MAX_MESSAGE: i64 = 16 * 1024 * 1024;
/// After the last runner of the run exited, how long the receiver waits for late messages.
const DRAIN_QUIET: Duration = Duration::from_millis(300);

/// What the receiver refused, for the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Messages that are not events (bad JSON, missing fields, wrong types).
    pub malformed: u64,
    /// Events of another run (or without a run id).
    pub foreign: u64,
}

impl Rejected {
    /// Malformed messages are lost data: a problem of the run. Messages of another run are
    /// not this run's data, so they are only counted and logged.
    pub fn problem(&self) -> Option<String> {
        (self.malformed > 0).then(|| {
            format!(
                "the receiver ignored {} malformed message(s) from the test runners (see the log); their data is missing",
                self.malformed
            )
        })
    }
}

/// Binds the receiver's PULL socket on a free loopback port: the context (keep it alive while
/// the socket is used), the socket and its endpoint for the runners (`LOADS_ZMQ_RECEIVER`).
pub(super) fn bind() -> Result<(zmq::Context, zmq::Socket, String), RunError> {
    let ctx = zmq::Context::new();
    let socket = ctx
        .socket(zmq::PULL)
        .map_err(|e| RunError::System(std::io::Error::other(e)))?;
    let bound = socket
        .set_maxmsgsize(MAX_MESSAGE)
        .and_then(|_| socket.bind("tcp://127.0.0.1:*"))
        .and_then(|_| socket.get_last_endpoint())
        .map_err(|e| RunError::System(std::io::Error::other(e)))?;
    let endpoint = bound.map_err(|_| {
        RunError::System(std::io::Error::other(
            "the receiver's endpoint is not UTF-8",
        ))
    })?;
    Ok((ctx, socket, endpoint))
}

/// What the receiver thread needs.
pub(super) struct Receiving {
    pub(super) run_id: String,
    pub(super) raw: bool,
    pub(super) every: Duration,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) users: Arc<AtomicU64>,
    pub(super) done: Arc<AtomicBool>,
}

/// The receiver thread: events from the runners into the sink until the runners are done and
/// the socket is quiet.
pub(super) fn receive<S: EventSink>(
    mut sink: S,
    socket: &zmq::Socket,
    r: &Receiving,
) -> (S, Rejected) {
    let mut rejected = Rejected::default();
    let mut last_flush = Instant::now();
    let mut last_message = Instant::now();
    collect(
        &mut sink,
        |sink, batch| {
            let mut items = [socket.as_poll_item(zmq::POLLIN)];
            let _ = zmq::poll(&mut items, 50);
            // Drain what is there, a bounded number at a time so that ticks keep coming.
            for _ in 0..50_000 {
                let Ok(msg) = socket.recv_bytes(zmq::DONTWAIT) else {
                    break;
                };
                last_message = Instant::now();
                accept(&msg, r, sink, batch, &mut rejected);
            }
            let finished = r.done.load(Ordering::SeqCst) && last_message.elapsed() >= DRAIN_QUIET;
            let due = last_flush.elapsed() >= r.every;
            if due {
                last_flush = Instant::now();
            }
            Turn {
                users: r.users.load(Ordering::Relaxed),
                due,
                finished,
            }
        },
        || r.stop.store(true, Ordering::SeqCst),
    );
    (sink, rejected)
}

/// One message from a runner.
fn accept<S: EventSink>(
    msg: &[u8],
    r: &Receiving,
    sink: &mut S,
    batch: &mut Stats,
    rejected: &mut Rejected,
) {
    let env: Envelope = match serde_json::from_slice(msg) {
        Ok(e) => e,
        Err(e) => {
            rejected.malformed += 1;
            if rejected.malformed <= 10 || rejected.malformed.is_multiple_of(10_000) {
                let shown = String::from_utf8_lossy(&msg[..msg.len().min(120)]).into_owned();
                tracing::warn!(
                    malformed = rejected.malformed,
                    "ignored a malformed message from a test runner ({e}): {shown:?}"
                );
            }
            return;
        }
    };
    if env.run_id != r.run_id {
        rejected.foreign += 1;
        if rejected.foreign <= 10 {
            tracing::warn!(
                run_id = %env.run_id,
                "ignored a message of another run from a test runner"
            );
        }
        return;
    }
    match env.event {
        // The runner's own start and stop are not the run's.
        Event::StartTestRun | Event::StopTestRun => {}
        event if r.raw => sink.ingest(event),
        event => event.apply_to(batch, unix_now()),
    }
}
