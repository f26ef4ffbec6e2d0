//! The agent: a long-lived process on a load-generating machine. It registers with the broker's
//! back socket, heartbeats, and runs each job it is given in a worker subprocess — the test
//! binary of the job (fetched from the broker by SHA-256, verified and cached: [`Downloads`])
//! started as `BINARY worker --job FILE`, whose relay sends the events to the broker's receiver.
//!
//! An `Agent` owns its socket and state; its loop polls the socket, hands each message of the
//! broker to its handler (`on_welcome`, `on_reregister`, `on_run`, `on_binary`, `on_go`,
//! `on_stop`), then does its periodic duties (start the jobs whose blobs are here, reap the
//! workers that ended, heartbeat, warn while not welcomed). What it says to the broker waits in
//! its outbox until the broker takes it.

mod outbox;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use self::outbox::Outbox;
use self::worker::Worker;
use super::blobs::{Chunk, Downloads};
use super::{FromAgent, Job, ToAgent, TransportError, from_frame, hostname, platform, rand_u16, z};

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

/// How long a stopped worker may take to flush its results before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long an agent waits for the broker's welcome before it says it is still waiting.
pub const REGISTER_WARNING: Duration = Duration::from_secs(10);
/// Test directories (with their job file and worker stderr) an agent keeps for inspection.
pub const KEEP_RUNS: usize = 20;
/// Binaries and included files an agent keeps in its cache (the most recently used).
pub const KEEP_BLOBS: usize = 20;

/// Runs an agent until `stop` is set. `on_ready` gets the agent's id once registered.
pub fn run_agent(
    opts: AgentOptions,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(&str),
) -> Result<(), TransportError> {
    Agent::connect(opts, on_ready)?.run(&stop)
}

/// The blobs a job needs: its test binary, then its included files.
fn blobs_of(job: &Job) -> impl Iterator<Item = &str> {
    std::iter::once(job.binary_sha256.as_str()).chain(job.files.iter().map(|f| f.sha256.as_str()))
}

/// A running agent: its connection to the broker and what it is doing.
struct Agent<R> {
    socket: zmq::Socket,
    /// Dropped after the socket.
    _ctx: zmq::Context,
    opts: AgentOptions,
    /// This agent's id (its socket identity).
    id: String,
    host: String,
    /// Told the agent's id at the first welcome.
    on_ready: Option<R>,
    /// The running workers, by run.
    workers: BTreeMap<String, Worker>,
    /// Jobs waiting for blobs (the test binary, included files).
    pending: Vec<Job>,
    /// The cache of blobs, and those being fetched.
    downloads: Downloads,
    /// Nothing is ever sent blocking: what the broker cannot take now waits here, tried again
    /// every turn of the loop.
    outbox: Outbox,
    /// Since when the agent waits for the broker's welcome (at start, and when asked to
    /// register again).
    registering: Option<Instant>,
    /// Whether it said it still waits.
    warned: bool,
    last_beat: Instant,
}

impl<R: FnOnce(&str)> Agent<R> {
    /// Creates the agent's directories, connects to the broker and registers.
    fn connect(opts: AgentOptions, on_ready: R) -> Result<Self, TransportError> {
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
        let mut agent = Agent {
            socket,
            _ctx: ctx,
            downloads: Downloads::new(opts.cache_dir.clone()),
            opts,
            id,
            host,
            on_ready: Some(on_ready),
            workers: BTreeMap::new(),
            pending: Vec::new(),
            outbox: Outbox::default(),
            registering: None,
            warned: false,
            last_beat: Instant::now(),
        };
        agent.register()?;
        agent.registering = Some(Instant::now());
        Ok(agent)
    }

    /// Polls and dispatches until `stop` is set, then stops the workers.
    fn run(mut self, stop: &AtomicBool) -> Result<(), TransportError> {
        while !stop.load(Ordering::SeqCst) {
            self.warn_if_not_welcomed();
            let mut items = [self.socket.as_poll_item(zmq::POLLIN)];
            super::poll(&mut items, 200)?;
            if items[0].is_readable() {
                while let Ok(frames) = self.socket.recv_multipart(zmq::DONTWAIT) {
                    self.dispatch(&frames)?;
                }
            }
            self.start_ready_jobs()?;
            self.reap_workers()?;
            self.heartbeat_when_due()?;
            // What the broker could not take yet.
            self.outbox.flush(&self.socket)?;
        }
        self.shut_down();
        Ok(())
    }

    /// Sends `m` now, or as soon as the broker takes it.
    fn send(&mut self, m: FromAgent) -> Result<(), TransportError> {
        self.outbox.push(m);
        self.outbox.flush(&self.socket)
    }

    fn register(&mut self) -> Result<(), TransportError> {
        self.send(FromAgent::Register {
            host: self.host.clone(),
            pid: std::process::id(),
        })
    }

    /// Tells the broker that the worker of `run_id` will not run (or ran and failed).
    fn failed(&mut self, run_id: String, error: String) -> Result<(), TransportError> {
        self.send(FromAgent::WorkerExited {
            run_id,
            code: None,
            error: Some(error),
        })
    }

    fn heartbeat(&mut self) -> Result<(), TransportError> {
        self.last_beat = Instant::now();
        self.send(FromAgent::Heartbeat {
            busy: self.workers.keys().next().cloned(),
        })
    }

    /// Hands a message of the broker (`frames`) to its handler; what does not decode is dropped.
    fn dispatch(&mut self, frames: &[Vec<u8>]) -> Result<(), TransportError> {
        let Some(msg) = frames.first().and_then(|f| from_frame::<ToAgent>(f).ok()) else {
            return Ok(());
        };
        match msg {
            ToAgent::Welcome => {
                self.on_welcome();
                Ok(())
            }
            ToAgent::Reregister => self.on_reregister(),
            ToAgent::Run(job) => self.on_run(*job),
            ToAgent::Binary {
                sha256,
                offset,
                total,
            } => {
                let bytes = frames.get(1).map(Vec::as_slice).unwrap_or_default();
                self.on_binary(sha256, offset, total, bytes)
            }
            ToAgent::Go { run_id } => {
                self.on_go(&run_id);
                Ok(())
            }
            ToAgent::Stop { run_id } => self.on_stop(run_id),
            ToAgent::Load { ref run_id, .. } => {
                if let Some(w) = self.workers.get_mut(run_id) {
                    w.change_load(&msg);
                }
                Ok(())
            }
            // For a worker's own connection: not ours.
            ToAgent::Rows { .. } => Ok(()),
        }
    }

    fn on_welcome(&mut self) {
        if let Some(f) = self.on_ready.take() {
            f(&self.id);
        } else if self.registering.is_some() {
            eprintln!(
                "loads agent {}: registered again with {}",
                self.id, self.opts.broker
            );
        }
        self.registering = None;
        self.warned = false;
    }

    fn on_reregister(&mut self) -> Result<(), TransportError> {
        // Said once per registration (the broker answers each heartbeat sent before it got ours).
        if self.registering.is_none() {
            self.registering = Some(Instant::now());
            eprintln!(
                "loads agent {}: the broker at {} asks this agent to register again (it restarted, or dropped this agent for silence): registering again",
                self.id, self.opts.broker
            );
        }
        self.register()
    }

    /// Takes a job: refused if it cannot run here, else pending until its blobs are cached
    /// (those missing are asked for).
    fn on_run(&mut self, mut job: Job) -> Result<(), TransportError> {
        // A broker bound to a wildcard address is reached the way we reach it.
        job.receiver = super::reachable(&job.receiver, &self.opts.broker);
        // The worker leases data rows on the back socket, the way we reach it.
        job.backend = self.opts.broker.clone();
        if job.platform != platform() {
            let error = format!(
                "the test binary is built for {}, this agent runs on {}",
                job.platform,
                platform()
            );
            return self.failed(job.run_id, error);
        }
        if blobs_of(&job).any(|sha| self.downloads.path(sha).is_none())
            || job
                .files
                .iter()
                .any(|f| !super::safe_relative_path(&f.path))
        {
            return self.failed(
                job.run_id,
                "invalid job: bad hash or unsafe file path".into(),
            );
        }
        let wanted: Vec<String> = blobs_of(&job)
            .filter(|sha| self.downloads.want(sha))
            .map(str::to_owned)
            .collect();
        for sha256 in wanted {
            self.send(FromAgent::NeedBinary { sha256, offset: 0 })?;
        }
        self.pending.push(job);
        Ok(())
    }

    /// Takes a chunk of a blob: asks for the next one, or with the blob cached (or refused)
    /// says it is still here, and fails the pending jobs that needed a refused blob.
    fn on_binary(
        &mut self,
        sha256: String,
        offset: u64,
        total: u64,
        bytes: &[u8],
    ) -> Result<(), TransportError> {
        let stored = match self.downloads.receive(&sha256, offset, total, bytes) {
            Ok(Chunk::More(next)) => {
                return self.send(FromAgent::NeedBinary {
                    sha256,
                    offset: next,
                });
            }
            Ok(Chunk::Stale) => return Ok(()),
            Ok(Chunk::Done) => {
                let pending = &self.pending;
                self.downloads.prune(KEEP_BLOBS, |sha| {
                    pending.iter().any(|j| blobs_of(j).any(|b| b == sha))
                });
                Ok(())
            }
            Err(e) => Err(e),
        };
        // Storing a large binary takes a while: say we are still here.
        self.heartbeat()?;
        if let Err(e) = stored {
            let (failed, rest): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|j| blobs_of(j).any(|b| b == sha256));
            self.pending = rest;
            for job in failed {
                self.failed(job.run_id, e.to_string())?;
            }
        }
        Ok(())
    }

    fn on_go(&mut self, run_id: &str) {
        if let Some(w) = self.workers.get_mut(run_id) {
            w.go();
        }
    }

    fn on_stop(&mut self, run_id: String) -> Result<(), TransportError> {
        if self.pending.iter().any(|j| j.run_id == run_id) {
            // Not started yet (still fetching its files): it never will be.
            self.pending.retain(|j| j.run_id != run_id);
            return self.send(FromAgent::WorkerExited {
                run_id,
                code: Some(0),
                error: None,
            });
        }
        if let Some(w) = self.workers.get_mut(&run_id)
            && w.stopping.is_none()
        {
            w.terminate();
            w.stopping = Some(Instant::now());
        }
        Ok(())
    }

    /// Still not welcomed after [`REGISTER_WARNING`]: says why it may be, once, and goes on
    /// trying.
    fn warn_if_not_welcomed(&mut self) {
        if !self.warned
            && self
                .registering
                .is_some_and(|t| t.elapsed() > REGISTER_WARNING)
        {
            self.warned = true;
            eprintln!(
                "loads agent: no answer from the broker at {} after {} s; is it running, and does it accept this agent's key (--curve-key, --broker-key)? Still trying.",
                self.opts.broker,
                REGISTER_WARNING.as_secs()
            );
        }
    }

    /// Starts the jobs whose blobs are all here.
    fn start_ready_jobs(&mut self) -> Result<(), TransportError> {
        let (ready, waiting): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|j| blobs_of(j).all(|sha| self.downloads.has(sha)));
        self.pending = waiting;
        for job in ready {
            let Some(binary) = self.downloads.path(&job.binary_sha256) else {
                continue;
            };
            let workers = &self.workers;
            match Worker::start(&self.opts, &job, &binary, |id| workers.contains_key(id)) {
                Ok(w) => {
                    self.workers.insert(job.run_id.clone(), w);
                    self.send(FromAgent::WorkerReady { run_id: job.run_id })?;
                }
                Err(e) => self.failed(job.run_id, e.to_string())?,
            }
        }
        Ok(())
    }

    /// Kills the workers stopping for longer than [`STOP_GRACE`], and reports those that ended.
    fn reap_workers(&mut self) -> Result<(), TransportError> {
        for w in self.workers.values_mut() {
            if w.stopping.is_some_and(|t| t.elapsed() > STOP_GRACE) {
                w.kill();
            }
        }
        let finished: Vec<String> = self
            .workers
            .iter_mut()
            .filter_map(|(run, w)| w.exited().then(|| run.clone()))
            .collect();
        for run_id in finished {
            if let Some(w) = self.workers.remove(&run_id) {
                let (code, error) = w.exit();
                self.send(FromAgent::WorkerExited {
                    run_id,
                    code,
                    error,
                })?;
            }
        }
        Ok(())
    }

    fn heartbeat_when_due(&mut self) -> Result<(), TransportError> {
        if self.last_beat.elapsed() >= self.opts.heartbeat {
            self.heartbeat()?;
        }
        Ok(())
    }

    /// Stops: the workers stop their users and flush (SIGTERM), then are killed.
    fn shut_down(&mut self) {
        if self.registering.is_some() {
            // No broker takes our messages: nothing to wait for when the socket closes.
            let _ = self.socket.set_linger(0);
        }
        for w in self.workers.values_mut() {
            w.terminate();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for w in self.workers.values_mut() {
            w.end_by(deadline);
        }
    }
}
