//! The distributed runner: hands a run to a broker and rebuilds its results, through the same
//! [`TestResult`] and outputs as a local run, from the events the broker publishes.
//!
//! Data enters as [`RunArgs`] (checked as a local run would check them) and the files to ship;
//! [`DistributedRunner`] uploads this binary and those files (content-addressed, only what the
//! broker lacks), submits the run and follows it (`follow`: the caller's loop over the
//! broker's publications, Ctrl-C, missed events), and the finished [`TestResult`] leaves. The
//! other sides of a cluster run are here too: the worker ([`run_worker`]: the local or external
//! runner with the relay in place of the test result), the rebuilding of stored runs
//! ([`report`], [`attach`]; paged in `pages`), run ids given by a prefix ([`resolve_run`], in
//! `lookup`) and the health checks ([`ping`], [`check_cluster`]).

mod check;
mod follow;
mod load;
mod lookup;
mod pages;
mod replay;
mod worker;

pub use check::{check_cluster, ping};
pub use load::ClusterLoad;
pub use lookup::resolve_run;
pub use replay::{attach, report, watch};
pub use worker::run_worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{RunArgs, RunError, Runner};
use crate::config::UsageError;
use crate::result::{RunMeta, TestResult};
use crate::transport::client::BrokerClient;
use crate::transport::{
    CallerRequest, HEARTBEAT_TOPIC, PingInfo, TransportError, platform, reachable, sha256_hex, z,
};
use follow::{Followed, OnCtrlC, ctrl_c_counter, follow};

/// How long the caller waits for the broker's answers.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The caller gives up on a broker silent for this long.
const BROKER_SILENCE: Duration = Duration::from_secs(5);

impl From<TransportError> for RunError {
    fn from(e: TransportError) -> Self {
        RunError::Cluster(e.to_string())
    }
}

/// Runs a test on a cluster.
pub struct DistributedRunner {
    /// The checked arguments (full test name, run id).
    args: RunArgs,
    agents: u64,
    broker: String,
    /// Files for the workers' test directories: where they go, and where they are here.
    files: Vec<(String, std::path::PathBuf)>,
    /// The dashboard's control of the run's load (a run of a registered test).
    load: Option<Arc<ClusterLoad>>,
}

impl DistributedRunner {
    /// A run of `args` on `agents` agents of the broker whose front socket is `broker`. The test
    /// and the plan are checked here, as for a local run.
    pub fn new(args: RunArgs, agents: u64, broker: &str) -> Result<Self, RunError> {
        if agents == 0 {
            return Err(RunError::Usage(UsageError::new(
                "--agents",
                "--agents must be at least 1",
            )));
        }
        // The test and plan are checked as a local run would check them: a registered test,
        // or an external command.
        let runner = super::runner_for(args)?;
        let mut args = runner.args().clone();
        let load = runner
            .load_control()
            .map(|c| Arc::new(ClusterLoad::new(c, broker)));
        // The data files were read: the broker leases the rows of unique sources by number.
        for spec in &mut args.plan.data {
            spec.rows = runner.data().spec(&spec.name).and_then(|s| s.rows);
            // What was just read and counted is what must travel: its hash, checked at upload.
            spec.sha256 = Some(sha256_hex(&read_data_file(&spec.file)?));
        }
        drop(runner);
        super::checked_plan(&args)?;
        Ok(DistributedRunner {
            args,
            agents,
            broker: broker.to_owned(),
            files: Vec::new(),
            load,
        })
    }

    /// The control of this run's load while it runs (the dashboard's), for a run of a
    /// registered test (an external runner's processes pace themselves).
    pub fn load_control(&self) -> Option<Arc<ClusterLoad>> {
        self.load.clone()
    }

    /// Ships the files matching `globs` into each worker's test directory. A relative glob keeps
    /// the matched file's relative path there; an absolute one puts the file at the top by its
    /// name. A glob that matches no file is an error.
    pub fn include_files(mut self, globs: &[String]) -> Result<Self, RunError> {
        for g in globs {
            let paths = glob::glob(g).map_err(|e| {
                RunError::Usage(UsageError::new(
                    "--include-file",
                    format!("invalid --include-file {g:?}: {e}"),
                ))
            })?;
            let mut matched = 0;
            for p in paths.flatten().filter(|p| p.is_file()) {
                let dest = if p.is_absolute() {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                } else {
                    p.to_string_lossy().into_owned()
                };
                if !crate::transport::safe_relative_path(&dest) {
                    return Err(RunError::Usage(UsageError::new(
                        "--include-file",
                        format!(
                            "--include-file {g:?} matches {}, which would land outside the test directory; use paths below the current directory",
                            p.display()
                        ),
                    )));
                }
                self.files.push((dest, p));
                matched += 1;
            }
            if matched == 0 {
                return Err(RunError::Usage(UsageError::new(
                    "--include-file",
                    format!("--include-file {g:?} matches no file"),
                )));
            }
        }
        Ok(self)
    }

    fn meta(&self) -> RunMeta {
        let mut meta = super::run_meta(&self.args);
        meta.agents = self.agents;
        meta.planned_hits = meta.planned_hits.and_then(|h| h.checked_mul(self.agents));
        meta.plan = format!("{} on each of {} agents", meta.plan, self.agents);
        meta
    }
}

/// Where a run's data files land in each worker's test directory.
const DATA_DIR: &str = "loads-data";

/// The content of the data file at `path` (read and checked when the run was made; bounded
/// again here).
fn read_data_file(path: &str) -> Result<Vec<u8>, RunError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(crate::data::MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| {
            RunError::Usage(UsageError::new(
                "--data",
                format!("cannot read the data file {path}: {e}"),
            ))
        })?;
    if bytes.len() as u64 > crate::data::MAX_FILE_BYTES {
        return Err(RunError::Usage(UsageError::new(
            "--data",
            format!("the data file {path} grew beyond the limit while the run started"),
        )));
    }
    Ok(bytes)
}

/// Subscribes to the broker's publisher and waits for its first heartbeat, so that nothing
/// published afterwards is missed.
fn subscribe(
    ctx: &zmq::Context,
    publisher: &str,
    heartbeat: &str,
) -> Result<zmq::Socket, TransportError> {
    let sub = z("subscriber", ctx.socket(zmq::SUB))?;
    z("linger", sub.set_linger(0))?;
    z("subscriber queue", sub.set_rcvhwm(100_000))?;
    crate::transport::security::secure_client(&sub)?;
    // One SUB socket on both of the broker's PUB sockets: runs and heartbeat.
    z(
        &format!("connecting to {publisher}"),
        sub.connect(publisher),
    )?;
    z(
        &format!("connecting to {heartbeat}"),
        sub.connect(heartbeat),
    )?;
    z("subscribe", sub.set_subscribe(HEARTBEAT_TOPIC.as_bytes()))?;
    let deadline = Instant::now() + BROKER_SILENCE;
    while Instant::now() < deadline {
        let mut items = [sub.as_poll_item(zmq::POLLIN)];
        crate::transport::poll(&mut items, 100)?;
        if items[0].is_readable()
            && let Ok(frames) = sub.recv_multipart(0)
            && frames.first().map(Vec::as_slice) == Some(HEARTBEAT_TOPIC.as_bytes())
        {
            return Ok(sub);
        }
    }
    Err(TransportError::NoBroker(heartbeat.to_owned()))
}

/// Connects to the broker and its publisher (subscribed, heartbeat seen).
fn connect(broker: &str) -> Result<(BrokerClient, zmq::Socket), RunError> {
    let client = BrokerClient::connect(broker, REPLY_TIMEOUT)?;
    let info: PingInfo = serde_json::from_value(client.call(&CallerRequest::Ping, None)?)
        .map_err(|e| RunError::Cluster(format!("bad answer to ping: {e}")))?;
    let sub = subscribe(
        client.context(),
        &reachable(&info.publisher, broker),
        &reachable(&info.heartbeat, broker),
    )?;
    Ok((client, sub))
}

impl DistributedRunner {
    /// Makes sure the broker holds the blob `bytes` (sent only when it does not have it yet);
    /// returns its SHA-256.
    fn upload(&self, client: &BrokerClient, bytes: &[u8]) -> Result<String, RunError> {
        let sha = sha256_hex(bytes);
        let present = client.call(
            &CallerRequest::HasBinary {
                sha256: sha.clone(),
            },
            None,
        )?["present"]
            .as_bool()
            .unwrap_or(false);
        if !present {
            // In chunks: the broker never takes (nor allocates) a huge message.
            let slow = BrokerClient::connect(&self.broker, Duration::from_secs(60))?;
            let total = bytes.len() as u64;
            // A name of its own: another run of this caller may be sending the same blob.
            let upload = Some(crate::runner::new_run_id());
            let mut offset = 0usize;
            loop {
                let end = (offset + crate::transport::BINARY_CHUNK).min(bytes.len());
                let answer = slow.call(
                    &CallerRequest::PutBinary {
                        sha256: sha.clone(),
                        offset: offset as u64,
                        total: Some(total),
                        upload: upload.clone(),
                    },
                    Some(&bytes[offset..end]),
                )?;
                offset = end;
                // Complete before the end: another caller's upload of it just completed.
                if offset >= bytes.len() || answer["complete"].as_bool() == Some(true) {
                    break;
                }
            }
        }
        Ok(sha)
    }

    /// Sends the run to the broker (and the test binary when the broker lacks it); returns the
    /// run id.
    fn submit(&self, client: &BrokerClient) -> Result<String, RunError> {
        // The job carries this very binary, content-addressed.
        let exe = std::env::current_exe()
            .map_err(|e| RunError::Cluster(format!("cannot find this program: {e}")))?;
        let bytes = std::fs::read(&exe)
            .map_err(|e| RunError::Cluster(format!("cannot read {}: {e}", exe.display())))?;
        let sha = self.upload(client, &bytes)?;
        drop(bytes);
        let mut files = Vec::new();
        for (dest, path) in &self.files {
            let content = std::fs::read(path).map_err(|e| {
                RunError::Usage(UsageError::new(
                    "--include-file",
                    format!("cannot read the included file {}: {e}", path.display()),
                ))
            })?;
            files.push(crate::transport::IncludedFile {
                path: dest.clone(),
                sha256: self.upload(client, &content)?,
            });
        }
        // Data files travel like included files, content-addressed, into `loads-data/` of each
        // test directory; the job names them there, with their hash.
        let mut args = self.args.clone();
        for spec in &mut args.plan.data {
            let content = read_data_file(&spec.file)?;
            if spec.sha256.as_deref() != Some(sha256_hex(&content).as_str()) {
                return Err(RunError::Usage(UsageError::new(
                    "--data",
                    format!(
                        "the data file {} of '{}' changed while the run started (its rows were counted before): start the run again once the file is complete",
                        spec.file, spec.name
                    ),
                )));
            }
            let sha256 = self.upload(client, &content)?;
            let ext = std::path::Path::new(&spec.file)
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default();
            let dest = format!("{DATA_DIR}/{}{ext}", spec.name);
            files.push(crate::transport::IncludedFile {
                path: dest.clone(),
                sha256: sha256.clone(),
            });
            spec.file = dest;
            spec.sha256 = Some(sha256);
        }
        let request = CallerRequest::Run(Box::new(crate::transport::RunRequest {
            args,
            agents: self.agents,
            binary_sha256: sha,
            platform: platform(),
            meta: self.meta(),
            files,
        }));
        match client.request(&request, None)? {
            Ok(v) => Ok(v["run_id"].as_str().unwrap_or_default().to_owned()),
            Err(r) if r.code == "not_enough_agents" => {
                Err(RunError::Usage(UsageError::new("--agents", r.message)))
            }
            Err(r) => Err(RunError::Cluster(r.message)),
        }
    }

    /// Starts the run and returns its id at once (`--detach`).
    pub fn detach(&self) -> Result<String, RunError> {
        let client = BrokerClient::connect(&self.broker, REPLY_TIMEOUT)?;
        self.submit(&client)
    }

    /// Submits the run and follows it with the run's outputs; `interactive`: Ctrl-C asks
    /// whether to stop or detach (and stops without a terminal).
    fn submit_and_follow(&self, interactive: bool) -> Result<Followed, RunError> {
        // Outputs open their files and the baseline is read before anything is submitted: a bad
        // path stops here, not after the agents have started.
        let mut result = crate::output::build_result(
            self.meta(),
            &self.args.report,
            self.args.plan.abort_on_threshold,
        )?;
        // Ctrl-C is counted from now on: one pressed while the binary uploads stops the run as
        // soon as it is submitted (it then has not started: it ends at once).
        if interactive {
            ctrl_c_counter();
        }
        let (client, sub) = connect(&self.broker)?;
        let run_id = self.submit(&client)?;
        // The broker keeps our run id unless it was taken.
        result.set_run_id(&run_id);
        if let Some(load) = &self.load {
            load.submitted(&run_id);
        }
        result.start();
        let on_ctrl_c = if interactive {
            OnCtrlC::AskOrStop
        } else {
            OnCtrlC::Ignore
        };
        follow(
            &client,
            &sub,
            result,
            &run_id,
            0,
            on_ctrl_c,
            self.load.as_deref(),
        )
    }

    /// Runs and follows the run; Ctrl-C asks whether to stop it or detach. Returns `None` when
    /// the user detached (the run id is printed).
    pub fn run(&mut self) -> Result<Option<TestResult>, RunError> {
        match self.submit_and_follow(true)? {
            Followed::Ended(r) => Ok(Some(*r)),
            Followed::Detached(id) => {
                println!(
                    "Detached from run {id}: it goes on; `loads attach {id}` follows it again"
                );
                Ok(None)
            }
        }
    }
}

impl Runner for DistributedRunner {
    fn execute(&mut self) -> Result<TestResult, RunError> {
        match self.submit_and_follow(false)? {
            Followed::Ended(r) => Ok(*r),
            Followed::Detached(_) => Err(RunError::Cluster("detached".into())),
        }
    }
}
