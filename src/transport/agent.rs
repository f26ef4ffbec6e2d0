//! The agent: a long-lived process on a load-generating machine. It registers with the broker's
//! back socket, heartbeats, and runs each job it is given in a worker subprocess — the test
//! binary of the job (fetched from the broker by SHA-256, verified and cached) started as
//! `BINARY worker --job FILE`, whose relay sends the events to the broker's receiver.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{FromAgent, Job, ToAgent, TransportError, from_frame, hostname, platform, to_frame, z};

/// How an agent is set up.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The broker's back socket.
    pub broker: String,
    /// Where test binaries are cached, by SHA-256.
    pub cache_dir: PathBuf,
    /// Where each run gets its test directory.
    pub work_dir: PathBuf,
    /// How often to heartbeat.
    pub heartbeat: Duration,
}

struct Worker {
    child: Child,
    /// The worker reads "go" here before it starts its users.
    go: Option<std::process::ChildStdin>,
    stderr: PathBuf,
    /// When it was told to stop: killed if still alive after [`STOP_GRACE`].
    stopping: Option<Instant>,
}

/// How long a stopped worker may take to flush its results before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The last `n` bytes of a file, as text (only those are read).
fn tail(path: &Path, n: usize) -> String {
    use std::io::{Seek as _, SeekFrom};
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(n as u64)));
        let _ = f.take(n as u64).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Runs an agent until `stop` is set. `on_ready` gets the agent's id once registered.
pub fn run_agent(
    opts: AgentOptions,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(&str),
) -> Result<(), TransportError> {
    let io = |what: String| move |source| TransportError::Io { what, source };
    std::fs::create_dir_all(&opts.cache_dir)
        .map_err(io(format!("cannot create {}", opts.cache_dir.display())))?;
    std::fs::create_dir_all(&opts.work_dir)
        .map_err(io(format!("cannot create {}", opts.work_dir.display())))?;
    let host = hostname();
    let id = format!("{host}-{}-{:04x}", std::process::id(), rand_u16());
    let ctx = zmq::Context::new();
    let socket = z("agent socket", ctx.socket(zmq::DEALER))?;
    z("agent identity", socket.set_identity(id.as_bytes()))?;
    z("agent linger", socket.set_linger(1000))?;
    // Messages go to a connection that is up, or wait in our outbox: never queued in libzmq
    // for a broker that is not there or that refuses our key.
    z("agent immediate", socket.set_immediate(true))?;
    super::security::secure_client(&socket)?;
    z(
        &format!("connecting to {}", opts.broker),
        socket.connect(&opts.broker),
    )?;
    // Nothing is ever sent blocking: what the broker cannot take now waits in the outbox,
    // tried again every turn of the loop.
    let outbox = std::cell::RefCell::new(Outbox::default());
    let send = |m: &FromAgent| -> Result<(), TransportError> {
        let mut o = outbox.borrow_mut();
        o.push(m.clone());
        o.flush(&socket)
    };
    send(&FromAgent::Register {
        host: host.clone(),
        pid: std::process::id(),
    })?;
    let mut ready = Some(on_ready);
    // Since when the agent waits for the broker's welcome (at start, and when asked to register
    // again), and whether it said it still waits.
    let mut registering = Some(Instant::now());
    let mut workers: BTreeMap<String, Worker> = BTreeMap::new();
    // Jobs waiting for blobs (the test binary, included files) and the blobs asked for.
    let mut pending: Vec<Job> = Vec::new();
    let mut asked: std::collections::HashSet<String> = Default::default();
    let mut downloads = Downloads::default();
    let mut last_beat = Instant::now();
    let mut warned = false;
    while !stop.load(Ordering::SeqCst) {
        if !warned && registering.is_some_and(|t| t.elapsed() > REGISTER_WARNING) {
            // Still not welcomed: say why it may be, and go on trying.
            warned = true;
            eprintln!(
                "loads agent: no answer from the broker at {} after {} s; is it running, and does it accept this agent's key (--curve-key, --broker-key)? Still trying.",
                opts.broker,
                REGISTER_WARNING.as_secs()
            );
        }
        let mut items = [socket.as_poll_item(zmq::POLLIN)];
        super::poll(&mut items, 200)?;
        if items[0].is_readable() {
            while let Ok(frames) = socket.recv_multipart(zmq::DONTWAIT) {
                let Some(msg) = frames.first().and_then(|f| from_frame::<ToAgent>(f).ok()) else {
                    continue;
                };
                match msg {
                    ToAgent::Welcome => {
                        if let Some(f) = ready.take() {
                            f(&id);
                        } else if registering.is_some() {
                            eprintln!("loads agent {id}: registered again with {}", opts.broker);
                        }
                        registering = None;
                        warned = false;
                    }
                    ToAgent::Reregister => {
                        // Said once per registration (the broker answers each heartbeat sent
                        // before it got ours).
                        if registering.is_none() {
                            registering = Some(Instant::now());
                            eprintln!(
                                "loads agent {id}: the broker at {} asks this agent to register again (it restarted, or dropped this agent for silence): registering again",
                                opts.broker
                            );
                        }
                        send(&FromAgent::Register {
                            host: host.clone(),
                            pid: std::process::id(),
                        })?
                    }
                    ToAgent::Run(mut job) => {
                        // A broker bound to a wildcard address is reached the way we reach it.
                        job.receiver = super::reachable(&job.receiver, &opts.broker);
                        if job.platform != platform() {
                            send(&FromAgent::WorkerExited {
                                run_id: job.run_id.clone(),
                                code: None,
                                error: Some(format!(
                                    "the test binary is built for {}, this agent runs on {}",
                                    job.platform,
                                    platform()
                                )),
                            })?;
                            continue;
                        }
                        let blobs: Vec<&str> = std::iter::once(job.binary_sha256.as_str())
                            .chain(job.files.iter().map(|f| f.sha256.as_str()))
                            .collect();
                        if blobs
                            .iter()
                            .any(|sha| binary_path(&opts.cache_dir, sha).is_none())
                            || job
                                .files
                                .iter()
                                .any(|f| !super::safe_relative_path(&f.path))
                        {
                            send(&FromAgent::WorkerExited {
                                run_id: job.run_id.clone(),
                                code: None,
                                error: Some("invalid job: bad hash or unsafe file path".into()),
                            })?;
                            continue;
                        }
                        for sha in blobs {
                            let present =
                                binary_path(&opts.cache_dir, sha).is_some_and(|p| p.is_file());
                            if !present && asked.insert(sha.to_owned()) {
                                send(&FromAgent::NeedBinary {
                                    sha256: sha.to_owned(),
                                    offset: 0,
                                })?;
                            }
                        }
                        pending.push(*job);
                    }
                    ToAgent::Binary {
                        sha256,
                        offset,
                        total,
                    } => {
                        let bytes = frames.get(1).map(Vec::as_slice).unwrap_or_default();
                        let stored =
                            match downloads.receive(&opts.cache_dir, &sha256, offset, total, bytes)
                            {
                                Ok(Chunk::More(next)) => {
                                    send(&FromAgent::NeedBinary {
                                        sha256,
                                        offset: next,
                                    })?;
                                    continue;
                                }
                                Ok(Chunk::Stale) => continue,
                                Ok(Chunk::Done(p)) => {
                                    prune_cache(&opts.cache_dir, KEEP_BLOBS, |sha| {
                                        pending.iter().any(|j| {
                                            j.binary_sha256 == sha
                                                || j.files.iter().any(|f| f.sha256 == sha)
                                        })
                                    });
                                    Ok(p)
                                }
                                Err(e) => Err(e),
                            };
                        asked.remove(&sha256);
                        // Storing a large binary takes a while: say we are still here.
                        send(&FromAgent::Heartbeat {
                            busy: workers.keys().next().cloned(),
                        })?;
                        last_beat = Instant::now();
                        if let Err(e) = stored {
                            let (failed, rest): (Vec<Job>, Vec<Job>) =
                                pending.drain(..).partition(|j| {
                                    j.binary_sha256 == sha256
                                        || j.files.iter().any(|f| f.sha256 == sha256)
                                });
                            pending = rest;
                            for job in failed {
                                send(&FromAgent::WorkerExited {
                                    run_id: job.run_id.clone(),
                                    code: None,
                                    error: Some(e.clone()),
                                })?;
                            }
                        }
                    }
                    ToAgent::Go { run_id } => {
                        if let Some(w) = workers.get_mut(&run_id)
                            && let Some(mut go) = w.go.take()
                        {
                            use std::io::Write as _;
                            let _ = go.write_all(b"go\n");
                        }
                    }
                    ToAgent::Stop { run_id } if pending.iter().any(|j| j.run_id == run_id) => {
                        // Not started yet (still fetching its files): it never will be.
                        pending.retain(|j| j.run_id != run_id);
                        send(&FromAgent::WorkerExited {
                            run_id,
                            code: Some(0),
                            error: None,
                        })?;
                    }
                    ToAgent::Stop { run_id } => {
                        if let Some(w) = workers.get_mut(&run_id)
                            && w.stopping.is_none()
                        {
                            // Closing the go pipe makes a worker still waiting for the go end;
                            // SIGTERM makes a running one stop its users and flush.
                            w.go = None;
                            let _ = Command::new("kill")
                                .args(["-s", "TERM", &w.child.id().to_string()])
                                .stderr(Stdio::null())
                                .status();
                            w.stopping = Some(Instant::now());
                        }
                    }
                }
            }
        }
        // Start the jobs whose blobs are all here.
        let (ready_jobs, waiting): (Vec<Job>, Vec<Job>) = pending.drain(..).partition(|j| {
            std::iter::once(&j.binary_sha256)
                .chain(j.files.iter().map(|f| &f.sha256))
                .all(|sha| binary_path(&opts.cache_dir, sha).is_some_and(|p| p.is_file()))
        });
        pending = waiting;
        for job in ready_jobs {
            if let Some(binary) = binary_path(&opts.cache_dir, &job.binary_sha256) {
                start(&opts, &job, &binary, &mut workers, &send)?;
            }
        }
        for w in workers.values_mut() {
            if w.stopping.is_some_and(|t| t.elapsed() > STOP_GRACE) {
                let _ = w.child.kill();
            }
        }
        let finished: Vec<String> = workers
            .iter_mut()
            .filter_map(|(run, w)| matches!(w.child.try_wait(), Ok(Some(_))).then(|| run.clone()))
            .collect();
        for run in finished {
            if let Some(mut w) = workers.remove(&run) {
                let code = w.child.wait().ok().and_then(|s| s.code());
                let error = (code != Some(0)).then(|| {
                    let t = tail(&w.stderr, 2000);
                    if t.is_empty() {
                        format!("the worker exited with {code:?}")
                    } else {
                        t
                    }
                });
                send(&FromAgent::WorkerExited {
                    run_id: run,
                    code,
                    error,
                })?;
            }
        }
        if last_beat.elapsed() >= opts.heartbeat {
            last_beat = Instant::now();
            send(&FromAgent::Heartbeat {
                busy: workers.keys().next().cloned(),
            })?;
        }
        // What the broker could not take yet.
        outbox.borrow_mut().flush(&socket)?;
    }
    if registering.is_some() {
        // No broker takes our messages: nothing to wait for when the socket closes.
        let _ = socket.set_linger(0);
    }
    // Stopping: the workers stop their users and flush (SIGTERM), then are killed.
    for w in workers.values_mut() {
        w.go = None;
        let _ = Command::new("kill")
            .args(["-s", "TERM", &w.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for w in workers.values_mut() {
        while Instant::now() < deadline && matches!(w.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    Ok(())
}

/// How long an agent waits for the broker's welcome before it says it is still waiting.
pub const REGISTER_WARNING: Duration = Duration::from_secs(10);

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
struct Outbox(std::collections::VecDeque<FromAgent>);

impl Outbox {
    /// Queues `m` behind the waiting messages (in place of one of its kind).
    fn push(&mut self, m: FromAgent) {
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
    fn flush(&mut self, socket: &zmq::Socket) -> Result<(), TransportError> {
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

fn rand_u16() -> u16 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    (n ^ (n >> 16)) as u16
}

/// The cache path of a binary; `None` when `sha` is not a SHA-256 in hex.
fn binary_path(cache: &Path, sha: &str) -> Option<PathBuf> {
    (sha.len() == 64 && sha.bytes().all(|c| c.is_ascii_hexdigit())).then(|| cache.join(sha))
}

/// Test directories (with their job file and worker stderr) an agent keeps for inspection.
pub const KEEP_RUNS: usize = 20;
/// Binaries and included files an agent keeps in its cache (the most recently used).
pub const KEEP_BLOBS: usize = 20;

/// Modification time of `p`, or the epoch.
fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// Removes the test directories of all but the `keep` most recent runs in `work_dir` (and their
/// `RUN.job.json` and `RUN.stderr`), never those of runs for which `busy` is true.
fn prune_runs(work_dir: &Path, keep: usize, busy: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    let mut runs: Vec<(std::time::SystemTime, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| !busy(id))
        .map(|id| (mtime(&work_dir.join(&id)), id))
        .collect();
    runs.sort_by(|a, b| b.cmp(a));
    for (_, id) in runs.into_iter().skip(keep) {
        let _ = std::fs::remove_dir_all(work_dir.join(&id));
        let _ = std::fs::remove_file(work_dir.join(format!("{id}.job.json")));
        let _ = std::fs::remove_file(work_dir.join(format!("{id}.stderr")));
    }
}

/// Removes all but the `keep` most recently used blobs of the cache, never those for which
/// `needed` is true, and part files left by downloads that died more than an hour ago.
fn prune_cache(cache: &Path, keep: usize, needed: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let mut blobs = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let path = e.path();
        if name.ends_with(".part") {
            if mtime(&path) < hour_ago {
                let _ = std::fs::remove_file(&path);
            }
        } else if binary_path(cache, &name).is_some() && !needed(&name) {
            blobs.push((mtime(&path), path));
        }
    }
    blobs.sort_by(|a, b| b.cmp(a));
    for (_, p) in blobs.into_iter().skip(keep) {
        let _ = std::fs::remove_file(p);
    }
}

/// Checks that the file at `path` hashes to `sha` (SHA-256, hex).
fn verify_blob(path: &Path, sha: &str) -> Result<(), String> {
    let digest = super::sha256_file(path)
        .map_err(|e| format!("cannot read the cached {}: {e}", path.display()))?;
    if digest != sha {
        return Err(format!(
            "the cached {} no longer matches its SHA-256 {sha}: removed; the next run fetches it again",
            path.display()
        ));
    }
    Ok(())
}

/// A binary being received chunk by chunk: written to a part file and hashed as it comes.
struct Download {
    file: std::fs::File,
    tmp: PathBuf,
    hasher: sha2::Sha256,
    received: u64,
}

/// What a received chunk leads to.
enum Chunk {
    /// Ask for the bytes from this offset on.
    More(u64),
    /// Complete, verified and cached here.
    Done(PathBuf),
    /// A chunk of a download this agent is not at (a duplicate answer): ignored.
    Stale,
}

/// The binaries being received, by SHA-256.
#[derive(Default)]
struct Downloads(BTreeMap<String, Download>);

impl Downloads {
    /// Takes the chunk of `sha` at `offset` (of `total` bytes): appends it, and once complete
    /// verifies the SHA-256 and moves the file into the cache.
    fn receive(
        &mut self,
        cache: &Path,
        sha: &str,
        offset: u64,
        total: u64,
        bytes: &[u8],
    ) -> Result<Chunk, String> {
        use sha2::Digest as _;
        use std::io::Write as _;
        let path = binary_path(cache, sha).ok_or("invalid binary hash")?;
        if offset == 0 && !self.0.contains_key(sha) {
            // A name of our own: agents on one host may share the cache.
            let tmp =
                path.with_extension(format!("{}-{:04x}.part", std::process::id(), rand_u16()));
            let file = std::fs::File::create(&tmp)
                .map_err(|e| format!("cannot cache the test binary: {e}"))?;
            self.0.insert(
                sha.to_owned(),
                Download {
                    file,
                    tmp,
                    hasher: sha2::Sha256::new(),
                    received: 0,
                },
            );
        }
        let Some(d) = self.0.get_mut(sha).filter(|d| d.received == offset) else {
            return Ok(Chunk::Stale);
        };
        let grown = d.received + bytes.len() as u64;
        if grown > total || (bytes.is_empty() && grown < total) {
            let d = self.0.remove(sha).ok_or("download vanished")?;
            let _ = std::fs::remove_file(&d.tmp);
            return Err(format!(
                "the test binary {sha} came in chunks that do not add up to its size {total}"
            ));
        }
        if let Err(e) = d.file.write_all(bytes) {
            let d = self.0.remove(sha).ok_or("download vanished")?;
            let _ = std::fs::remove_file(&d.tmp);
            return Err(format!("cannot cache the test binary: {e}"));
        }
        d.hasher.update(bytes);
        d.received = grown;
        if grown < total {
            return Ok(Chunk::More(grown));
        }
        let d = self.0.remove(sha).ok_or("download vanished")?;
        let digest = super::hex(&d.hasher.finalize());
        if digest != sha {
            let _ = std::fs::remove_file(&d.tmp);
            return Err(format!(
                "the test binary received does not match its SHA-256 {sha}"
            ));
        }
        drop(d.file);
        std::fs::set_permissions(&d.tmp, std::fs::Permissions::from_mode(0o755))
            .and_then(|_| std::fs::rename(&d.tmp, &path))
            .map_err(|e| format!("cannot cache the test binary: {e}"))?;
        Ok(Chunk::Done(path))
    }
}

fn start(
    opts: &AgentOptions,
    job: &Job,
    binary: &Path,
    workers: &mut BTreeMap<String, Worker>,
    send: &impl Fn(&FromAgent) -> Result<(), TransportError>,
) -> Result<(), TransportError> {
    let fail = |e: String| {
        send(&FromAgent::WorkerExited {
            run_id: job.run_id.clone(),
            code: None,
            error: Some(e),
        })
    };
    // The run id names a directory: keep it to safe characters.
    if job.run_id.is_empty()
        || !job
            .run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return fail(format!("invalid run id {:?}", job.run_id));
    }
    // What runs is what was asked for: the cached binary and files are hashed again now (a
    // cache is a directory anyone with access could write to).
    let blobs = std::iter::once((binary.to_path_buf(), job.binary_sha256.as_str())).chain(
        job.files
            .iter()
            .map(|f| (opts.cache_dir.join(&f.sha256), f.sha256.as_str())),
    );
    for (path, sha) in blobs {
        if let Err(e) = verify_blob(&path, sha) {
            let _ = std::fs::remove_file(&path);
            return fail(e);
        }
    }
    // Old runs' test directories go, but for the most recent ones (and the running ones).
    prune_runs(&opts.work_dir, KEEP_RUNS, |id| workers.contains_key(id));
    // The binary was just used: the cache keeps the most recently used ones.
    let _ = std::fs::File::options()
        .append(true)
        .open(binary)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    // The job and the worker's stderr sit beside the test directory, where included files
    // cannot overwrite them.
    let dir = opts.work_dir.join(&job.run_id);
    let job_file = opts.work_dir.join(format!("{}.job.json", job.run_id));
    let stderr = opts.work_dir.join(format!("{}.stderr", job.run_id));
    let prepared = std::fs::create_dir_all(&dir)
        .and_then(|_| {
            // The job file carries this agent's keys for the worker: readable by us only.
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut job = job.clone();
            job.curve = super::security::client_keys().cloned();
            // A new file, created private (an old one may have other permissions).
            let _ = std::fs::remove_file(&job_file);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&job_file)?;
            f.write_all(&to_frame(&job).unwrap_or_default())
        })
        .and_then(|_| {
            // Included files: plain relative paths (checked on receipt), copied from the cache.
            for f in &job.files {
                let dest = dir.join(&f.path);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let src = opts.cache_dir.join(&f.sha256);
                std::fs::copy(&src, &dest)?;
            }
            Ok(())
        })
        .and_then(|_| std::fs::File::create(&stderr));
    let err_file = match prepared {
        Ok(f) => f,
        Err(e) => {
            return fail(format!(
                "cannot prepare the test directory {}: {e}",
                dir.display()
            ));
        }
    };
    let child = Command::new(binary)
        .arg("worker")
        .arg("--job")
        .arg(&job_file)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn();
    match child {
        Ok(mut child) => {
            let go = child.stdin.take();
            workers.insert(
                job.run_id.clone(),
                Worker {
                    child,
                    go,
                    stderr,
                    stopping: None,
                },
            );
            send(&FromAgent::WorkerReady {
                run_id: job.run_id.clone(),
            })
        }
        Err(e) => fail(format!("cannot start the worker {}: {e}", binary.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("loads-agent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn binaries_arrive_in_chunks_and_are_verified() {
        let cache = tmp("chunks");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let sha = crate::transport::sha256_hex(&data);
        let total = data.len() as u64;
        let mut d = Downloads::default();
        let mut offset = 0u64;
        let path = loop {
            let end = (offset as usize + 3000).min(data.len());
            match d
                .receive(&cache, &sha, offset, total, &data[offset as usize..end])
                .expect("chunk")
            {
                Chunk::More(next) => {
                    // A duplicate of the chunk just taken is ignored.
                    assert!(matches!(
                        d.receive(&cache, &sha, offset, total, &data[offset as usize..end]),
                        Ok(Chunk::Stale)
                    ));
                    offset = next;
                }
                Chunk::Done(p) => break p,
                Chunk::Stale => panic!("stale"),
            }
        };
        assert_eq!(std::fs::read(&path).expect("cached"), data);

        // Bytes that do not hash to the announced SHA-256 are refused and not cached.
        let other = "0".repeat(64);
        let e = match d.receive(&cache, &other, 0, 4, b"abcd") {
            Err(e) => e,
            Ok(_) => panic!("accepted a wrong hash"),
        };
        assert!(e.contains("does not match"), "{e}");
        assert!(!cache.join(&other).exists());
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn old_runs_and_blobs_are_pruned_but_not_busy_or_needed_ones() {
        let work = tmp("prune");
        for i in 0..5 {
            std::fs::create_dir_all(work.join(format!("run{i}"))).expect("dir");
            std::fs::write(work.join(format!("run{i}.stderr")), "").expect("file");
            let when = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000 + i);
            let f = std::fs::File::open(work.join(format!("run{i}"))).expect("open");
            f.set_modified(when).expect("mtime");
        }
        prune_runs(&work, 2, |id| id == "run0");
        let mut left: Vec<String> = std::fs::read_dir(&work)
            .expect("read")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "run0",
                "run0.stderr",
                "run3",
                "run3.stderr",
                "run4",
                "run4.stderr"
            ]
        );

        let cache = tmp("prune-cache");
        for i in 0..4u64 {
            let sha = format!("{i:064x}");
            std::fs::write(cache.join(&sha), "x").expect("blob");
            std::fs::File::options()
                .append(true)
                .open(cache.join(&sha))
                .and_then(|f| {
                    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000 + i))
                })
                .expect("mtime");
        }
        prune_cache(&cache, 1, |sha| sha == format!("{:064x}", 0));
        let mut left: Vec<String> = std::fs::read_dir(&cache)
            .expect("read")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(left, vec![format!("{:064x}", 0), format!("{:064x}", 3)]);
        let _ = std::fs::remove_dir_all(&work);
        let _ = std::fs::remove_dir_all(&cache);
    }
}

#[cfg(test)]
mod outbox_tests {
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

#[cfg(test)]
mod verify_tests {
    use super::*;

    #[test]
    fn cached_blobs_are_hashed_again_before_they_run() {
        let p = std::env::temp_dir().join(format!("loads-verify-{}", std::process::id()));
        std::fs::write(&p, b"binary").expect("write");
        let sha = crate::transport::sha256_hex(b"binary");
        assert!(verify_blob(&p, &sha).is_ok());
        std::fs::write(&p, b"tampered").expect("write");
        assert!(verify_blob(&p, &sha).is_err());
        let _ = std::fs::remove_file(&p);
    }
}
