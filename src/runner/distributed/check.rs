//! Health checks of a cluster: [`ping`] asks the broker for its state (agents, active runs,
//! endpoints), and [`check_cluster`] runs the bundled `example::health` test once on every
//! idle agent and reports, per agent, whether its hit succeeded (`loads check-cluster`).

use super::follow::{Followed, OnCtrlC, follow};
use super::pages::{each_stored_event, fetch_page};
use super::{DistributedRunner, REPLY_TIMEOUT, connect};
use crate::config::UsageError;
use crate::result::TestResult;
use crate::runner::{RunArgs, RunError};
use crate::transport::client::BrokerClient;
use crate::transport::{CallerRequest, PingInfo, TransportError, reachable};

/// Pings the broker at `endpoint`.
pub fn ping(endpoint: &str) -> Result<PingInfo, TransportError> {
    let client = BrokerClient::connect(endpoint, REPLY_TIMEOUT)?;
    let v = client.call(&CallerRequest::Ping, None)?;
    serde_json::from_value(v).map_err(|e| TransportError::Message(e.to_string()))
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
        return Err(RunError::Usage(UsageError::new(
            "--broker",
            format!(
                "no idle agent on the broker at {broker} ({} registered); start one with `loads agent --broker {}`",
                info.agents.len(),
                reachable(&info.backend, broker)
            ),
        )));
    }
    let args = RunArgs {
        plan: crate::config::PlanArgs {
            tests: vec!["example::health".into()],
            server_url: Some(server_url.to_owned()),
            ..Default::default()
        },
        report: crate::config::ReportArgs {
            outputs: vec!["null".into()],
            ..Default::default()
        },
        ..RunArgs::default()
    };
    let runner = DistributedRunner::new(args, idle.len() as u64, broker).map_err(|e| match e {
        RunError::UnknownTest(_) => RunError::Usage(UsageError::new(
            "check-cluster",
            "check-cluster runs the bundled example::health test: use the stock `loads` binary",
        )),
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
        None,
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
