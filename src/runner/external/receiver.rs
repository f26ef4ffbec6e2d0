//! The receiver of an external run: a ZeroMQ PULL socket bound on loopback, where the test
//! runners' processes PUSH their events, and the thread that reads it. Messages enter as JSON
//! envelopes; the ones of this run leave into the run's [`EventSink`] through the collector
//! shared with local runs (`runner::collector`), merged into per-period batches or one by one
//! with `--raw-events`. Messages are read tolerantly, v1 producers' forms included
//! (`result::runner_message`). Malformed messages, messages of another run and messages of an
//! unknown type are counted ([`Rejected`]), never fatal to the receiver; so are the figures a
//! runner dates outside the run, which are left out of the per-second timeline
//! (`result::timeline`'s window).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::result::stats::{TIMELINE_SLACK, Window, cut};
use crate::result::{Event, EventSink, Item, Stats, read_runner_message, unix_now};
use crate::runner::RunError;
use crate::runner::collector::{Turn, collect};

/// Largest message accepted from a runner: larger ones are refused by ZeroMQ, not allocated.
const MAX_MESSAGE: i64 = 16 * 1024 * 1024;
/// The most bytes of a runner's message, or of a string it sent, that a warning of the log
/// shows (a run id, the start of a malformed message; a reason twice as many).
const MAX_LOGGED: usize = 120;
/// After the last runner of the run exited, how long the receiver waits for late messages.
const DRAIN_QUIET: Duration = Duration::from_millis(300);

/// What the receiver refused, for the summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Messages that are not events (bad JSON, missing fields, wrong types, an empty batch),
    /// and messages of a v1 batch that are not.
    pub malformed: u64,
    /// Events of another run (or without a run id).
    pub foreign: u64,
    /// Messages of this run.
    pub this_run: u64,
    /// Messages of this run of a `data_type` loads does not know (v1's counter form among
    /// them), and the first such type.
    pub ignored: u64,
    /// The first ignored `data_type` (at most 60 characters), for the warning.
    pub first_ignored: Option<String>,
    /// Requests, hits and messages of this run dated outside it (an `add_hit`'s `started`, a
    /// batch's timeline seconds, earlier than [`TIMELINE_SLACK`] before the receiver started
    /// or later than [`TIMELINE_SLACK`] after they came): counted in the totals, left out of
    /// the per-second timeline ([`Window`]).
    pub untimed: u64,
}

impl Rejected {
    /// The problems of the run: malformed messages are lost data, and a run whose runners sent
    /// only messages of another run (or without a run id) received nothing. Messages of another
    /// run beside this run's are not this run's data, so they are only counted and warned of.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.malformed > 0 {
            problems.push(format!(
                "the receiver ignored {} malformed message(s) from the test runners (see the log); their data is missing",
                self.malformed
            ));
        }
        if self.foreign > 0 && self.this_run == 0 {
            problems.push(format!(
                "every message of the test runners ({}) carried another run_id, or none: nothing of this run was received; a runner must copy LOADS_RUN_ID into the run_id of each message",
                self.foreign
            ));
        }
        problems
    }

    /// Warnings for standard error: messages of another run beside this run's, messages of an
    /// unknown type.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.foreign > 0 && self.this_run > 0 {
            warnings.push(format!(
                "the receiver ignored {} message(s) of another run (or without a run id)",
                self.foreign
            ));
        }
        if self.ignored > 0 {
            warnings.push(format!(
                "the receiver ignored {} message(s) of a data_type it does not know (the first: {:?}); a counter is sent as {{\"data_type\": \"incr_counter\", \"name\": NAME, ...}}, not with its name as the data_type",
                self.ignored,
                self.first_ignored.as_deref().unwrap_or_default()
            ));
        }
        if self.untimed > 0 {
            warnings.push(format!(
                "{} request(s), hit(s) or message(s) of the test runners were dated more than {TIMELINE_SLACK} s before the run or after they came (add_hit's started, a batch's timeline): they count in the totals but not in the per-second timeline; is the runners' clock right?",
                self.untimed
            ));
        }
        warnings
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
    let started = unix_now();
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
                accept(&msg, r, started, sink, batch, &mut rejected);
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

/// One message from a runner, for the run the receiver started at unix second `started`.
fn accept<S: EventSink>(
    msg: &[u8],
    r: &Receiving,
    started: i64,
    sink: &mut S,
    batch: &mut Stats,
    rejected: &mut Rejected,
) {
    let message = match read_runner_message(msg) {
        Ok(m) => m,
        Err(why) => {
            malformed(rejected, &why, msg);
            return;
        }
    };
    if message.run_id() != Some(r.run_id.as_str()) {
        rejected.foreign += 1;
        if rejected.foreign <= 10 {
            // The runner's run id may be as long as its message (16 MiB): cut.
            tracing::warn!(
                run_id = %cut(message.run_id().unwrap_or("(none)"), MAX_LOGGED),
                "ignored a message of another run from a test runner"
            );
        }
        return;
    }
    rejected.this_run += 1;
    let now = unix_now();
    // The seconds the runner dates its figures with are filed only within the run's window:
    // one message per second of 1970 must not add a second per message to the run.
    let window = Window::of_run(started, now);
    let mut untimed = 0u64;
    message.for_each(|item| match item {
        // The runner's own start and stop are not the run's.
        Item::Event(Event::StartTestRun | Event::StopTestRun) => {}
        Item::Event(event) if r.raw => {
            // Handed on as it is: the sink files it within its own window.
            untimed = untimed.saturating_add(event.untimed_in(window));
            sink.ingest(event);
        }
        Item::Event(event) => {
            untimed = untimed.saturating_add(event.apply_within(batch, now, window));
        }
        Item::Ignored(data_type) => {
            rejected.ignored += 1;
            if rejected.ignored <= 10 {
                tracing::warn!(
                    "ignored a message of unknown data_type {data_type:?} from a test runner"
                );
            }
            rejected.first_ignored.get_or_insert(data_type);
        }
        Item::Malformed(why) => malformed(rejected, &why, msg),
    });
    if untimed > 0 {
        if rejected.untimed == 0 {
            tracing::warn!(
                "a test runner sent figures dated outside the run (more than {TIMELINE_SLACK} s before it or after now): they count in the totals, not in the per-second timeline; the rest are counted, not logged"
            );
        }
        rejected.untimed = rejected.untimed.saturating_add(untimed);
    }
}

/// Counts a malformed message (or part of a v1 batch), logging the first few.
fn malformed(rejected: &mut Rejected, why: &str, msg: &[u8]) {
    rejected.malformed += 1;
    if rejected.malformed <= 10 || rejected.malformed.is_multiple_of(10_000) {
        let shown = String::from_utf8_lossy(&msg[..msg.len().min(MAX_LOGGED)]).into_owned();
        // The decoder's reason may quote the runner's field whole (`invalid type: string
        // "…"`): cut too.
        let why = cut(why, 2 * MAX_LOGGED);
        tracing::warn!(
            malformed = rejected.malformed,
            "ignored a malformed message from a test runner ({why}): {shown:?}"
        );
    }
}
