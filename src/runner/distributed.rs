//! The distributed runner: hands a run to a broker and rebuilds its results, through the same
//! [`TestResult`] and outputs as a local run, from the events the broker publishes. Also the
//! worker side ([`run_worker`]: the local runner in slave mode, with the relay in place of the
//! test result) and [`replay`], which rebuilds a stored run for `loads report`.

use std::time::{Duration, Instant};

use super::{LocalRunner, RunArgs, RunError, Runner};
use crate::result::{Event, EventSink, RunMeta, TestResult};
use crate::transport::client::BrokerClient;
use crate::transport::relay::Relay;
use crate::transport::{
    CallerRequest, HEARTBEAT_TOPIC, Job, PingInfo, Publication, StoredRun, TransportError,
    from_frame, platform, reachable, sha256_hex, z,
};

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
    local: LocalRunner,
    agents: u64,
    broker: String,
}

impl DistributedRunner {
    /// A run of `args` on `agents` agents of the broker whose front socket is `broker`. The test
    /// and the plan are checked here, as for a local run.
    pub fn new(args: RunArgs, agents: u64, broker: &str) -> Result<Self, RunError> {
        if agents == 0 {
            return Err(RunError::Usage("--agents must be at least 1".into()));
        }
        Ok(DistributedRunner {
            local: LocalRunner::new(args)?,
            agents,
            broker: broker.to_owned(),
        })
    }

    fn meta(&self) -> RunMeta {
        let mut meta = self.local.meta();
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
fn subscribe(ctx: &zmq::Context, publisher: &str) -> Result<zmq::Socket, TransportError> {
    let sub = z("subscriber", ctx.socket(zmq::SUB))?;
    z("linger", sub.set_linger(0))?;
    z(
        &format!("connecting to {publisher}"),
        sub.connect(publisher),
    )?;
    z("subscribe", sub.set_subscribe(b""))?;
    let deadline = Instant::now() + BROKER_SILENCE;
    while Instant::now() < deadline {
        let mut items = [sub.as_poll_item(zmq::POLLIN)];
        z("poll", zmq::poll(&mut items, 100))?;
        if items[0].is_readable()
            && let Ok(frames) = sub.recv_multipart(0)
            && frames.first().map(Vec::as_slice) == Some(HEARTBEAT_TOPIC.as_bytes())
        {
            return Ok(sub);
        }
    }
    Err(TransportError::NoBroker(publisher.to_owned()))
}

impl Runner for DistributedRunner {
    fn execute(&mut self) -> Result<TestResult, RunError> {
        let client = BrokerClient::connect(&self.broker, REPLY_TIMEOUT)?;
        let info: PingInfo = serde_json::from_value(client.call(&CallerRequest::Ping, None)?)
            .map_err(|e| RunError::Cluster(format!("bad answer to ping: {e}")))?;
        let sub = subscribe(client.context(), &reachable(&info.publisher, &self.broker))?;

        // The job carries this very binary, content-addressed.
        let exe = std::env::current_exe()
            .map_err(|e| RunError::Cluster(format!("cannot find this program: {e}")))?;
        let bytes = std::fs::read(&exe)
            .map_err(|e| RunError::Cluster(format!("cannot read {}: {e}", exe.display())))?;
        let sha = sha256_hex(&bytes);
        let present = client.call(
            &CallerRequest::HasBinary {
                sha256: sha.clone(),
            },
            None,
        )?["present"]
            .as_bool()
            .unwrap_or(false);
        if !present {
            let slow = BrokerClient::connect(&self.broker, Duration::from_secs(120))?;
            slow.call(
                &CallerRequest::PutBinary {
                    sha256: sha.clone(),
                },
                Some(&bytes),
            )?;
        }
        drop(bytes);

        let meta = self.meta();
        let request = CallerRequest::Run {
            args: Box::new(self.local.args().clone()),
            agents: self.agents,
            binary_sha256: sha,
            platform: platform(),
            meta: Box::new(meta.clone()),
        };
        let run_id = match client.request(&request, None)? {
            Ok(v) => v["run_id"].as_str().unwrap_or_default().to_owned(),
            Err(r) if r.code == "not_enough_agents" => return Err(RunError::Usage(r.message)),
            Err(r) => return Err(RunError::Cluster(r.message)),
        };
        let mut result = TestResult::new(RunMeta {
            run_id: run_id.clone(),
            ..meta
        });
        for name in &self.local.args().outputs {
            result.add_observer(crate::output::create(name, self.local.args())?);
        }
        result.start();
        let mut last_beat = Instant::now();
        let mut last_tick = Instant::now();
        loop {
            let mut items = [sub.as_poll_item(zmq::POLLIN)];
            z("poll", zmq::poll(&mut items, 100))?;
            if items[0].is_readable() {
                while let Ok(frames) = sub.recv_multipart(zmq::DONTWAIT) {
                    let (Some(topic), Some(body)) = (frames.first(), frames.get(1)) else {
                        continue;
                    };
                    if topic.as_slice() == HEARTBEAT_TOPIC.as_bytes() {
                        last_beat = Instant::now();
                        continue;
                    }
                    if topic.as_slice() != run_id.as_bytes() {
                        continue;
                    }
                    match from_frame::<Publication>(body) {
                        Ok(Publication::Event(env))
                            if !matches!(env.event, Event::StartTestRun | Event::StopTestRun) =>
                        {
                            result.ingest(env.event);
                        }
                        Ok(Publication::End {
                            lost_agents,
                            errors,
                            ..
                        }) => {
                            for a in lost_agents {
                                result.add_run_problem(format!(
                                    "agent {a} was lost during the run (no heartbeat); the results it had sent are included"
                                ));
                            }
                            for e in errors {
                                result.add_run_problem(e);
                            }
                            result.ingest(Event::StopTestRun);
                            result.finish();
                            return Ok(result);
                        }
                        _ => {}
                    }
                }
            }
            if last_tick.elapsed() >= Duration::from_millis(200) {
                last_tick = Instant::now();
                result.tick(0);
            }
            if last_beat.elapsed() > BROKER_SILENCE {
                result.add_run_problem(format!(
                    "the broker at {} went away (no heartbeat for {}s); the results received so far are shown",
                    self.broker,
                    BROKER_SILENCE.as_secs()
                ));
                result.set_interrupted();
                result.finish();
                return Ok(result);
            }
        }
    }
}

/// The worker: runs a job with the local runner, sending its events through a relay.
pub fn run_worker(job: &Job) -> Result<(), RunError> {
    let runner = LocalRunner::new(job.args.clone())?.collect_every(Duration::from_secs(1));
    let relay = Relay::connect(&job.receiver, &job.run_id, &job.agent_id)?;
    let (relay, _interrupted) = runner.run_into(relay)?;
    if relay.failures() > 0 {
        return Err(RunError::Cluster(format!(
            "{} events could not be sent to the broker",
            relay.failures()
        )));
    }
    Ok(())
}

/// Rebuilds a stored run through a test result with `outputs` (for `loads report`).
pub fn replay(run: StoredRun, outputs: &[String]) -> Result<TestResult, RunError> {
    let args = RunArgs {
        test: run.meta.test.clone(),
        run_id: run.row.run_id.clone(),
        outputs: outputs.to_vec(),
        ..RunArgs::default()
    };
    let mut result = TestResult::new(RunMeta {
        run_id: run.row.run_id.clone(),
        ..run.meta
    });
    let started = chrono::DateTime::parse_from_rfc3339(&run.row.started)
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    result.set_timing(
        started,
        Duration::from_secs_f64(run.row.duration.unwrap_or(0.0).max(0.0)),
    );
    for name in outputs {
        result.add_observer(crate::output::create(name, &args)?);
    }
    result.start();
    for env in run.events {
        if !matches!(env.event, Event::StartTestRun | Event::StopTestRun) {
            result.ingest(env.event);
        }
    }
    for a in &run.row.lost_agents {
        result.add_run_problem(format!(
            "agent {a} was lost during the run; the results it had sent are included"
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
