//! The broker: takes runs from callers, hands them to idle agents, stores every event its
//! workers send in the database and republishes them to the callers.
//!
//! One thread owns every socket and loops on `zmq::poll`: caller requests come in on the front
//! ROUTER, agents' registrations, heartbeats and worker reports on the back ROUTER, workers'
//! events on the receiver PULL; the heartbeat goes out on its own PUB; events and run ends go out
//! on the publisher PUB (topic: the run
//! id) and to the database (one transaction per loop turn).

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
    errors: Vec<String>,
    started: Instant,
    stats: Stats,
    /// Events received so far (the sequence number of the last one).
    seq: u64,
    /// A caller asked to stop it.
    stopped: bool,
    /// Events received but not stored (the database failed for too long).
    unstored: u64,
    /// Agents whose worker is ready; all of them get the go together.
    ready: HashSet<String>,
    /// The go was given.
    going: bool,
    /// The `Publication::Events` being built from this turn's events (JSON, not closed yet).
    outbox: Vec<u8>,
}

struct Broker {
    opts: BrokerOptions,
    bound: BTreeMap<&'static str, String>,
    db: Db,
    binaries: PathBuf,
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
        // Before `binaries` moves in: part files a previous broker left there are removed.
        uploads: super::blobs::Uploads::new(binaries.clone()),
        binaries,
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
            for run in b.runs.values_mut() {
                // Only the totals are used here: keep the per-second history small.
                run.stats.compact_timeline(crate::result::unix_now());
            }
        }
    }
    // What was received is stored before the broker ends, if the database takes it.
    b.flush(true);
    Ok(())
}

impl Broker {
    /// Stores the pending events and, in the same transaction, the rows of the runs they
    /// belong to (so that a stored row always agrees with its stored events), and the rows of
    /// ended runs the database did not take before. When the database fails, everything is
    /// kept and tried again [`STORE_RETRY`] later (`force`: now).
    fn flush(&mut self, force: bool) {
        let retry_rows = !self.unsaved_rows.is_empty();
        if self.pending.is_empty() && !retry_rows {
            return;
        }
        if !force && self.store_failed.is_some_and(|t| t.elapsed() < STORE_RETRY) {
            return;
        }
        let mut rows: Vec<RunRow> = self.unsaved_rows.values().cloned().collect();
        for run in self.runs.values_mut().filter(|r| r.dirty) {
            run.row.hits = run.stats.totals().hits;
            // Its hits count every event received; those that were not kept for storing are
            // counted beside them, so that the row says how many its stored events lack.
            run.row.unstored = run.unstored;
            if run.going {
                run.row.duration = Some(run.started.elapsed().as_secs_f64());
            }
            rows.push(run.row.clone());
        }
        match self.db.store(&self.pending, &rows) {
            Ok(()) => {
                if self.store_failed.take().is_some() {
                    match self.pending.len() {
                        0 => eprintln!("broker: the database takes writes again"),
                        n => eprintln!(
                            "broker: the database takes writes again ({n} events kept while it failed are stored)"
                        ),
                    }
                }
                self.pending.clear();
                self.pending_bytes = 0;
                self.unsaved_rows.clear();
                for run in self.runs.values_mut() {
                    run.dirty = false;
                }
            }
            Err(e) => {
                if self.store_failed.is_none() {
                    eprintln!(
                        "broker: cannot store events: {e}; they are kept in memory (at most {} MiB) and tried again every {}s",
                        MAX_PENDING_BYTES >> 20,
                        STORE_RETRY.as_secs()
                    );
                }
                self.store_failed = Some(Instant::now());
            }
        }
    }

    /// Applies a subscription (`\x01TOPIC`) or an unsubscription (`\x00TOPIC`) that `socket`
    /// (an XPUB in manual mode) just received from the connection whose key is `user`, when its
    /// topic is one that subscriber may follow: on the publisher, the id of an active run that
    /// is its own (with CURVE; an admin's key follows any); on the heartbeat, the heartbeat
    /// topic. Anything
    /// else (an empty prefix, which would match every run; a made-up topic) is dropped.
    fn on_subscription(&mut self, socket: &zmq::Socket, sub: &[u8], user: &str, heartbeats: bool) {
        let Some((&flag, topic)) = sub.split_first() else {
            return;
        };
        let allowed = if heartbeats {
            topic == HEARTBEAT_TOPIC.as_bytes()
        } else {
            // With CURVE, only the run's owner (or an admin) may follow it.
            let may_follow = |owner: &str| match &self.opts.keys {
                Some(k) => owner == user || k.roles.is_admin(user),
                None => true,
            };
            std::str::from_utf8(topic)
                .ok()
                .and_then(|t| self.runs.get(t))
                .is_some_and(|r| may_follow(&r.owner))
        };
        if !allowed {
            // Not counted as rejected: a caller's one subscriber socket sends its heartbeat
            // subscription to the publisher too.
            return;
        }
        let _ = match flag {
            1 => socket.set_subscribe(topic),
            0 => socket.set_unsubscribe(topic),
            _ => Ok(()),
        };
    }

    /// Whether the caller of the request being handled may see and act on `owner`'s runs.
    fn may_see(&self, owner: &str) -> bool {
        self.caller_admin || owner == self.caller
    }

    fn stop_run(&mut self, run_id: &str, back: &zmq::Socket) -> bool {
        let Some(run) = self.runs.get_mut(run_id) else {
            return false;
        };
        run.stopped = true;
        run.stopped_at.get_or_insert_with(Instant::now);
        if !run.going {
            // Not started: nothing to wait for; it ends now, whatever its workers do.
            let now = Instant::now();
            for a in &run.agents {
                run.done.entry(a.clone()).or_insert(now);
                run.exited.entry(a.clone()).or_insert((now, true));
            }
        }
        if let Ok(f) = to_frame(&ToAgent::Stop {
            run_id: run_id.to_owned(),
        }) {
            for a in &run.agents {
                let _ = back.send_multipart([a.as_bytes(), &f], 0);
            }
        }
        true
    }

    /// Gives the go to every worker of `run` once all of them are ready (or done/lost).
    fn go_when_ready(run_id: &str, run: &mut ActiveRun, back: &zmq::Socket) {
        if run.going
            || !run.agents.iter().all(|a| {
                run.ready.contains(a) || run.done.contains_key(a) || run.exited.contains_key(a)
            })
        {
            return;
        }
        run.going = true;
        // The run starts now, not when it was submitted: fetching the binary and starting the
        // workers is not part of its duration.
        run.started = Instant::now();
        run.row.started = chrono::Utc::now().to_rfc3339();
        if let Ok(f) = to_frame(&ToAgent::Go {
            run_id: run_id.to_owned(),
        }) {
            for a in run.agents.iter().filter(|a| run.ready.contains(*a)) {
                let _ = back.send_multipart([a.as_bytes(), &f], 0);
            }
        }
    }

    fn ping(&self) -> PingInfo {
        // A caller sees its own runs only (an admin, or anyone without CURVE, sees all).
        let visible = |run: &str| self.runs.get(run).is_some_and(|r| self.may_see(&r.owner));
        PingInfo {
            pid: std::process::id(),
            frontend: self.bound["frontend"].clone(),
            backend: self.bound["backend"].clone(),
            receiver: self.bound["receiver"].clone(),
            publisher: self.bound["publisher"].clone(),
            heartbeat: self.bound["heartbeat"].clone(),
            agents: self
                .agents
                .iter()
                .map(|(id, a)| AgentStatus {
                    id: id.clone(),
                    host: a.host.clone(),
                    pid: a.pid,
                    busy: a.busy.as_ref().map(|r| {
                        if visible(r) {
                            r.clone()
                        } else if !self.runs.contains_key(r) {
                            "a run of an earlier broker: its worker outlived a restart".into()
                        } else {
                            "another caller's run".into()
                        }
                    }),
                    last_heartbeat: a.last_seen.elapsed().as_secs_f64(),
                })
                .collect(),
            active_runs: self.runs.keys().filter(|r| visible(r)).cloned().collect(),
            curve: self.opts.keys.is_some(),
            rejected: self.rejected,
            refused_keys: self.refused_keys.load(Ordering::Relaxed),
        }
    }

    fn binary_path(&self, sha: &str) -> Option<PathBuf> {
        // Only plain hex names: a hash from the network never becomes a path elsewhere.
        (sha.len() == 64 && sha.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| self.binaries.join(sha))
    }

    fn on_caller(
        &mut self,
        frames: Vec<Vec<u8>>,
        user: &str,
        front: &zmq::Socket,
        back: &zmq::Socket,
    ) {
        // REQ envelope: identity, [request id (REQ_CORRELATE)], empty delimiter; then the
        // request and, for `put_binary`, the bytes. The reply goes back in the same envelope.
        let Some(delimiter) = frames.iter().take(3).position(Vec::is_empty) else {
            self.rejected += 1;
            return;
        };
        let (envelope, rest) = frames.split_at(delimiter + 1);
        let Some(request) = rest.first() else {
            self.rejected += 1;
            return;
        };
        match &self.opts.keys {
            Some(k) => {
                self.caller = user.to_owned();
                self.caller_admin = k.roles.is_admin(user);
            }
            None => {
                self.caller = super::hex(&frames[0]);
                self.caller_admin = true;
            }
        }
        let reply = match from_frame::<CallerRequest>(request) {
            Err(e) => {
                self.rejected += 1;
                refuse("bad_request", format!("bad request: {e}"))
            }
            Ok(req) => {
                // What callers read from the database must include every event published so far.
                self.flush(false);
                self.handle(req, rest.get(1).map(Vec::as_slice), back)
            }
        };
        let body = serde_json::to_vec(&reply).unwrap_or_default();
        let reply: Vec<&[u8]> = envelope
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::once(body.as_slice()))
            .collect();
        let _ = front.send_multipart(reply, 0);
    }

    fn handle(&mut self, req: CallerRequest, extra: Option<&[u8]>, back: &zmq::Socket) -> Value {
        match req {
            CallerRequest::Ping => ok(serde_json::to_value(self.ping()).unwrap_or_default()),
            CallerRequest::HasBinary { sha256 } => {
                let present = self.binary_path(&sha256).is_some_and(|p| p.is_file());
                ok(json!({ "present": present }))
            }
            CallerRequest::PutBinary {
                sha256,
                offset,
                total,
                upload,
            } => {
                let Some(bytes) = extra else {
                    return refuse(
                        "bad_request",
                        "put_binary needs a SHA-256 and the bytes".into(),
                    );
                };
                let key = super::blobs::UploadKey {
                    caller: self.caller.clone(),
                    sha256,
                    upload: upload.unwrap_or_default(),
                };
                let total = total.unwrap_or(bytes.len() as u64);
                match self.uploads.put(key, offset, total, bytes, Instant::now()) {
                    Ok(complete) => ok(json!({ "complete": complete })),
                    Err(e) => refuse(e.code(), e.to_string()),
                }
            }
            CallerRequest::Runs => match self.db.runs() {
                Ok(rows) => {
                    let rows: Vec<RunRow> = rows
                        .into_iter()
                        .filter(|(_, owner)| self.may_see(owner))
                        .map(|(r, _)| self.current_row(r))
                        .collect();
                    ok(json!({ "runs": rows }))
                }
                Err(e) => refuse("db", e.to_string()),
            },
            CallerRequest::Stop { run_id } => {
                let mine = self
                    .runs
                    .get(&run_id)
                    .is_some_and(|r| self.may_see(&r.owner));
                if mine && self.stop_run(&run_id, back) {
                    ok(json!({ "stopped": [run_id] }))
                } else {
                    refuse(
                        "unknown_run",
                        format!("no active run {run_id:?} (`loads runs` lists them)"),
                    )
                }
            }
            CallerRequest::Purge => {
                let ids: Vec<String> = self
                    .runs
                    .iter()
                    .filter(|(_, r)| self.may_see(&r.owner))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in &ids {
                    self.stop_run(id, back);
                }
                ok(json!({ "stopped": ids }))
            }
            CallerRequest::GetRun { run_id, after } => match self.db.get_run(&run_id, after) {
                Ok(Some((mut run, next, owner))) if self.may_see(&owner) => {
                    run.row = self.current_row(run.row);
                    ok(json!({ "run": run, "next": next }))
                }
                // Another caller's run is as unknown as a run that does not exist.
                Ok(_) => refuse(
                    "unknown_run",
                    format!("no run {run_id:?} (`loads runs` lists them)"),
                ),
                Err(e) => refuse("db", e.to_string()),
            },
            CallerRequest::Run(req) => self.start_run(*req, back),
        }
    }

    /// A stored row as it is now: an active run's live figures, or an ended run's row that the
    /// database did not take yet.
    fn current_row(&self, stored: RunRow) -> RunRow {
        if let Some(row) = self.unsaved_rows.get(&stored.run_id) {
            return row.clone();
        }
        match self.runs.get(&stored.run_id) {
            Some(active) => {
                let mut r = active.row.clone();
                r.hits = active.stats.totals().hits;
                r.duration = active.going.then(|| active.started.elapsed().as_secs_f64());
                r
            }
            None => stored,
        }
    }

    fn start_run(&mut self, req: super::RunRequest, back: &zmq::Socket) -> Value {
        // Notifiers make the broker connect where the run says (a webhook, an SMTP server): on
        // a secured broker only an admin may ask for them.
        if self.opts.keys.is_some() && !self.caller_admin && !req.args.observers.is_empty() {
            return refuse(
                "not_allowed",
                "end-of-run notifiers (--observer) make the broker connect to the given address: on a broker with CURVE keys they need an admin's key (--admin-keys)".into(),
            );
        }
        let super::RunRequest {
            mut args,
            agents: wanted,
            binary_sha256,
            platform,
            meta,
            files,
        } = req;
        if let Some(f) = files.iter().find(|f| {
            !super::safe_relative_path(&f.path)
                || !self.binary_path(&f.sha256).is_some_and(|p| p.is_file())
        }) {
            return refuse(
                "bad_file",
                format!(
                    "included file {:?} is not a safe relative path or was not sent",
                    f.path
                ),
            );
        }
        if !self
            .binary_path(&binary_sha256)
            .is_some_and(|p| p.is_file())
        {
            return refuse(
                "unknown_binary",
                "the broker does not have this test binary; send it first".into(),
            );
        }
        let idle: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.busy.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if wanted == 0 || (idle.len() as u64) < wanted {
            return refuse(
                "not_enough_agents",
                format!("{wanted} agents requested, {} available", idle.len()),
            );
        }
        // The broker names runs: an id from the network is kept only when it is a plain,
        // unused name (it becomes a topic and a directory name).
        let plain = |id: &str| {
            (1..=64).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && id != HEARTBEAT_TOPIC
        };
        // With CURVE, run ids are the broker's and unguessable: a run id is what lets one
        // follow a run's publications, and each caller learns only its own.
        if self.opts.keys.is_some() {
            match super::random_hex(8) {
                Ok(r) => args.run_id = format!("{}-{r}", crate::config::new_run_id()),
                Err(e) => return refuse("random", e.to_string()),
            }
        } else if !plain(&args.run_id)
            || self.runs.contains_key(&args.run_id)
            || self.db.get_run_row(&args.run_id).ok().flatten().is_some()
        {
            args.run_id = crate::config::new_run_id();
        }
        let run_id = args.run_id.clone();
        let chosen: Vec<String> = idle.into_iter().take(wanted as usize).collect();
        let row = RunRow {
            run_id: run_id.clone(),
            test: args.test.clone(),
            started: chrono::Utc::now().to_rfc3339(),
            duration: None,
            hits: 0,
            status: "running".into(),
            agents: wanted,
            lost_agents: Vec::new(),
            unstored: 0,
        };
        let meta = RunMeta {
            run_id: run_id.clone(),
            ..meta
        };
        let owner = if self.opts.keys.is_some() {
            self.caller.clone()
        } else {
            String::new()
        };
        let mut tokens = BTreeMap::new();
        for id in &chosen {
            match super::random_hex(32) {
                Ok(t) => {
                    tokens.insert(id.clone(), t);
                }
                Err(e) => return refuse("random", e.to_string()),
            }
        }
        if let Err(e) = self.db.insert_run(&row, &meta, &owner) {
            return refuse("db", e.to_string());
        }
        let n = chosen.len() as u64;
        for (i, id) in chosen.iter().enumerate() {
            // Each agent's share of a stages or rate plan (cycles run whole on every agent).
            let mut args = args.clone();
            args.share = Some((i as u64, n));
            let job = ToAgent::Run(Box::new(Job {
                run_id: run_id.clone(),
                agent_id: id.clone(),
                args,
                binary_sha256: binary_sha256.clone(),
                platform: platform.clone(),
                receiver: self.bound["receiver"].clone(),
                files: files.clone(),
                token: tokens.get(id).cloned().unwrap_or_default(),
                curve: None,
            }));
            if let Ok(frame) = to_frame(&job) {
                let _ = back.send_multipart([id.as_bytes(), &frame], 0);
            }
            if let Some(a) = self.agents.get_mut(id) {
                a.busy = Some(run_id.clone());
            }
        }
        for (agent, token) in &tokens {
            self.tokens
                .insert(token.clone(), (run_id.clone(), agent.clone()));
        }
        self.runs.insert(
            run_id.clone(),
            ActiveRun {
                row,
                args: args.clone(),
                owner,
                agents: chosen.clone(),
                tokens,
                submitted: Instant::now(),
                last_waiting: Instant::now(),
                ending_since: None,
                stopped_at: None,
                dirty: false,
                done: HashMap::new(),
                exited: BTreeMap::new(),
                errors: Vec::new(),
                started: Instant::now(),
                stats: Stats::default(),
                seq: 0,
                stopped: false,
                unstored: 0,
                ready: HashSet::new(),
                going: false,
                outbox: Vec::new(),
            },
        );
        ok(json!({ "run_id": run_id, "agents": chosen }))
    }

    fn on_agent(&mut self, frames: Vec<Vec<u8>>, user: &str, back: &zmq::Socket) {
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
                        host,
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
                    .and_then(|p| super::blobs::read_chunk(&p, offset).ok());
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
                    if run.stopped {
                        // Stopped on request: whatever the exit, it is what was asked.
                    } else if let Some(e) = error.filter(|_| code != Some(0)) {
                        run.errors.push(format!("agent {id}: {e}"));
                    } else if code != Some(0) && !run.done.contains_key(&id) {
                        run.errors
                            .push(format!("agent {id}: the worker exited with {code:?}"));
                    }
                    run.exited.insert(id, (Instant::now(), code == Some(0)));
                }
            }
        }
    }

    fn on_event(&mut self, frames: &[Vec<u8>], publisher: &zmq::Socket) {
        // A worker's message: its token, then its event. The token says which run and which
        // agent it speaks for; nothing else in the message is trusted, and nothing is decoded
        // before the token is known.
        let [token, frame] = frames else {
            self.rejected += 1;
            return;
        };
        let Some((run_id, agent_id)) = std::str::from_utf8(token)
            .ok()
            .and_then(|t| self.tokens.get(t))
            .cloned()
        else {
            self.rejected += 1;
            return;
        };
        let Ok(env) = from_frame::<Envelope>(frame) else {
            self.rejected += 1;
            return;
        };
        let Some(run) = self
            .runs
            .get_mut(&run_id)
            .filter(|_| env.run_id == run_id && env.agent_id == agent_id)
        else {
            self.rejected += 1;
            return;
        };
        let frame = frame.as_slice();
        match &env.event {
            Event::StopTestRun => {
                run.done.insert(env.agent_id.clone(), Instant::now());
            }
            Event::StartTestRun => {}
            other => other.apply_to(&mut run.stats, crate::result::unix_now()),
        }
        run.seq += 1;
        let seq = run.seq;
        // The frame was validated above (it parsed as an envelope): it is stored and
        // republished as it came, inside a `Publication::Events` of this loop turn, without
        // serialising it again. One message per turn instead of one per event spares the
        // publisher's queue and the kernel.
        if run.outbox.is_empty() {
            run.outbox
                .extend_from_slice(b"{\"type\":\"events\",\"first\":");
            run.outbox.extend_from_slice(seq.to_string().as_bytes());
            run.outbox.extend_from_slice(b",\"envelopes\":[");
        } else {
            run.outbox.push(b',');
        }
        run.outbox.extend_from_slice(frame);
        if run.outbox.len() >= PUBLICATION_BYTES {
            Self::publish_outbox(&env.run_id, run, publisher);
        }
        run.dirty = true;
        if self.pending_bytes.saturating_add(frame.len()) > MAX_PENDING_BYTES {
            // The database has not taken events for a while: this one is published and
            // counted, but not kept for storing.
            run.unstored += 1;
            return;
        }
        // It parsed as JSON, so it is UTF-8: no second validation pass.
        let text = std::str::from_utf8(frame)
            .map(str::to_owned)
            .unwrap_or_default();
        self.pending_bytes += text.len();
        self.pending.push((env.run_id, text));
    }

    /// Publishes the events of `run` received since its last publication.
    fn publish_outbox(run_id: &str, run: &mut ActiveRun, publisher: &zmq::Socket) {
        if run.outbox.is_empty() {
            return;
        }
        run.outbox.extend_from_slice(b"]}");
        let _ = publisher.send_multipart([run_id.as_bytes(), &run.outbox], 0);
        run.outbox.clear();
    }

    /// Publishes every run's pending events (before anything else is published about them).
    fn publish_all(&mut self, publisher: &zmq::Socket) {
        for (id, run) in self.runs.iter_mut() {
            Self::publish_outbox(id, run, publisher);
        }
    }

    /// Drops silent agents, starts the runs whose workers are ready (or gives up on the workers
    /// that are not ready in time), and ends the runs whose agents are all done or lost.
    fn check_agents(&mut self, publisher: &zmq::Socket, back: &zmq::Socket) {
        let timeout = self.opts.agent_timeout;
        let silent: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.last_seen.elapsed() > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in silent {
            eprintln!(
                "broker: agent {id} dropped: no heartbeat for {}s",
                timeout.as_secs()
            );
            if let Some(a) = self.agents.remove(&id)
                && let Some(run) = a.busy.and_then(|r| self.runs.get_mut(&r))
                && !run.done.contains_key(&id)
            {
                run.row.lost_agents.push(id.clone());
                run.done.insert(id, Instant::now());
            }
        }
        let ready_timeout = self.opts.ready_timeout;
        for (run_id, run) in self.runs.iter_mut() {
            if !run.going && run.submitted.elapsed() > ready_timeout {
                // Workers that are not ready in time: the run goes on without them (it fails
                // when none is ready), and their agents are told to stop.
                let late: Vec<String> = run
                    .agents
                    .iter()
                    .filter(|a| {
                        !run.ready.contains(*a)
                            && !run.done.contains_key(*a)
                            && !run.exited.contains_key(*a)
                    })
                    .cloned()
                    .collect();
                let none_ready = run.ready.is_empty();
                for a in late {
                    run.errors.push(format!(
                        "agent {a}: its worker was not ready within {}s (the broker's --ready-timeout); {}",
                        ready_timeout.as_secs(),
                        if none_ready {
                            "no worker was ready, so the run did not start"
                        } else {
                            "the run went on without it"
                        }
                    ));
                    if let Ok(f) = to_frame(&ToAgent::Stop {
                        run_id: run_id.clone(),
                    }) {
                        let _ = back.send_multipart([a.as_bytes(), &f], zmq::DONTWAIT);
                    }
                    let now = Instant::now();
                    run.done.insert(a.clone(), now);
                    run.exited.insert(a, (now, false));
                }
            }
            // A worker that failed to start, or an agent lost, must not hold the others back.
            Self::go_when_ready(run_id, run, back);
            if !run.going && run.last_waiting.elapsed() >= Duration::from_secs(1) {
                run.last_waiting = Instant::now();
                let waiting = Publication::Waiting {
                    ready: run.ready.len() as u64,
                    agents: run.agents.len() as u64,
                    waiting_for: run
                        .agents
                        .iter()
                        .filter(|a| !run.ready.contains(*a) && !run.done.contains_key(*a))
                        .cloned()
                        .collect(),
                    deadline: ready_timeout
                        .saturating_sub(run.submitted.elapsed())
                        .as_secs_f64(),
                };
                if let Ok(p) = to_frame(&waiting) {
                    let _ = publisher.send_multipart([run_id.as_bytes(), &p], zmq::DONTWAIT);
                }
            }
        }
        let ended: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| {
                // A stopped run does not wait for ever for workers that do not exit.
                r.stopped_at
                    .is_some_and(|t| t.elapsed() > STOPPED_RUN_GRACE)
                    || r.agents.iter().all(|a| {
                        if r.row.lost_agents.contains(a) {
                            return true;
                        }
                        match (r.done.get(a), r.exited.get(a)) {
                            // All its events, and how its worker ended (a worker reports its
                            // problems when it exits, after its last event).
                            (Some(_), Some(_)) => true,
                            // A worker that lingers after its last event is not waited for long.
                            (Some(t), None) => t.elapsed() > DONE_WITHOUT_EXIT,
                            (None, Some((t, clean))) => {
                                t.elapsed() > if *clean { CLEAN_EXIT_GRACE } else { EXIT_GRACE }
                            }
                            (None, None) => false,
                        }
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            // When it could first end: its duration ends there, whatever it waits for after.
            if let Some(run) = self.runs.get_mut(&id) {
                run.ending_since.get_or_insert_with(Instant::now);
            }
            // Its events are stored before it ends; while the database fails, an ended run waits
            // a while for it, then counts its events that are still not stored as lost.
            let has_pending = self.pending.iter().any(|(r, _)| *r == id);
            if has_pending {
                self.flush(false);
            }
            if has_pending && self.store_failed.is_some() {
                let Some(run) = self.runs.get_mut(&id) else {
                    continue;
                };
                let since = *run.ending_since.get_or_insert_with(Instant::now);
                if since.elapsed() < END_STORE_GRACE {
                    continue;
                }
                let before = self.pending.len();
                self.pending.retain(|(r, _)| *r != id);
                run.unstored += (before - self.pending.len()) as u64;
                self.pending_bytes = self.pending.iter().map(|(_, t)| t.len()).sum();
            }
            if let Some(mut run) = self.runs.remove(&id) {
                for t in run.tokens.values() {
                    self.tokens.remove(t);
                }
                // Its agents are free again (a worker still exiting does not hold its agent).
                for a in &run.agents {
                    if let Some(agent) = self.agents.get_mut(a)
                        && agent.busy.as_deref() == Some(id.as_str())
                    {
                        agent.busy = None;
                    }
                }
                // The last events of a worker may still be in flight when its agent reports the
                // exit; they are refused (the run is over), and the caller has its end.
                run.row.hits = run.stats.totals().hits;
                let end_at = run.ending_since.unwrap_or_else(Instant::now);
                run.row.duration = Some(if run.going {
                    end_at.saturating_duration_since(run.started).as_secs_f64()
                } else {
                    0.0
                });
                run.row.unstored = run.unstored;
                if run
                    .stopped_at
                    .is_some_and(|t| t.elapsed() > STOPPED_RUN_GRACE)
                {
                    // Workers that did not exit when stopped.
                    for a in &run.agents {
                        if !run.exited.contains_key(a) && !run.row.lost_agents.contains(a) {
                            run.errors.push(format!(
                                "agent {a}: its worker did not exit within {}s of the stop",
                                STOPPED_RUN_GRACE.as_secs()
                            ));
                        }
                    }
                }
                run.row.status = if run.stopped {
                    "stopped"
                } else if run.errors.is_empty() {
                    "finished"
                } else {
                    "failed"
                }
                .into();
                // Stored with the run's last events when the database takes them; until then
                // the broker shows it from memory.
                self.unsaved_rows.insert(id.clone(), run.row.clone());
                self.flush(true);
                if !run.args.observers.is_empty() {
                    let summary = crate::notify::RunSummary::new(
                        &id,
                        &run.row.test,
                        &run.row.status,
                        run.row.duration.unwrap_or(0.0),
                        &run.stats,
                        run.row.agents,
                        run.row.lost_agents.clone(),
                        run.errors.clone(),
                    );
                    let args = run.args.clone();
                    // Off the broker's loop: a slow endpoint must not hold it up.
                    let _ = std::thread::Builder::new()
                        .name("loads-observers".into())
                        .spawn(move || {
                            for e in crate::notify::notify_all(&args, &summary) {
                                eprintln!("broker: run {}: observer failed: {e}", summary.run_id);
                            }
                        });
                }
                let end = Publication::End {
                    status: run.row.status.clone(),
                    lost_agents: run.row.lost_agents.clone(),
                    errors: run.errors.clone(),
                    events: run.seq,
                    unstored: run.unstored,
                    duration: run.row.duration.filter(|_| run.going),
                };
                if let Ok(p) = to_frame(&end) {
                    let _ = publisher.send_multipart([id.as_bytes(), &p], 0);
                }
            }
        }
    }
}
