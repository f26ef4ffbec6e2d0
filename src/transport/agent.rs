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

use super::{
    FromAgent, Job, ToAgent, TransportError, from_frame, hostname, platform, sha256_hex, to_frame,
    z,
};

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
    z(
        &format!("connecting to {}", opts.broker),
        socket.connect(&opts.broker),
    )?;
    let send = |m: &FromAgent| -> Result<(), TransportError> {
        z("sending to the broker", socket.send(to_frame(m)?, 0))
    };
    send(&FromAgent::Register {
        host: host.clone(),
        pid: std::process::id(),
    })?;
    let mut ready = Some(on_ready);
    let mut workers: BTreeMap<String, Worker> = BTreeMap::new();
    // Jobs waiting for blobs (the test binary, included files) and the blobs asked for.
    let mut pending: Vec<Job> = Vec::new();
    let mut asked: std::collections::HashSet<String> = Default::default();
    let mut last_beat = Instant::now();
    while !stop.load(Ordering::SeqCst) {
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
                        }
                    }
                    ToAgent::Reregister => send(&FromAgent::Register {
                        host: host.clone(),
                        pid: std::process::id(),
                    })?,
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
                                })?;
                            }
                        }
                        pending.push(*job);
                    }
                    ToAgent::Binary { sha256 } => {
                        asked.remove(&sha256);
                        let bytes = frames.get(1).map(Vec::as_slice).unwrap_or_default();
                        let stored = store_binary(&opts.cache_dir, &sha256, bytes);
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

/// Verifies and caches a binary received from the broker.
fn store_binary(cache: &Path, sha: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let path = binary_path(cache, sha).ok_or("invalid binary hash")?;
    if sha256_hex(bytes) != sha {
        return Err(format!(
            "the test binary received does not match its SHA-256 {sha}"
        ));
    }
    // A name of our own: agents on one host may share the cache.
    let tmp = path.with_extension(format!("{}-{:04x}.part", std::process::id(), rand_u16()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)))
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot cache the test binary: {e}"))?;
    Ok(path)
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
    // The job and the worker's stderr sit beside the test directory, where included files
    // cannot overwrite them.
    let dir = opts.work_dir.join(&job.run_id);
    let job_file = opts.work_dir.join(format!("{}.job.json", job.run_id));
    let stderr = opts.work_dir.join(format!("{}.stderr", job.run_id));
    let prepared = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&job_file, to_frame(job).unwrap_or_default()))
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
