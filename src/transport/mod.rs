//! The cluster's transport: ZeroMQ sockets (libzmq through the `zmq` crate), JSON messages, and
//! the processes built on them: the [`broker`], the [`agent`], the worker's [`relay`] and the
//! caller's side of a distributed run (in [`crate::runner::DistributedRunner`]).
//!
//! Sockets (all default to loopback):
//!
//! | socket | kind | who talks to it |
//! |---|---|---|
//! | front, `tcp://127.0.0.1:7780` | ROUTER | callers (REQ): ping, blobs, run, runs, get a run, stop (a run, or one agent's worker), purge, change a run's load |
//! | back, `tcp://127.0.0.1:7781` | ROUTER | agents (DEALER): register, heartbeat, jobs, binaries, go, stop, load changes; workers (DEALER, with their token): leases of data rows |
//! | receiver, `tcp://127.0.0.1:7782` | PULL | workers (PUSH): the events of a run, as [`Envelope`]s after the worker's token |
//! | publisher, `tcp://127.0.0.1:7783` | XPUB | callers (SUB): a run's events, its wait for workers, its lost agents and its end (topic: the run id; only the ids of existing runs are accepted as subscriptions) |
//! | heartbeat, `tcp://127.0.0.1:7784` | XPUB | callers (SUB): the broker's pid twice a second |
//!
//! libzmq sockets are not thread-safe: each is owned by one thread (the broker's and the
//! agent's loops, the worker's collector thread, the caller's loop) and never shared.
//!
//! With CURVE keys ([`security`]) every broker socket is a CURVE server and admits only the
//! public keys of its role (agents on the back socket and the receiver, callers and admins on
//! the others); agents, callers and workers connect as CURVE clients. A caller sees and acts on
//! its own runs only, unless its key is an admin's. A worker's events count only with the token
//! the broker put in its job ([`Job::token`]). Every frame is
//! decoded as untrusted input ([`decode_any`] is the fuzz target): what does not decode is
//! counted and dropped, and each socket has a size limit that ZeroMQ enforces before reading.

pub mod agent;
pub mod blobs;
pub mod broker;
pub mod client;
pub mod lease;
pub mod relay;
pub mod security;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::config::RunArgs;
pub use crate::db::{RunRow, StoredRun};
use crate::result::{Envelope, RunMeta};

/// Default endpoint of the broker's front socket (callers).
pub const DEFAULT_FRONTEND: &str = "tcp://127.0.0.1:7780";
/// Default endpoint of the broker's back socket (agents).
pub const DEFAULT_BACKEND: &str = "tcp://127.0.0.1:7781";
/// Default endpoint of the broker's receiver (workers' results).
pub const DEFAULT_RECEIVER: &str = "tcp://127.0.0.1:7782";
/// Default endpoint of the broker's publisher.
pub const DEFAULT_PUBLISHER: &str = "tcp://127.0.0.1:7783";
/// Default endpoint of the broker's heartbeat.
pub const DEFAULT_HEARTBEAT: &str = "tcp://127.0.0.1:7784";
/// Topic of the broker's heartbeat (on its heartbeat socket).
pub const HEARTBEAT_TOPIC: &str = "heartbeat";

/// Errors of the cluster transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A ZeroMQ call failed.
    #[error("ZeroMQ error on {what}: {source}")]
    Zmq {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: zmq::Error,
    },
    /// A message could not be encoded or decoded.
    #[error("bad message: {0}")]
    Message(String),
    /// The broker did not answer in time.
    #[error(
        "the broker at {0} did not answer; is `loads broker` running there? (A broker with CURVE keys never answers a key it does not accept: check --curve-key and --broker-key.)"
    )]
    NoBroker(String),
    /// The broker answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Wraps a zmq result with what was being done.
pub(crate) fn z<T>(what: &str, r: Result<T, zmq::Error>) -> Result<T, TransportError> {
    r.map_err(|source| TransportError::Zmq {
        what: what.to_owned(),
        source,
    })
}

/// `zmq::poll` where a signal (EINTR) is no error: it returns as if nothing were ready, and the
/// caller's loop looks at its stop flag.
pub(crate) fn poll(items: &mut [zmq::PollItem<'_>], timeout_ms: i64) -> Result<(), TransportError> {
    match zmq::poll(items, timeout_ms) {
        Ok(_) | Err(zmq::Error::EINTR) => Ok(()),
        Err(e) => z("poll", Err(e)),
    }
}

/// A request from a caller to the broker's front socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum CallerRequest {
    /// Broker pid, endpoints, agents, active runs.
    Ping,
    /// Whether the broker holds the test binary with this SHA-256.
    HasBinary {
        /// SHA-256, hex.
        sha256: String,
    },
    /// Stores a test binary or included file, in chunks of at most [`BINARY_CHUNK`]: the bytes
    /// `offset..offset + len` follow in a second frame; the blob is verified once `total` bytes
    /// have arrived. Each upload has its own part file; a chunk of a blob the broker already
    /// has is answered `complete` and not stored (see [`blobs`]).
    PutBinary {
        /// SHA-256, hex.
        sha256: String,
        /// Where this chunk starts.
        #[serde(default)]
        offset: u64,
        /// Size of the whole blob (`None`: this chunk is the whole blob).
        #[serde(default)]
        total: Option<u64>,
        /// The caller's name for this upload (at most 64 bytes), so that uploads of one blob
        /// by one caller at once (two runs with the same key) stay apart; chunks of an upload
        /// carry the same name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload: Option<String>,
    },
    /// Starts a run on `agents` agents with the binary `binary_sha256`.
    Run(Box<RunRequest>),
    /// Active and past runs.
    Runs,
    /// A run's metadata and one page of its stored events: those after `after` (a cursor from
    /// the previous page's `next`; none for the first page), at most [`RUN_PAGE_EVENTS`] events
    /// or [`RUN_PAGE_BYTES`] of them. The answer's `next` is the cursor of the following page,
    /// `null` after the last one, so that a run of millions of events is never loaded whole.
    GetRun {
        /// The run.
        run_id: String,
        /// Cursor of the page to get (the previous answer's `next`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<i64>,
    },
    /// Stops a run: its workers are told to stop (graceful period, then killed).
    Stop {
        /// The run.
        run_id: String,
    },
    /// Stops every active run.
    Purge,
    /// Changes the load of a running run (the dashboard's control): the broker passes the
    /// run's total on to each of its agents still running, whose worker takes its share the
    /// way the plan divides the load.
    Load {
        /// The run.
        run_id: String,
        /// The scenario (`None`: the whole run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scenario: Option<String>,
        /// Users (closed models) or arrivals per second (the open model), the run's total.
        value: f64,
    },
    /// Stops the worker of one agent (`loads stop --agent`): the run it works for, which the
    /// caller must be allowed to see, goes on with its other agents and reports this one's
    /// worker as stopped by the user.
    StopAgent {
        /// The agent (as `loads agents` lists it).
        agent_id: String,
    },
}

/// What a caller asks for when it starts a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    /// The run's arguments (the same on every agent).
    pub args: RunArgs,
    /// Number of agents.
    pub agents: u64,
    /// The test binary.
    pub binary_sha256: String,
    /// `ARCH-OS` of the binary.
    pub platform: String,
    /// What the caller's outputs show.
    pub meta: RunMeta,
    /// Files for the workers' test directories (their blobs sent beforehand).
    #[serde(default)]
    pub files: Vec<IncludedFile>,
}

/// An agent as the broker sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's id.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The run it is busy with.
    pub busy: Option<String>,
    /// Seconds since its last heartbeat.
    pub last_heartbeat: f64,
}

/// What a broker answers to `ping`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingInfo {
    /// The broker's process id.
    pub pid: u32,
    /// Front socket.
    pub frontend: String,
    /// Back socket.
    pub backend: String,
    /// Receiver socket.
    pub receiver: String,
    /// Publisher socket.
    pub publisher: String,
    /// Heartbeat socket.
    #[serde(default)]
    pub heartbeat: String,
    /// Registered agents.
    pub agents: Vec<AgentStatus>,
    /// Active runs.
    pub active_runs: Vec<String>,
    /// Whether the broker requires CURVE keys.
    #[serde(default)]
    pub curve: bool,
    /// Messages the broker rejected (malformed, unknown run, oversized) since it started.
    #[serde(default)]
    pub rejected: u64,
    /// Connections refused for their key (CURVE) since it started.
    #[serde(default)]
    pub refused_keys: u64,
}

/// Largest message a worker may send to the broker's receiver (its token and one event or
/// batch). A real batch is far smaller (at most [`MAX_URLS`](crate::result::stats::MAX_URLS)
/// URLs of compressed histograms); the bound keeps what decoding one message can cost near
/// 300 MiB (see [`crate::result::stats`]).
pub const MAX_WORKER_MESSAGE: usize = 16 * 1024 * 1024;

/// Size of the chunks in which agents fetch binaries and files from the broker: a large debug
/// binary never travels (nor sits in a queue) as one message.
pub const BINARY_CHUNK: usize = 4 * 1024 * 1024;

/// A message from the broker to an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ToAgent {
    /// Registration accepted.
    Welcome,
    /// The broker does not know this agent (it restarted, or dropped the agent for silence):
    /// register again.
    Reregister,
    /// Run this job.
    Run(Box<Job>),
    /// A chunk of the binary asked for: bytes `offset..offset + len` of `total`, the bytes in a
    /// second frame (at most [`BINARY_CHUNK`]).
    Binary {
        /// SHA-256, hex.
        sha256: String,
        /// Where the chunk starts.
        #[serde(default)]
        offset: u64,
        /// Size of the whole binary.
        #[serde(default)]
        total: u64,
    },
    /// Every worker of this run is ready: start.
    Go {
        /// The run.
        run_id: String,
    },
    /// Stop the worker of this run.
    Stop {
        /// The run.
        run_id: String,
    },
    /// The answer to a worker's [`FromAgent::LeaseRows`]: rows `start..end` of a data source
    /// are the worker's alone (`start == end`: none is left, or `error` says why none is given).
    Rows {
        /// The request answered.
        id: u64,
        /// The data source.
        source: String,
        /// The first row number leased.
        start: u64,
        /// One past the last.
        end: u64,
        /// Why no rows are leased, when it is not that they ran out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Change the load of the worker of this run (see [`CallerRequest::Load`]).
    Load {
        /// The run.
        run_id: String,
        /// The scenario (`None`: the whole run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scenario: Option<String>,
        /// The run's total.
        value: f64,
    },
}

/// A message from an agent to the broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum FromAgent {
    /// A new agent.
    Register {
        /// Its host name.
        host: String,
        /// Its process id.
        pid: u32,
    },
    /// Still alive.
    Heartbeat {
        /// The run it is busy with.
        busy: Option<String>,
    },
    /// Send me the chunk of this binary that starts at `offset`.
    NeedBinary {
        /// SHA-256, hex.
        sha256: String,
        /// The first byte wanted (the bytes received so far).
        #[serde(default)]
        offset: u64,
    },
    /// The worker of a run is started and waits for the go.
    WorkerReady {
        /// The run.
        run_id: String,
    },
    /// A worker asks for a block of rows of a `queue` or `per-user` data source of its run
    /// (sent by the worker itself, on a connection of its own to the back socket, with its
    /// agent's key; answered with [`ToAgent::Rows`]). The token ([`Job::token`]) says which
    /// run and agent it works for.
    LeaseRows {
        /// The worker's token.
        token: String,
        /// The request's number (the answer repeats it).
        id: u64,
        /// The data source.
        source: String,
        /// Most rows wanted (the broker may give fewer).
        want: u64,
    },
    /// A worker that ends gives back the rows of its last block it did not use: `start..end`,
    /// the end of that block. The broker leases them again to the other workers of the run.
    ReleaseRows {
        /// The worker's token.
        token: String,
        /// The data source.
        source: String,
        /// The first row given back.
        start: u64,
        /// One past the last (the end of the worker's block).
        end: u64,
    },
    /// The worker of a run ended.
    WorkerExited {
        /// The run.
        run_id: String,
        /// Its exit code, if it exited.
        code: Option<i32>,
        /// What went wrong, when it did (stderr tail, hash mismatch...).
        error: Option<String>,
    },
}

/// What a worker needs to run its share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The run.
    pub run_id: String,
    /// The agent's id.
    pub agent_id: String,
    /// The run's arguments.
    pub args: RunArgs,
    /// The test binary.
    pub binary_sha256: String,
    /// `ARCH-OS` of the binary.
    pub platform: String,
    /// Where the worker sends its events.
    pub receiver: String,
    /// Files to put in the run's test directory.
    #[serde(default)]
    pub files: Vec<IncludedFile>,
    /// The broker's back socket as the agent reaches it (set by the agent): where the worker
    /// leases the rows of its `queue` and `per-user` data sources.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backend: String,
    /// The worker's secret for this run: the first frame of every message its relay sends to
    /// the receiver. The broker counts an event only when it comes with the token it gave
    /// this agent for this run, so that knowing a run id and an agent id is not enough to
    /// speak for a worker. Never listed, published or stored.
    #[serde(default)]
    pub token: String,
    /// The agent's CURVE keys, for its worker's connection to the receiver (added by the agent
    /// to the job file it writes, mode 0600; never sent over the network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<security::ClientKeys>,
}

/// A file shipped with a run (`--include-file`), content-addressed like the test binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncludedFile {
    /// Where it goes, relative to the test directory.
    pub path: String,
    /// SHA-256 of its content, hex.
    pub sha256: String,
}

/// Whether `path` is a safe place inside a test directory: relative, made of plain names only
/// (no `..`, no root, no `.`-only tricks).
pub fn safe_relative_path(path: &str) -> bool {
    let p = std::path::Path::new(path);
    !path.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// What the broker publishes about a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Publication {
    /// An event of a worker, numbered from 1 within its run.
    Event {
        /// Its number in the run (what a re-attaching caller has already seen is skipped).
        seq: u64,
        /// The event.
        envelope: Envelope,
    },
    /// Consecutive events of workers, numbered `first`, `first + 1`... within their run: the
    /// broker publishes what it received in one turn of its loop as one message.
    Events {
        /// The number of the first one.
        first: u64,
        /// The events, in order.
        envelopes: Vec<Envelope>,
    },
    /// The run ended.
    End {
        /// `finished` or `failed`.
        status: String,
        /// Agents lost during the run.
        lost_agents: Vec<String>,
        /// The problems of the run (why workers failed, which were stopped or did not exit),
        /// the same as the stored [`RunRow::problems`] (so bounded as they are).
        errors: Vec<String>,
        /// How many events the run had (the last sequence number): a caller that missed some
        /// (a publisher drops what a slow subscriber cannot take) fetches them from storage.
        #[serde(default)]
        events: u64,
        /// Of those, how many the broker could not store (see [`RunRow::unstored`]).
        #[serde(default)]
        unstored: u64,
        /// How long the run lasted, from the go to when its last worker was done, in seconds
        /// (what the broker stores; waits after that — for a failing database — are not in it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<f64>,
    },
    /// The broker lost an agent of the run (no heartbeat for its `--agent-timeout`): the run
    /// goes on without it; `End` lists it again among `lost_agents`.
    AgentLost {
        /// The agent.
        agent: String,
    },
    /// The run waits for its workers to be ready (published about once a second until the go).
    Waiting {
        /// Agents whose worker is ready.
        ready: u64,
        /// Agents of the run.
        agents: u64,
        /// Agents not ready yet.
        waiting_for: Vec<String>,
        /// Seconds left before the run starts without them (or fails, when none is ready).
        deadline: f64,
    },
    /// The broker is alive.
    Heartbeat {
        /// The broker's pid.
        pid: u32,
    },
}

/// `n` random bytes from the system's generator, in hex (tokens, run ids).
pub fn random_hex(n: usize) -> Result<String, TransportError> {
    use std::io::Read as _;
    let mut buf = vec![0u8; n.min(64)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|source| TransportError::Io {
            what: "cannot read /dev/urandom".into(),
            source,
        })?;
    Ok(hex(&buf))
}

/// `ARCH-OS` of this process.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

/// A digest in lowercase hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of the file at `path`, hex, read in 1 MiB pieces (never whole in memory).
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The modification time of the file at `p`, or the epoch when it has none.
pub(crate) fn modified(p: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// A number that differs from one call to the next (the clock's nanoseconds, folded): enough to
/// tell apart names made on one host, no more.
pub(crate) fn rand_u16() -> u16 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    (n ^ (n >> 16)) as u16
}

/// This host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Replaces a wildcard host (`*`, `0.0.0.0`) in `endpoint` with the host of `reached`, the
/// endpoint through which the broker was reached.
pub fn reachable(endpoint: &str, reached: &str) -> String {
    let host_of = |e: &str| {
        e.trim_start_matches("tcp://")
            .rsplit_once(':')
            .map(|(h, _)| h.to_owned())
            .unwrap_or_default()
    };
    let h = host_of(endpoint);
    if h == "*" || h == "0.0.0.0" {
        endpoint.replacen(&h, &host_of(reached), 1)
    } else {
        endpoint.to_owned()
    }
}

/// Serialises `value` as one JSON frame.
pub(crate) fn to_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, TransportError> {
    serde_json::to_vec(value).map_err(|e| TransportError::Message(e.to_string()))
}

/// Parses one JSON frame.
pub(crate) fn from_frame<T: for<'de> Deserialize<'de>>(frame: &[u8]) -> Result<T, TransportError> {
    serde_json::from_slice(frame).map_err(|e| TransportError::Message(e.to_string()))
}

/// Decodes `frame` the way every socket of the cluster does (a caller's request, an agent's
/// message, a broker's message to an agent or publication, a worker's event, an external
/// runner's message) and, for an event, applies it to statistics as the broker and the caller do. Never panics, whatever the bytes:
/// this is the fuzz target's entry point (`fuzz/`), and the regression tests run it too.
pub fn decode_any(frame: &[u8]) {
    let _ = from_frame::<CallerRequest>(frame);
    let _ = from_frame::<FromAgent>(frame);
    let _ = from_frame::<ToAgent>(frame);
    let _ = from_frame::<Publication>(frame);
    if let Ok(env) = from_frame::<Envelope>(frame) {
        let mut stats = crate::result::Stats::default();
        let now = crate::result::unix_now();
        // As the caller (within the run's window) and the broker (no timeline) do.
        let window = crate::result::stats::Window::of_run(now, now);
        env.event.apply_within(&mut stats, now, window);
        let mut untimed = crate::result::Stats::default();
        env.event
            .apply_within(&mut untimed, now, crate::result::stats::Window::NOTHING);
        let _ = env.event.untimed_in(window);
        // As the broker and the caller, which keep the merged figures, not the message.
        drop(env);
        // Twice: the counts of a hostile batch must not overflow when they add up.
        let mut merged = crate::result::Stats::default();
        merged.merge(&stats);
        merged.merge(&stats);
        let _ = merged.totals();
        if let Some(o) = &merged.open {
            let _ = o.requests_uncorrected.quantiles();
        }
        let _ = merged.requests.latency.quantiles();
    }
    // What an external runner sends, read as the receiver reads it (v1 forms included).
    if let Ok(message) = crate::result::read_runner_message(frame) {
        let mut stats = crate::result::Stats::default();
        let now = crate::result::unix_now();
        let window = crate::result::stats::Window::of_run(now, now);
        message.for_each(|item| {
            if let crate::result::Item::Event(e) = item {
                e.apply_within(&mut stats, now, window);
            }
        });
        let _ = stats.totals();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = CallerRequest::HasBinary {
            sha256: "ab".into(),
        };
        let text = String::from_utf8(to_frame(&m).expect("ser")).expect("utf8");
        assert_eq!(text, r#"{"command":"has_binary","sha256":"ab"}"#);
        let back: CallerRequest = from_frame(text.as_bytes()).expect("de");
        assert!(matches!(back, CallerRequest::HasBinary { .. }));
        assert!(from_frame::<CallerRequest>(b"{\"command\":\"nope\"}").is_err());
    }

    #[test]
    fn included_paths_stay_inside_the_test_directory() {
        assert!(safe_relative_path("data/users.csv"));
        assert!(safe_relative_path("a.txt"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a", "a/./b/.."] {
            assert!(!safe_relative_path(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            reachable("tcp://0.0.0.0:7782", "tcp://10.1.2.3:7781"),
            "tcp://10.1.2.3:7782"
        );
        assert_eq!(
            reachable("tcp://127.0.0.1:7782", "tcp://x:1"),
            "tcp://127.0.0.1:7782"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

#[cfg(test)]
mod curve_build_tests {
    #[test]
    fn libzmq_is_built_with_curve() {
        assert_eq!(zmq::has("curve"), Some(true));
    }
}
