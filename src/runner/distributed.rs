//! The distributed runner: hands a run to a broker and rebuilds its results, through the same
//! [`TestResult`] and outputs as a local run, from the events the broker publishes. Also the
//! worker side ([`run_worker`]: the local or external runner as a worker, with the relay in
//! place of the test result) and [`report`], which rebuilds a stored run page by page for
//! `loads report`.

use std::time::{Duration, Instant};

use super::{LocalRunner, RunArgs, RunError, Runner};
use crate::result::{Event, EventSink, RunMeta, TestResult};
use crate::transport::client::BrokerClient;
use crate::transport::relay::Relay;
use crate::transport::{
    CallerRequest, HEARTBEAT_TOPIC, Job, PingInfo, Publication, StoredRun, TransportError,
    from_frame, platform, reachable, sha256_hex, z,
};

/// How long a worker waits for the go of its run.
const GO_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the caller waits for the broker's answers.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The caller gives up on a broker silent for this long.
const BROKER_SILENCE: Duration = Duration::from_secs(5);
/// How long the caller's status checks wait for an answer (a broker gone is noticed by its
/// silence within [`BROKER_SILENCE`], never by a request left hanging).
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a caller that stopped a run waits for its end.
const STOP_WAIT: Duration = Duration::from_secs(30);

impl From<TransportError> for RunError {
    fn from(e: TransportError) -> Self {
        RunError::Cluster(e.to_string())
    }
}

/// Runs a test on a cluster.
pub struct DistributedRunner {
    /// The checked arguments (full test name, run id).
    args: RunArgs,
    plan: super::Plan,
    agents: u64,
    broker: String,
    /// Files for the workers' test directories: where they go, and where they are here.
    files: Vec<(String, std::path::PathBuf)>,
}

impl DistributedRunner {
    /// A run of `args` on `agents` agents of the broker whose front socket is `broker`. The test
    /// and the plan are checked here, as for a local run.
    pub fn new(args: RunArgs, agents: u64, broker: &str) -> Result<Self, RunError> {
        if agents == 0 {
            return Err(RunError::Usage("--agents must be at least 1".into()));
        }
        // The test and plan are checked as a local run would check them: a registered test,
        // or an external command.
        let args = if args.test_runner.is_some() {
            super::ExternalRunner::new(args)?.args().clone()
        } else {
            LocalRunner::new(args)?.args().clone()
        };
        let plan = super::checked_plan(&args)?;
        Ok(DistributedRunner {
            args,
            plan,
            agents,
            broker: broker.to_owned(),
            files: Vec::new(),
        })
    }

    /// Ships the files matching `globs` into each worker's test directory. A relative glob keeps
    /// the matched file's relative path there; an absolute one puts the file at the top by its
    /// name. A glob that matches no file is an error.
    pub fn include_files(mut self, globs: &[String]) -> Result<Self, RunError> {
        for g in globs {
            let paths = glob::glob(g)
                .map_err(|e| RunError::Usage(format!("invalid --include-file {g:?}: {e}")))?;
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
                    return Err(RunError::Usage(format!(
                        "--include-file {g:?} matches {}, which would land outside the test directory; use paths below the current directory",
                        p.display()
                    )));
                }
                self.files.push((dest, p));
                matched += 1;
            }
            if matched == 0 {
                return Err(RunError::Usage(format!(
                    "--include-file {g:?} matches no file"
                )));
            }
        }
        Ok(self)
    }

    fn meta(&self) -> RunMeta {
        let mut meta = super::run_meta(&self.args, &self.plan);
        meta.agents = self.agents;
        meta.planned_hits = meta.planned_hits.and_then(|h| h.checked_mul(self.agents));
        meta.plan = format!("{} on each of {} agents", meta.plan, self.agents);
        meta
    }
}

/// Pings the broker at `endpoint`.
pub fn ping(endpoint: &str) -> Result<PingInfo, TransportError> {
    let client = BrokerClient::connect(endpoint, REPLY_TIMEOUT)?;
    let v = client.call(&CallerRequest::Ping, None)?;
    serde_json::from_value(v).map_err(|e| TransportError::Message(e.to_string()))
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

/// How following a run ended.
enum Followed {
    /// The run ended (or the broker went away); the result is finished.
    Ended(Box<TestResult>),
    /// The user detached; the run goes on.
    Detached(String),
}

/// The process's interrupts, for the synchronous caller loop: Ctrl-C presses are counted (the
/// second one quits at once).
fn ctrl_c_counter() -> &'static crate::config::signals::Interrupts {
    let i = crate::config::signals::interrupts();
    i.quit_on_second_press();
    i
}

/// What Ctrl-C (SIGINT) does to a caller following a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnCtrlC {
    /// Nothing: no handler (`check-cluster`, a runner driven by code).
    Ignore,
    /// Asks "(s)top or (d)etach?" on a terminal; stops the run without one (`loads run`).
    AskOrStop,
    /// Asks on a terminal; detaches without one (`loads attach`: an observer does not stop
    /// what it did not start).
    AskOrDetach,
}

/// Asks "(s)top the test or (d)etach?"; `without_terminal` when there is no terminal to ask.
fn ask_stop_or_detach(without_terminal: bool) -> bool {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return without_terminal;
    }
    loop {
        eprint!("\n(s)top the test or (d)etach? ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return true;
        }
        match line.trim() {
            "s" | "S" | "stop" => return true,
            "d" | "D" | "detach" => return false,
            _ => {}
        }
    }
}

/// Receives the publications of `run_id` into `result` until the run ends, the broker goes
/// away, or the user detaches. Events numbered `skip` or less were already taken.
fn follow(
    client: &BrokerClient,
    sub: &zmq::Socket,
    mut result: TestResult,
    run_id: &str,
    skip: u64,
    on_ctrl_c: OnCtrlC,
) -> Result<Followed, RunError> {
    // Counted from when the caller installed it (before the run was submitted, for `run`).
    let presses = (on_ctrl_c != OnCtrlC::Ignore).then(ctrl_c_counter);
    z("subscribe", sub.set_subscribe(run_id.as_bytes()))?;
    let mut broker_pid: Option<u32> = None;
    let mut last_status = Instant::now();
    let mut handled = 0;
    let mut stopping = false;
    let mut stopped_at: Option<Instant> = None;
    let mut last_beat = Instant::now();
    let mut last_tick = Instant::now();
    // Which events (by sequence number) arrived, to fetch the missed ones at the end.
    let mut seen: Vec<bool> = Vec::new();
    // Whether a worker has started (attaching to a running run: it has).
    let mut went = skip > 0;
    // How long the run had lasted at its last event (a run cut short by a lost broker ends
    // there: the silence that follows is not part of its duration).
    let mut last_event: Option<Duration> = None;
    loop {
        // SIGTERM stops the run as a Ctrl-C without a terminal would.
        if let Some(p) = &presses
            && (p.presses() > handled || (p.terminated() && !stopping))
        {
            handled = p.presses();
            if !stopping && (p.terminated() || ask_stop_or_detach(on_ctrl_c == OnCtrlC::AskOrStop))
            {
                stopping = true;
                stopped_at = Some(Instant::now());
                let stop = CallerRequest::Stop {
                    run_id: run_id.to_owned(),
                };
                result.set_interrupted();
                if !went {
                    // Still waiting for its workers: nothing ran, nothing to flush; the wait
                    // ends now, whatever the workers do.
                    let _ = client.request_within(&stop, None, STATUS_TIMEOUT);
                    eprintln!("Stopped run {run_id} before it started");
                    result.set_waiting(None);
                    result.finish();
                    return Ok(Followed::Ended(Box::new(result)));
                }
                eprintln!("Stopping run {run_id}: its workers flush what they have");
                // `unknown_run`: it is ending on its own; its end is on the way.
                let _ = client.request_within(&stop, None, STATUS_TIMEOUT);
            } else if !stopping {
                return Ok(Followed::Detached(run_id.to_owned()));
            }
        }
        let mut items = [sub.as_poll_item(zmq::POLLIN)];
        // EINTR from Ctrl-C is not an error: the loop looks at the press first.
        let _ = zmq::poll(&mut items, 100);
        if items[0].is_readable() {
            while let Ok(frames) = sub.recv_multipart(zmq::DONTWAIT) {
                let (Some(topic), Some(body)) = (frames.first(), frames.get(1)) else {
                    continue;
                };
                if topic.as_slice() == HEARTBEAT_TOPIC.as_bytes() {
                    if let Ok(Publication::Heartbeat { pid }) = from_frame::<Publication>(body) {
                        match broker_pid {
                            None => broker_pid = Some(pid),
                            Some(p) if p != pid => {
                                // Another broker process: the one that had the run is gone.
                                if let Some(d) = last_event {
                                    result.set_timing(result.started(), d);
                                }
                                result.add_run_problem(format!(
                                    "the broker at {} restarted during the run; the results received so far are shown",
                                    client.endpoint()
                                ));
                                result.set_waiting(None);
                                result.finish();
                                return Ok(Followed::Ended(Box::new(result)));
                            }
                            _ => {}
                        }
                    }
                    last_beat = Instant::now();
                    continue;
                }
                if topic.as_slice() != run_id.as_bytes() {
                    continue;
                }
                // One event, numbered `seq` in the run, taken once.
                let mut take = |seq: u64, envelope: crate::result::Envelope| {
                    if seq <= skip {
                        return;
                    }
                    let i = seq as usize;
                    if seen.len() <= i {
                        seen.resize(i + 1, false);
                    }
                    if seen[i] {
                        return;
                    }
                    seen[i] = true;
                    last_event = Some(result.duration());
                    match envelope.event {
                        Event::StartTestRun => {
                            // The first worker started: the run is dated from the go, not
                            // from its submission (binary transfer, start-up).
                            if !went {
                                went = true;
                                result.set_waiting(None);
                                result.set_started(chrono::Utc::now());
                            }
                        }
                        Event::StopTestRun => {}
                        event => result.ingest(event),
                    }
                };
                match from_frame::<Publication>(body) {
                    Ok(Publication::Event { seq, envelope }) => take(seq, envelope),
                    Ok(Publication::Events { first, envelopes }) => {
                        for (i, envelope) in envelopes.into_iter().enumerate() {
                            take(first + i as u64, envelope);
                        }
                    }
                    Ok(Publication::Waiting {
                        ready,
                        agents,
                        waiting_for,
                        deadline,
                    }) if !went => {
                        result.set_waiting(Some(format!(
                            "waiting for workers: {ready}/{agents} ready; the run starts without {} in {deadline:.0}s",
                            if waiting_for.is_empty() {
                                "the others".to_owned()
                            } else {
                                waiting_for.join(", ")
                            }
                        )));
                    }
                    Ok(Publication::End {
                        status,
                        lost_agents,
                        errors,
                        events,
                        unstored,
                        duration,
                    }) => {
                        result.set_waiting(None);
                        // The broker's measure of the run, from the go to its last worker's end:
                        // the same as the stored row's, without the waits that followed.
                        if let Some(d) = duration.and_then(|d| Duration::try_from_secs_f64(d).ok())
                        {
                            result.set_timing(result.started(), d);
                        }
                        let expected = events.saturating_sub(skip);
                        let mut received = seen.iter().filter(|s| **s).count() as u64;
                        if received < expected {
                            // The publisher dropped some (a slow subscriber): take them from
                            // the broker's storage, so that the totals are exact.
                            received += take_missed(client, run_id, skip, &seen, &mut result)?.1;
                        }
                        if received < expected {
                            result.add_run_problem(format!(
                                "{} of the run's {expected} events reached neither this caller nor the broker's storage: these results are incomplete",
                                expected - received
                            ));
                        }
                        if unstored > 0 {
                            result.add_run_problem(format!(
                                "the broker could not store {unstored} of the run's {events} events (its database failed: see the broker's log); this summary has them, but `loads report {run_id}` will not"
                            ));
                        }
                        for a in lost_agents {
                            result.add_run_problem(lost_agent_problem(&a));
                        }
                        for e in errors {
                            result.add_run_problem(e);
                        }
                        if status == "stopped" && result.aborted().is_none() {
                            result.set_interrupted();
                        }
                        result.ingest(Event::StopTestRun);
                        result.finish();
                        return Ok(Followed::Ended(Box::new(result)));
                    }
                    _ => {}
                }
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(200) {
            last_tick = Instant::now();
            result.tick(0);
            if !stopping && result.should_stop() {
                stopping = true;
                eprintln!(
                    "Stopping run {run_id}: {}",
                    result.aborted().unwrap_or("a threshold failed")
                );
                let stop = CallerRequest::Stop {
                    run_id: run_id.to_owned(),
                };
                let _ = client.request(&stop, None)?;
            }
        }
        // The end of the run can be lost like any publication: ask now and then (briefly: a
        // broker that went away is noticed by its silence, not by a hanging request).
        if last_status.elapsed() >= Duration::from_secs(5) {
            last_status = Instant::now();
            if let Ok(Ok(v)) = client.request_within(&CallerRequest::Runs, None, STATUS_TIMEOUT) {
                let rows: Vec<crate::transport::RunRow> =
                    serde_json::from_value(v["runs"].clone()).unwrap_or_default();
                if rows
                    .iter()
                    .any(|r| r.run_id == run_id && r.status != "running")
                {
                    let (stored, _) = take_missed(client, run_id, skip, &seen, &mut result)?;
                    for a in &stored.row.lost_agents {
                        result.add_run_problem(lost_agent_problem(a));
                    }
                    if stored.row.unstored > 0 {
                        result.add_run_problem(format!(
                            "the broker could not store {} of the run's events (its database failed: see the broker's log)",
                            stored.row.unstored
                        ));
                    }
                    if stored.row.status != "finished" {
                        result.add_run_problem(format!("the run ended as {}", stored.row.status));
                    }
                    result.ingest(Event::StopTestRun);
                    result.finish();
                    return Ok(Followed::Ended(Box::new(result)));
                }
            }
        }
        if last_beat.elapsed() > BROKER_SILENCE {
            // Not an interruption (exit 130): the run is lost to this caller (exit 1).
            if let Some(d) = last_event {
                result.set_timing(result.started(), d);
            }
            result.add_run_problem(format!(
                "the broker at {} went away (no heartbeat for {}s); the results received so far are shown",
                client.endpoint(),
                BROKER_SILENCE.as_secs()
            ));
            result.set_waiting(None);
            result.finish();
            return Ok(Followed::Ended(Box::new(result)));
        }
        if stopped_at.is_some_and(|t| t.elapsed() > STOP_WAIT) {
            result.add_run_problem(format!(
                "the run did not end within {}s of the stop; the results received so far are shown",
                STOP_WAIT.as_secs()
            ));
            result.finish();
            return Ok(Followed::Ended(Box::new(result)));
        }
    }
}

/// What the summary says of an agent lost during a run.
fn lost_agent_problem(agent: &str) -> String {
    format!(
        "agent {agent} was lost during the run (no heartbeat); the results it had sent are included, and the run's duration (so its rates per second) includes the time the broker took to notice (its --agent-timeout)"
    )
}

/// Fetches the stored run and gives `result` the events numbered above `skip` that are not
/// `seen` (publications the subscriber missed); returns the stored run and how many events it
/// gave.
fn take_missed(
    client: &BrokerClient,
    run_id: &str,
    skip: u64,
    seen: &[bool],
    result: &mut TestResult,
) -> Result<(StoredRun, u64), RunError> {
    let (first, next) = fetch_page(client, run_id, None)?;
    let mut header = first.clone();
    header.events.clear();
    let mut taken = 0;
    each_stored_event(client, run_id, first, next, |seq, env| {
        let missed = seq > skip && !seen.get(seq as usize).copied().unwrap_or(false);
        if missed {
            taken += 1;
            if !matches!(env.event, Event::StartTestRun | Event::StopTestRun) {
                result.ingest(env.event);
            }
        }
    })?;
    Ok((header, taken))
}

/// One page of a stored run (see [`CallerRequest::GetRun`]) and the cursor of the next one.
fn fetch_page(
    client: &BrokerClient,
    run_id: &str,
    after: Option<i64>,
) -> Result<(StoredRun, Option<i64>), RunError> {
    let mut v = match client.request(
        &CallerRequest::GetRun {
            run_id: run_id.to_owned(),
            after,
        },
        None,
    )? {
        Ok(v) => v,
        Err(r) if r.code == "unknown_run" => return Err(RunError::Usage(r.message)),
        Err(r) => return Err(RunError::Cluster(r.message)),
    };
    let run: StoredRun = serde_json::from_value(v["run"].take())
        .map_err(|e| RunError::Cluster(format!("bad stored run: {e}")))?;
    Ok((run, v["next"].as_i64()))
}

/// Calls `f(seq, event)` for every stored event of a run (numbered from 1), the events of
/// `first` and then of the following pages, fetched one at a time: memory stays bounded by a
/// page whatever the size of the run.
fn each_stored_event(
    client: &BrokerClient,
    run_id: &str,
    first: StoredRun,
    mut next: Option<i64>,
    mut f: impl FnMut(u64, crate::result::Envelope),
) -> Result<u64, RunError> {
    let mut seq = 0;
    for env in first.events {
        seq += 1;
        f(seq, env);
    }
    while let Some(after) = next {
        let (page, following) = fetch_page(client, run_id, Some(after))?;
        for env in page.events {
            seq += 1;
            f(seq, env);
        }
        next = following;
    }
    Ok(seq)
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
                RunError::Usage(format!(
                    "cannot read the included file {}: {e}",
                    path.display()
                ))
            })?;
            files.push(crate::transport::IncludedFile {
                path: dest.clone(),
                sha256: self.upload(client, &content)?,
            });
        }
        let request = CallerRequest::Run(Box::new(crate::transport::RunRequest {
            args: self.args.clone(),
            agents: self.agents,
            binary_sha256: sha,
            platform: platform(),
            meta: self.meta(),
            files,
        }));
        match client.request(&request, None)? {
            Ok(v) => Ok(v["run_id"].as_str().unwrap_or_default().to_owned()),
            Err(r) if r.code == "not_enough_agents" => Err(RunError::Usage(r.message)),
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
        let mut result = crate::output::build_result(self.meta(), &self.args)?;
        // Ctrl-C is counted from now on: one pressed while the binary uploads stops the run as
        // soon as it is submitted (it then has not started: it ends at once).
        if interactive {
            ctrl_c_counter();
        }
        let (client, sub) = connect(&self.broker)?;
        let run_id = self.submit(&client)?;
        // The broker keeps our run id unless it was taken.
        result.set_run_id(&run_id);
        result.start();
        let on_ctrl_c = if interactive {
            OnCtrlC::AskOrStop
        } else {
            OnCtrlC::Ignore
        };
        follow(&client, &sub, result, &run_id, 0, on_ctrl_c)
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

/// Follows a run of the broker at `broker` from where it is (its stored events first), with
/// `outputs`. `None` for `run_id` picks the active run, or asks which when there are several.
pub fn attach(
    broker: &str,
    run_id: Option<&str>,
    view: &RunArgs,
) -> Result<Option<TestResult>, RunError> {
    let (client, sub) = connect(broker)?;
    let run_id = match run_id {
        Some(r) => r.to_owned(),
        None => {
            let v = client.call(&CallerRequest::Ping, None)?;
            let active: Vec<String> =
                serde_json::from_value(v["active_runs"].clone()).unwrap_or_default();
            match active.as_slice() {
                [] => {
                    return Err(RunError::Usage(
                        "no run is active on this broker (`loads runs` lists past runs)".into(),
                    ));
                }
                [one] => one.clone(),
                many => choose(many)?,
            }
        }
    };
    let (run, next) = fetch_page(&client, &run_id, None)?;
    if run.row.status != "running" {
        return replay_pages(&client, run, next, view).map(Some);
    }
    let mut result = crate::output::build_result(
        RunMeta {
            run_id: run_id.clone(),
            ..run.meta.clone()
        },
        view,
    )?;
    result.start();
    if let Ok(started) = chrono::DateTime::parse_from_rfc3339(&run.row.started) {
        result.set_started(started.with_timezone(&chrono::Utc));
    }
    let skip = each_stored_event(&client, &run_id, run, next, |_, env| {
        if !matches!(env.event, Event::StartTestRun | Event::StopTestRun) {
            result.ingest(env.event);
        }
    })?;
    match follow(&client, &sub, result, &run_id, skip, OnCtrlC::AskOrDetach)? {
        Followed::Ended(r) => Ok(Some(*r)),
        Followed::Detached(id) => {
            println!("Detached from run {id}: it goes on; `loads attach {id}` follows it again");
            Ok(None)
        }
    }
}

/// Asks which of several active runs to attach to (or explains, without a terminal).
fn choose(runs: &[String]) -> Result<String, RunError> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return Err(RunError::Usage(format!(
            "several runs are active; name one: `loads attach RUN_ID` with one of {}",
            runs.join(", ")
        )));
    }
    eprintln!("Several runs are active:");
    for (i, r) in runs.iter().enumerate() {
        eprintln!("  {}) {r}", i + 1);
    }
    loop {
        eprint!("Attach to which (1-{})? ", runs.len());
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return Err(RunError::Usage("no run chosen".into()));
        }
        if let Ok(n) = line.trim().parse::<usize>()
            && (1..=runs.len()).contains(&n)
        {
            return Ok(runs[n - 1].clone());
        }
    }
}

/// The worker: runs a job with the local runner, sending its events through a relay.
pub fn run_worker(job: &Job) -> Result<(), RunError> {
    // A registered test runs in this process; an external one in processes of its own.
    enum Either {
        Native(LocalRunner),
        External(super::ExternalRunner),
    }
    let runner = if job.args.test_runner.is_some() {
        Either::External(
            super::ExternalRunner::new(job.args.clone())?
                .collect_every(Duration::from_secs(1))
                .agent_id(&job.agent_id)
                .handle_ctrl_c(true),
        )
    } else {
        Either::Native(
            LocalRunner::new(job.args.clone())?
                .collect_every(Duration::from_secs(1))
                .handle_ctrl_c(true),
        )
    };
    let relay = Relay::connect(&job.receiver, &job.run_id, &job.agent_id, &job.token)?;
    // Wait for the go: the broker gives it when every worker of the run is ready, so that they
    // start together. A closed pipe (the agent stopping us) or no go in time ends the worker.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line).unwrap_or(0);
        let _ = tx.send(n > 0 && line.trim() == "go");
    });
    match rx.recv_timeout(GO_TIMEOUT) {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(_) => {
            return Err(RunError::Cluster(format!(
                "no go from the broker within {}s",
                GO_TIMEOUT.as_secs()
            )));
        }
    }
    let (relay, interrupted, problems) = match runner {
        Either::Native(r) => {
            let (relay, interrupted) = r.run_into(relay)?;
            (relay, interrupted, Vec::new())
        }
        Either::External(r) => {
            let (relay, interrupted, mut problems, rejected) = r.run_into(relay)?;
            problems.extend(rejected.problem());
            (relay, interrupted, problems)
        }
    };
    if !problems.is_empty() {
        // The agent reports the worker's error (the tail of its stderr) to the broker, which
        // shows it among the run's problems.
        return Err(RunError::Cluster(problems.join("\n")));
    }
    if relay.failures() > 0 {
        return Err(RunError::Cluster(format!(
            "{} events could not be sent to the broker",
            relay.failures()
        )));
    }
    if interrupted {
        // Stopped by a signal: the broker counts it as a problem unless it asked for the stop.
        return Err(RunError::Cluster(
            "the worker was interrupted (SIGTERM or SIGINT) before the end of its plan".into(),
        ));
    }
    Ok(())
}

/// Rebuilds run `run_id` of the broker at `broker` from its storage, through a test result with
/// the outputs, output options, thresholds and baseline of `view` (`loads report`; the run's own
/// thresholds when `view` has none). Events are fetched page by page.
pub fn report(broker: &str, run_id: &str, view: &RunArgs) -> Result<TestResult, RunError> {
    let client = BrokerClient::connect(broker, REPLY_TIMEOUT)?;
    let (run, next) = fetch_page(&client, run_id, None)?;
    replay_pages(&client, run, next, view)
}

/// Rebuilds a stored run from its first page and the following ones.
fn replay_pages(
    client: &BrokerClient,
    mut run: StoredRun,
    next: Option<i64>,
    view: &RunArgs,
) -> Result<TestResult, RunError> {
    let first_events = std::mem::take(&mut run.events);
    let run_id = run.row.run_id.clone();
    let mut result = crate::output::build_result(
        RunMeta {
            run_id: run.row.run_id.clone(),
            ..run.meta.clone()
        },
        view,
    )?;
    let started = chrono::DateTime::parse_from_rfc3339(&run.row.started)
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    result.set_timing(
        started,
        Duration::from_secs_f64(run.row.duration.unwrap_or(0.0).max(0.0)),
    );
    result.start();
    let first = StoredRun {
        events: first_events,
        ..run.clone()
    };
    each_stored_event(client, &run_id, first, next, |_, env| {
        if !matches!(env.event, Event::StartTestRun | Event::StopTestRun) {
            result.ingest(env.event);
        }
    })?;
    for a in &run.row.lost_agents {
        result.add_run_problem(lost_agent_problem(a));
    }
    if run.row.unstored > 0 {
        result.add_run_problem(format!(
            "{} events of this run reached the broker but could not be stored (its database failed): this report misses them",
            run.row.unstored
        ));
    }
    if run.row.status == "running" {
        result.add_run_problem("the run is still going on: this report shows its results so far");
    } else if run.row.status == "interrupted" {
        result.add_run_problem("the broker stopped during this run: its results end there");
    }
    result.finish();
    Ok(result)
}

/// The outcome of `loads check-cluster` for one agent.
#[derive(Debug, Clone)]
pub struct AgentCheck {
    /// The agent.
    pub agent: String,
    /// `None` when its hit succeeded, else what went wrong.
    pub problem: Option<String>,
}

/// Runs the bundled health test (`example::health`) once on every idle agent, against
/// `server_url`, and reports each agent's outcome.
pub fn check_cluster(broker: &str, server_url: &str) -> Result<Vec<AgentCheck>, RunError> {
    let info = ping(broker)?;
    let idle: Vec<String> = info
        .agents
        .iter()
        .filter(|a| a.busy.is_none())
        .map(|a| a.id.clone())
        .collect();
    if idle.is_empty() {
        return Err(RunError::Usage(format!(
            "no idle agent on the broker at {broker} ({} registered); start one with `loads agent --broker {}`",
            info.agents.len(),
            reachable(&info.backend, broker)
        )));
    }
    let args = RunArgs {
        test: "example::health".into(),
        server_url: Some(server_url.to_owned()),
        outputs: vec!["null".into()],
        ..RunArgs::default()
    };
    let runner = DistributedRunner::new(args, idle.len() as u64, broker).map_err(|e| match e {
        RunError::UnknownTest(_) => RunError::Usage(
            "check-cluster runs the bundled example::health test: use the stock `loads` binary"
                .into(),
        ),
        other => other,
    })?;
    let (client, sub) = connect(broker)?;
    let run_id = runner.submit(&client)?;
    let result = match follow(
        &client,
        &sub,
        TestResult::new(runner.meta()),
        &run_id,
        0,
        OnCtrlC::Ignore,
    )? {
        Followed::Ended(r) => r,
        Followed::Detached(_) => return Err(RunError::Cluster("detached".into())),
    };
    let mut per_agent: std::collections::BTreeMap<String, crate::result::Stats> =
        Default::default();
    let (first, next) = fetch_page(&client, &run_id, None)?;
    each_stored_event(&client, &run_id, first, next, |_, env| {
        let stats = per_agent.entry(env.agent_id.clone()).or_default();
        env.event.apply_to(stats, crate::result::unix_now());
    })?;
    let checks = per_agent
        .into_iter()
        .map(|(agent, stats)| {
            let t = stats.totals();
            let problem = if t.successes >= 1 && t.failures == 0 && t.errors == 0 {
                None
            } else {
                Some(
                    stats
                        .problems
                        .first()
                        .map(|p| p.message.clone())
                        .unwrap_or_else(|| "no hit was reported".into()),
                )
            };
            AgentCheck { agent, problem }
        })
        .collect::<Vec<_>>();
    let mut checks = checks;
    // Agents that reported nothing: their problem is in the run's problems.
    for p in result.run_problems() {
        if let Some(id) = idle.iter().find(|id| p.contains(id.as_str()))
            && !checks.iter().any(|c| &c.agent == id)
        {
            checks.push(AgentCheck {
                agent: id.clone(),
                problem: Some(p.clone()),
            });
        }
    }
    Ok(checks)
}
