//! The broker: takes runs from callers, hands them to idle agents, stores every event its
//! workers send in the database and republishes them to the callers.
//!
//! One thread owns every socket and loops on `zmq::poll`: caller requests come in on the front
//! ROUTER, agents' registrations, heartbeats and worker reports on the back ROUTER, workers'
//! events on the receiver PULL; the heartbeat goes out on its own PUB; events and run ends go out
//! on the publisher XPUB (topic: the run id) and to the database (one transaction per loop turn).
//!
//! This file holds the broker's state and its loop over the sockets; the handlers live beside
//! it, one file per socket or duty: `callers` (front), `agents` (back), `leases` (workers' leases
//! of data rows, on the back socket), `events` (receiver), `subscribers` (publisher and
//! heartbeat), `runs` (a run's life), `storage` (the database).

mod agents;
mod callers;
mod events;
mod leases;
mod runs;
mod storage;
mod subscribers;

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{
    AgentStatus, CallerRequest, FromAgent, HEARTBEAT_TOPIC, Job, PingInfo, Publication, RunRow,
    ToAgent, TransportError, from_frame, to_frame, z,
};
use crate::db::Db;
use crate::result::{Envelope, Event, RunMeta, Stats};

/// How a broker is set up.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Front socket (callers).
    pub frontend: String,
    /// Back socket (agents).
    pub backend: String,
    /// Receiver (workers' events).
    pub receiver: String,
    /// Publisher.
    pub publisher: String,
    /// Heartbeat (a PUB socket of its own).
    pub heartbeat: String,
    /// The SQLite file.
    pub db: PathBuf,
    /// Agents silent for this long are dropped (and their runs lose them).
    pub agent_timeout: Duration,
    /// CURVE: the broker's key pair and the public keys it admits.
    pub keys: Option<super::security::ServerKeys>,
    /// Let endpoints beyond loopback be bound without keys.
    pub insecure: bool,
    /// How long the workers of a run may take to be ready (binary fetched, worker started)
    /// before the run starts without them, or fails when none is ready.
    pub ready_timeout: Duration,
}

/// The default of [`BrokerOptions::ready_timeout`].
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

struct Agent {
    host: String,
    pid: u32,
    last_seen: Instant,
    busy: Option<String>,
    /// The public key it registered with (empty without CURVE): its later messages must come
    /// with the same key.
    key: String,
}

/// How long the broker waits for a worker's last events after its agent reported it gone
/// (the agent's report and the worker's events travel on different connections).
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// The same, for a worker that exited cleanly: its `stopTestRun` is surely on its way.
const CLEAN_EXIT_GRACE: Duration = Duration::from_secs(10);
/// How long a run waits for the exit of a worker that sent its last event.
const DONE_WITHOUT_EXIT: Duration = Duration::from_secs(5);
/// How long a stopped run waits for workers that do not exit (an agent stops its worker with
/// SIGTERM and kills it [`STOP_GRACE`](super::agent::STOP_GRACE) later).
const STOPPED_RUN_GRACE: Duration = Duration::from_secs(15);
/// Most bytes of received events kept in memory while the database cannot store them (a full
/// disk): they are retried every second; beyond this bound, events are still counted,
/// published and shown to callers, but not kept for storing, and their runs say how many of
/// their events were not stored.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// How often a failing database is tried again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How long an ended run waits for its events to be stored before they count as lost.
const END_STORE_GRACE: Duration = Duration::from_secs(10);
/// Most messages a socket of the broker takes in one turn of its loop.
const TURN_MESSAGES: usize = 10_000;

struct ActiveRun {
    row: RunRow,
    args: crate::config::RunArgs,
    /// The key of the caller that started it (empty without CURVE).
    owner: String,
    agents: Vec<String>,
    /// Each agent's worker token (see [`Job::token`]).
    tokens: BTreeMap<String, String>,
    /// When it was submitted: its workers must be ready within the ready timeout.
    submitted: Instant,
    /// When its waiting was last published.
    last_waiting: Instant,
    /// When it could have ended but its events were not stored yet.
    ending_since: Option<Instant>,
    /// When a caller asked to stop it.
    stopped_at: Option<Instant>,
    /// It received events since its row was last stored.
    dirty: bool,
    /// Agents whose worker sent `stopTestRun` (all its events came before it) or that were lost.
    done: HashMap<String, Instant>,
    /// Agents whose worker exited, when the agent said so, and whether it exited cleanly.
    exited: BTreeMap<String, (Instant, bool)>,
    /// Its problems so far, bounded as they come; kept with its row when it ends.
    errors: crate::db::RunProblems,
    started: Instant,
    /// Its figures so far, without a timeline (the broker uses the totals only; see `events`).
    stats: Stats,
    /// Events received so far (the sequence number of the last one).
    seq: u64,
    /// A caller asked to stop it.
    stopped: bool,
    /// Agents whose worker a caller stopped alone (`loads stop --agent`), and when.
    stopped_agents: BTreeMap<String, Instant>,
    /// Events received but not stored (the database failed for too long).
    unstored: u64,
    /// Agents whose worker is ready; all of them get the go together.
    ready: HashSet<String>,
    /// The go was given.
    going: bool,
    /// The `Publication::Events` being built from this turn's events (JSON, not closed yet).
    outbox: Vec<u8>,
    /// The leases of its unique data sources' rows, by source (see `leases`).
    leases: BTreeMap<String, leases::SourceLeases>,
}

struct Broker {
    opts: BrokerOptions,
    bound: BTreeMap<&'static str, String>,
    db: Db,
    agents: BTreeMap<String, Agent>,
    runs: BTreeMap<String, ActiveRun>,
    /// Worker tokens of the active runs: token -> (run, agent).
    tokens: HashMap<String, (String, String)>,
    /// Events received and not stored yet, `(run, envelope JSON)`.
    pending: Vec<(String, String)>,
    /// Their size.
    pending_bytes: usize,
    /// When storing last failed (while it keeps failing).
    store_failed: Option<Instant>,
    /// Rows of ended runs that the database did not take yet: shown from here, retried.
    unsaved_rows: BTreeMap<String, RunRow>,
    rejected: u64,
    refused_keys: Arc<std::sync::atomic::AtomicU64>,
    /// Who sent the caller request being handled: its public key with CURVE, else its
    /// connection's identity (hex).
    caller: String,
    /// Whether that caller sees and acts on every run (an admin's key, or no CURVE at all).
    caller_admin: bool,
    /// The unfinished uploads of blobs (see [`super::blobs`]).
    uploads: super::blobs::Uploads,
}

/// Reads one multipart message from `socket` without waiting, with the `User-Id` the ZAP
/// handler gave its connection (empty without CURVE). At most `max_frames` frames are kept
/// (the rest of the message is read and dropped).
fn recv_from(socket: &zmq::Socket, max_frames: usize) -> Option<(Vec<Vec<u8>>, String)> {
    let mut frames = Vec::new();
    let mut user = String::new();
    let mut flags = zmq::DONTWAIT;
    loop {
        let mut msg = socket.recv_msg(flags).ok()?;
        // The rest of a multipart message is already here.
        flags = 0;
        if user.is_empty()
            && let Some(u) = msg.gets("User-Id")
        {
            user = u.to_owned();
        }
        let more = msg.get_more();
        if frames.len() < max_frames {
            frames.push(msg.to_vec());
        }
        if !more {
            return Some((frames, user));
        }
    }
}

/// Largest message a caller may send (a chunk of a test binary with `put_binary` is at most
/// [`BINARY_CHUNK`](super::BINARY_CHUNK)); larger ones are refused by ZeroMQ, which drops the
/// connection instead of allocating them.
pub const MAX_CALLER_MESSAGE: i64 = 16 * 1024 * 1024;

/// Largest message a subscriber may send to the publisher or the heartbeat: a subscription (a
/// run id), or a CURVE handshake command.
pub const SUBSCRIBER_MESSAGE: i64 = 1024;

/// Makes `socket` (an XPUB) apply no subscription by itself: the broker reads each one and
/// applies it, or not ([`Broker::on_subscription`]). So a subscriber cannot take every run's
/// publications with an empty prefix, and garbage topics cost the broker no memory.
fn xpub_manual(socket: &mut zmq::Socket) -> Result<(), TransportError> {
    let on: std::os::raw::c_int = 1;
    // SAFETY: the socket is alive (borrowed), and the option value is an int that outlives the
    // call, of the size given, as zmq_setsockopt(3) requires for ZMQ_XPUB_MANUAL.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_MANUAL as std::os::raw::c_int,
            (&on as *const std::os::raw::c_int).cast(),
            std::mem::size_of::<std::os::raw::c_int>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // SAFETY: zmq_errno only reads this thread's error number.
        z(
            "manual subscriptions",
            Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() })),
        )
    }
}

/// Size from which a run's pending events are published at once, without waiting for the end
/// of the loop turn.
const PUBLICATION_BYTES: usize = 1024 * 1024;

fn ok(mut v: Value) -> Value {
    v["ok"] = json!(true);
    v
}

fn refuse(code: &str, error: String) -> Value {
    json!({"ok": false, "code": code, "error": error})
}

/// Binds `endpoint`, and returns the endpoint actually bound (port 0 or `*` resolved).
fn bind(socket: &zmq::Socket, endpoint: &str) -> Result<String, TransportError> {
    z(&format!("binding {endpoint}"), socket.bind(endpoint))?;
    Ok(socket
        .get_last_endpoint()
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| endpoint.to_owned()))
}

/// Runs a broker until `stop` is set. `on_ready` gets the bound endpoints once listening.
pub fn run_broker(
    opts: BrokerOptions,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(&PingInfo),
) -> Result<(), TransportError> {
    // Nothing beyond loopback without keys, unless asked for.
    match super::security::check_binds(
        &[
            &opts.frontend,
            &opts.backend,
            &opts.receiver,
            &opts.publisher,
            &opts.heartbeat,
        ],
        opts.keys.is_some(),
        opts.insecure,
    ) {
        Ok(Some(warning)) => eprintln!("{warning}"),
        Ok(None) => {}
        Err(e) => return Err(TransportError::Message(e.to_string())),
    }
    let ctx = zmq::Context::new();
    let refused_keys = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Declared before the sockets, so dropped after them on every way out (an error too):
    // the key check outlives every socket that needs it.
    let _zap = match &opts.keys {
        Some(k) => Some(super::security::ZapGuard::start(
            &ctx,
            k.roles.clone(),
            refused_keys.clone(),
        )?),
        None => None,
    };
    let front = z("front socket", ctx.socket(zmq::ROUTER))?;
    let back = z("back socket", ctx.socket(zmq::ROUTER))?;
    let receiver = z("receiver socket", ctx.socket(zmq::PULL))?;
    // XPUBs whose subscriptions the broker applies itself: only to a run that exists (on the
    // publisher) or to the heartbeat topic (on the heartbeat); see `Broker::on_subscription`.
    let mut publisher = z("publisher socket", ctx.socket(zmq::XPUB))?;
    let mut heartbeat = z("heartbeat socket", ctx.socket(zmq::XPUB))?;
    for s in [&mut publisher, &mut heartbeat] {
        xpub_manual(s)?;
    }
    use super::security::{DOMAIN_AGENTS, DOMAIN_CALLERS, DOMAIN_SUBSCRIBERS, DOMAIN_WORKERS};
    for (s, domain) in [
        (&front, DOMAIN_CALLERS),
        (&back, DOMAIN_AGENTS),
        (&receiver, DOMAIN_WORKERS),
        (&publisher, DOMAIN_SUBSCRIBERS),
        (&heartbeat, DOMAIN_SUBSCRIBERS),
    ] {
        z("linger", s.set_linger(1000))?;
        if let Some(k) = &opts.keys {
            k.apply(s, domain)?;
        }
    }
    // Room for bursts of raw events; a subscriber that still falls behind loses publications
    // and fetches them from the database at the end (see `Publication::End`).
    z("publisher queue", publisher.set_sndhwm(100_000))?;
    // Refuse absurd messages by size instead of allocating them.
    z(
        "max message size",
        receiver.set_maxmsgsize(super::MAX_WORKER_MESSAGE as i64),
    )?;
    z("max message size", back.set_maxmsgsize(1024 * 1024))?;
    // Callers send test binaries (a debug build is a few hundred MiB) and small requests.
    z("max message size", front.set_maxmsgsize(MAX_CALLER_MESSAGE))?;
    // Subscribers only send subscriptions (and, with CURVE, the handshake); a larger message
    // drops the subscriber's connection.
    for s in [&publisher, &heartbeat] {
        z("max message size", s.set_maxmsgsize(SUBSCRIBER_MESSAGE))?;
    }
    let mut bound = BTreeMap::new();
    bound.insert("frontend", bind(&front, &opts.frontend)?);
    bound.insert("backend", bind(&back, &opts.backend)?);
    bound.insert("receiver", bind(&receiver, &opts.receiver)?);
    bound.insert("publisher", bind(&publisher, &opts.publisher)?);
    bound.insert("heartbeat", bind(&heartbeat, &opts.heartbeat)?);
    let db = Db::open(&opts.db)?;
    let binaries = opts
        .db
        .parent()
        .map(|p| p.join("binaries"))
        .unwrap_or_else(|| PathBuf::from("binaries"));
    std::fs::create_dir_all(&binaries).map_err(|source| TransportError::Io {
        what: format!("cannot create {}", binaries.display()),
        source,
    })?;
    let mut b = Broker {
        opts,
        bound,
        db,
        // Part files a previous broker left there are removed.
        uploads: super::blobs::Uploads::new(binaries),
        agents: BTreeMap::new(),
        runs: BTreeMap::new(),
        tokens: HashMap::new(),
        pending: Vec::new(),
        pending_bytes: 0,
        store_failed: None,
        unsaved_rows: BTreeMap::new(),
        rejected: 0,
        refused_keys,
        caller: String::new(),
        caller_admin: true,
    };
    on_ready(&b.ping());
    let mut last_beat = Instant::now() - Duration::from_secs(1);
    let mut last_save = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let mut items = [
            front.as_poll_item(zmq::POLLIN),
            back.as_poll_item(zmq::POLLIN),
            receiver.as_poll_item(zmq::POLLIN),
            publisher.as_poll_item(zmq::POLLIN),
            heartbeat.as_poll_item(zmq::POLLIN),
        ];
        super::poll(&mut items, 100)?;
        let (f, a, r, p, h) = (
            items[0].is_readable(),
            items[1].is_readable(),
            items[2].is_readable(),
            items[3].is_readable(),
            items[4].is_readable(),
        );
        for (readable, socket, heartbeats) in [(p, &publisher, false), (h, &heartbeat, true)] {
            if readable {
                for _ in 0..TURN_MESSAGES {
                    match socket.recv_msg(zmq::DONTWAIT) {
                        Ok(mut sub) => {
                            let user = sub.gets("User-Id").unwrap_or_default().to_owned();
                            b.on_subscription(socket, &sub, &user, heartbeats);
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        // Drain what is there, bounded so that every socket is served each turn.
        if r {
            for _ in 0..TURN_MESSAGES {
                match recv_from(&receiver, 2) {
                    Some((frames, _)) => b.on_event(&frames, &publisher),
                    None => break,
                }
            }
        }
        if a {
            for _ in 0..TURN_MESSAGES {
                match recv_from(&back, 3) {
                    Some((frames, user)) => b.on_agent(frames, &user, &back),
                    None => break,
                }
            }
        }
        if f {
            for _ in 0..TURN_MESSAGES {
                match recv_from(&front, 5) {
                    Some((frames, user)) => b.on_caller(frames, &user, &front, &back),
                    None => break,
                }
            }
        }
        b.publish_all(&publisher);
        b.check_agents(&publisher, &back);
        b.flush(false);
        if last_beat.elapsed() >= Duration::from_millis(500) {
            last_beat = Instant::now();
            let beat = to_frame(&Publication::Heartbeat {
                pid: std::process::id(),
            })?;
            let _ = heartbeat.send_multipart([HEARTBEAT_TOPIC.as_bytes(), &beat], 0);
        }
        if last_save.elapsed() >= Duration::from_secs(1) {
            last_save = Instant::now();
            // Uploads abandoned by their callers go, with their part files.
            b.uploads.expire(Instant::now());
        }
    }
    // What was received is stored before the broker ends, if the database takes it.
    b.flush(true);
    Ok(())
}
