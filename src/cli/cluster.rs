//! The cluster's commands: `loads broker`, `agent`, `ping`, `agents`, `runs`, `report`, `attach`,
//! `stop`, `purge`, `check-cluster`, `keygen` and the hidden `worker`. Options enter merged with
//! their config files (see [`super::options`]); an exit code leaves.

use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::options::{AgentArgs, BrokerArgs, merge, read_options};
use super::run::{exit_code, report_output_errors};
use super::{CliError, CurveFlags, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::ReportArgs;
use crate::demo::DemoServer;

/// The broker a command asks (`-b, --broker`), declared once for every cluster command.
#[derive(Args, Debug)]
pub(super) struct BrokerAddr {
    /// The broker's front socket
    #[arg(
        short = 'b',
        long,
        default_value = crate::transport::DEFAULT_FRONTEND,
        value_name = "ENDPOINT"
    )]
    pub(super) broker: String,
}

#[derive(Args, Debug)]
pub(super) struct AgentsArgs {
    #[command(flatten)]
    pub(super) broker: BrokerAddr,
    /// Print the agents as JSON: [{"id", "host", "pid", "state" (idle or busy), "run" (or
    /// null), "last_heartbeat" (seconds ago)}]
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Args, Debug)]
pub(super) struct ReportCommand {
    /// The run, or a prefix of its id that no other run shares (see `loads runs`)
    pub(super) run_id: String,
    #[command(flatten)]
    pub(super) broker: BrokerAddr,
    #[command(flatten)]
    pub(super) out: ReportArgs,
}

#[derive(Args, Debug)]
pub(super) struct AttachArgs {
    /// The run, or a prefix of its id that no other run shares [default: the active run; asks
    /// when there are several]
    pub(super) run_id: Option<String>,
    #[command(flatten)]
    pub(super) broker: BrokerAddr,
    #[command(flatten)]
    pub(super) out: ReportArgs,
}

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    pub(super) broker: BrokerAddr,
    /// A demo server the agents can reach [default: one started here on 127.0.0.1, which only
    /// agents on this machine reach]
    #[arg(short = 's', long, value_name = "URL")]
    pub(super) server_url: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct StopArgs {
    /// The run, or a prefix of its id that no other run shares (see `loads runs`)
    #[arg(required_unless_present = "agent")]
    pub(super) run_id: Option<String>,
    /// Stop only the worker of this agent (see `loads agents`): its run goes on with its other
    /// agents, and ends naming this worker as stopped by the user (exit code 1 for whoever
    /// follows the run); stopping the last worker of a run stops the run
    #[arg(long, value_name = "AGENT_ID", conflicts_with = "run_id")]
    pub(super) agent: Option<String>,
    #[command(flatten)]
    pub(super) broker: BrokerAddr,
}

#[derive(Args, Debug)]
pub(super) struct KeygenArgs {
    /// Base name of the files: NAME.key and NAME.pub
    pub(super) name: PathBuf,
}

#[derive(Args, Debug)]
pub(super) struct WorkerArgs {
    /// The job file written by the agent
    #[arg(long, value_name = "FILE")]
    pub(super) job: PathBuf,
}

pub(super) fn cmd_broker(cli: &BrokerArgs, curve: &CurveFlags) -> Result<u8, CliError> {
    let file: BrokerArgs = read_options(
        cli.config.as_deref(),
        "broker",
        &CurveFlags::CONFIG_KEYS,
        &[],
    )
    .map_err(CliError::Usage)?;
    let o = merge(cli, &file).map_err(CliError::Usage)?;
    let curve_key = curve.curve_key.clone().or(o.curve.curve_key.clone());
    let keys = match curve_key {
        Some(k) => Some(crate::transport::security::ServerKeys {
            pair: crate::transport::security::KeyPair::read(&k)
                .map_err(|e| CliError::Usage(e.into()))?,
            roles: broker_roles(&o, true)?,
        }),
        None => {
            broker_roles(&o, false)?;
            None
        }
    };
    let pick = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_owned());
    let agent_timeout = o
        .agent_timeout
        .map_or(Duration::from_secs(10), |s| s.duration());
    let ready_timeout = o
        .ready_timeout
        .map_or(crate::transport::broker::DEFAULT_READY_TIMEOUT, |s| {
            s.duration()
        });
    let opts = crate::transport::broker::BrokerOptions {
        keys,
        insecure: o.insecure,
        frontend: pick(&o.frontend, crate::transport::DEFAULT_FRONTEND),
        backend: pick(&o.backend, crate::transport::DEFAULT_BACKEND),
        receiver: pick(&o.receiver, crate::transport::DEFAULT_RECEIVER),
        publisher: pick(&o.publisher, crate::transport::DEFAULT_PUBLISHER),
        heartbeat: pick(&o.heartbeat, crate::transport::DEFAULT_HEARTBEAT),
        db: o.db.clone().unwrap_or_else(crate::db::default_path),
        agent_timeout,
        ready_timeout,
    };
    let db = opts.db.clone();
    let mut opts = opts;
    // The cluster's page asks this broker as a caller; on a broker with keys, as an admin.
    let web = super::web::start_broker_page(&o.web, opts.keys.as_mut())?;
    crate::transport::broker::run_broker(opts, crate::config::signals::stop_flag(), |info| {
        if let Some(hub) = &web {
            super::web::set_broker(hub, &info.frontend);
        }
        println!(
            "loads broker {} listening: front {}, back {}, receiver {}, publisher {}, heartbeat {}; database {}",
            info.pid,
            info.frontend,
            info.backend,
            info.receiver,
            info.publisher,
            info.heartbeat,
            db.display()
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| CliError::Other(e.into()))?;
    Ok(EXIT_OK)
}

/// The broker's key lists by role, from its options and config file; with `keyed` (the broker
/// has its key pair) at least one list is needed, without it none may be given.
fn broker_roles(
    o: &BrokerArgs,
    keyed: bool,
) -> Result<crate::transport::security::Roles, CliError> {
    use crate::transport::security::read_authorized;
    let (agents, callers, admins, both) = (
        o.authorized_agents.clone(),
        o.authorized_callers.clone(),
        o.admin_keys.clone(),
        o.authorized_keys.clone(),
    );
    let given = [&agents, &callers, &admins, &both]
        .iter()
        .any(|p| p.is_some());
    if !keyed {
        if given {
            return Err(CliError::Usage(anyhow::anyhow!(
                "--authorized-agents, --authorized-callers, --admin-keys and --authorized-keys need --curve-key FILE: the broker's own key pair (`loads keygen broker`)"
            )));
        }
        return Ok(Default::default());
    }
    if !given {
        return Err(CliError::Usage(anyhow::anyhow!(
            "--curve-key needs the keys the broker admits: --authorized-agents DIR|FILE and --authorized-callers DIR|FILE (and --admin-keys for callers that see every run)"
        )));
    }
    let read = |p: &Option<PathBuf>| -> Result<std::collections::HashSet<[u8; 32]>, CliError> {
        match p {
            Some(p) => read_authorized(p).map_err(|e| CliError::Usage(e.into())),
            None => Ok(Default::default()),
        }
    };
    let mut roles = crate::transport::security::Roles {
        agents: read(&agents)?,
        callers: read(&callers)?,
        admins: read(&admins)?,
    };
    if both.is_some() {
        eprintln!(
            "warning: --authorized-keys is deprecated: its keys are admitted both as agents and as callers, so a caller's key can register as an agent and receive jobs; use --authorized-agents and --authorized-callers"
        );
        let both = read(&both)?;
        roles.agents.extend(both.iter().copied());
        roles.callers.extend(both);
    }
    if roles.agents.is_empty() {
        eprintln!("warning: no agent key is admitted (--authorized-agents): no agent can register");
    }
    Ok(roles)
}

pub(super) fn cmd_agent(cli: &AgentArgs, curve: &CurveFlags) -> Result<u8, CliError> {
    let file: AgentArgs = read_options(
        cli.config.as_deref(),
        "agent",
        &CurveFlags::CONFIG_KEYS,
        &[],
    )
    .map_err(CliError::Usage)?;
    let o = merge(cli, &file).map_err(CliError::Usage)?;
    // The agent's keys: the command line (or environment) over the config file.
    let flags = CurveFlags {
        curve_key: curve.curve_key.clone().or(o.curve.curve_key.clone()),
        broker_key: curve.broker_key.clone().or(o.curve.broker_key.clone()),
    };
    crate::transport::security::set_client_keys(flags.client().map_err(CliError::Usage)?);
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    // Workers run in their test directories: relative directories are taken from here.
    let absolute = |p: PathBuf| match std::env::current_dir() {
        Ok(cwd) if p.is_relative() => cwd.join(p),
        _ => p,
    };
    let opts = crate::transport::agent::AgentOptions {
        broker: o
            .broker
            .clone()
            .unwrap_or_else(|| crate::transport::DEFAULT_BACKEND.to_owned()),
        cache_dir: absolute(
            o.cache_dir
                .clone()
                .unwrap_or_else(|| home.join(".cache/loads/binaries")),
        ),
        work_dir: absolute(o.test_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("loads-agent-{}", std::process::id()))
        })),
        heartbeat: Duration::from_secs(1),
    };
    let broker = opts.broker.clone();
    crate::transport::agent::run_agent(opts, crate::config::signals::stop_flag(), |id| {
        println!("loads agent {id} registered with {broker}");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| CliError::Other(e.into()))?;
    Ok(EXIT_OK)
}

pub(super) fn cmd_ping(o: &BrokerAddr) -> Result<u8, CliError> {
    let info = crate::runner::distributed::ping(&o.broker).map_err(|e| CliError::Run(e.into()))?;
    println!("Broker pid:   {}", info.pid);
    println!(
        "Endpoints:    front {}  back {}  receiver {}  publisher {}  heartbeat {}",
        info.frontend, info.backend, info.receiver, info.publisher, info.heartbeat
    );
    println!(
        "Security:     {}; {} message(s) rejected, {} connection(s) refused for their key",
        if info.curve {
            "CURVE keys required"
        } else {
            "no keys (loopback only unless --insecure)"
        },
        info.rejected,
        info.refused_keys
    );
    println!("Agents:       {}", info.agents.len());
    for a in &info.agents {
        println!(
            "  {}  host {}  pid {}  {}  last heartbeat {:.1}s ago",
            a.id,
            a.host,
            a.pid,
            a.busy
                .as_deref()
                .map(|r| format!("busy ({r})"))
                .unwrap_or_else(|| "idle".into()),
            a.last_heartbeat
        );
    }
    println!(
        "Active runs:  {}",
        if info.active_runs.is_empty() {
            "none".to_owned()
        } else {
            info.active_runs.join(", ")
        }
    );
    Ok(EXIT_OK)
}

/// An agent as `loads agents` shows it.
#[derive(serde::Serialize)]
struct AgentLine<'a> {
    id: &'a str,
    host: &'a str,
    pid: u32,
    state: &'static str,
    run: Option<&'a str>,
    last_heartbeat: f64,
}

pub(super) fn cmd_agents(o: &AgentsArgs) -> Result<u8, CliError> {
    let info =
        crate::runner::distributed::ping(&o.broker.broker).map_err(|e| CliError::Run(e.into()))?;
    let lines: Vec<AgentLine<'_>> = info
        .agents
        .iter()
        .map(|a| AgentLine {
            id: &a.id,
            host: &a.host,
            pid: a.pid,
            state: if a.busy.is_some() { "busy" } else { "idle" },
            run: a.busy.as_deref(),
            last_heartbeat: a.last_heartbeat,
        })
        .collect();
    if o.json {
        let text = serde_json::to_string_pretty(&lines).map_err(|e| CliError::Other(e.into()))?;
        println!("{text}");
        return Ok(EXIT_OK);
    }
    if lines.is_empty() {
        println!(
            "No agent is registered with the broker at {}; start one with `loads agent --broker {}`",
            o.broker.broker,
            crate::transport::reachable(&info.backend, &o.broker.broker)
        );
        return Ok(EXIT_OK);
    }
    let id_w = lines.iter().map(|l| l.id.len()).max().unwrap_or(0).max(5);
    let host_w = lines.iter().map(|l| l.host.len()).max().unwrap_or(0).max(4);
    println!(
        "{:<id_w$}  {:<host_w$}  {:>8}  {:<5}  LAST HEARTBEAT  RUN",
        "AGENT", "HOST", "PID", "STATE"
    );
    for l in &lines {
        println!(
            "{:<id_w$}  {:<host_w$}  {:>8}  {:<5}  {:>12.1}s  {}",
            l.id,
            l.host,
            l.pid,
            l.state,
            l.last_heartbeat,
            l.run.unwrap_or("-")
        );
    }
    Ok(EXIT_OK)
}

pub(super) fn broker_call(
    endpoint: &str,
    req: &crate::transport::CallerRequest,
) -> Result<serde_json::Value, CliError> {
    let client = crate::transport::client::BrokerClient::connect(endpoint, Duration::from_secs(10))
        .map_err(|e| CliError::Run(e.into()))?;
    client.call(req, None).map_err(|e| CliError::Run(e.into()))
}

pub(super) fn cmd_runs(o: &BrokerAddr) -> Result<u8, CliError> {
    let v = broker_call(&o.broker, &crate::transport::CallerRequest::Runs)?;
    let rows: Vec<crate::transport::RunRow> =
        serde_json::from_value(v["runs"].clone()).unwrap_or_default();
    if rows.is_empty() {
        println!("No runs yet.");
        return Ok(EXIT_OK);
    }
    println!(
        "{:<16} {:<28} {:<26} {:>9} {:>10} {:>7}  STATUS",
        "RUN", "TEST", "STARTED", "DURATION", "HITS", "AGENTS"
    );
    for r in rows {
        let mut lost = if r.lost_agents.is_empty() {
            String::new()
        } else {
            format!(" ({} lost)", r.lost_agents.len())
        };
        if r.unstored > 0 {
            lost.push_str(&format!(
                " (incompletely stored: {} events lost)",
                r.unstored
            ));
        }
        println!(
            "{:<16} {:<28} {:<26} {:>8.1}s {:>10} {:>7}  {}{lost}",
            r.run_id,
            r.test,
            r.started.split('.').next().unwrap_or(&r.started),
            r.duration.unwrap_or(0.0),
            r.hits,
            r.agents,
            r.status
        );
    }
    Ok(EXIT_OK)
}

pub(super) fn cmd_report(o: &ReportCommand) -> Result<u8, CliError> {
    let result =
        crate::runner::distributed::report(&o.broker.broker, &o.run_id, &o.out.resolved(false))?;
    report_output_errors(&result);
    Ok(exit_code(&result))
}

pub(super) fn cmd_check(o: &CheckArgs) -> Result<u8, CliError> {
    let local = match &o.server_url {
        Some(_) => None,
        None => Some(
            DemoServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), 1)
                .context("cannot start the demo server")
                .map_err(CliError::Other)?,
        ),
    };
    let url = o
        .server_url
        .clone()
        .or_else(|| local.as_ref().map(DemoServer::url))
        .unwrap_or_default();
    println!("Checking every idle agent with example::health against {url}");
    let checks = crate::runner::distributed::check_cluster(&o.broker.broker, &url)?;
    let ok = checks.iter().filter(|c| c.problem.is_none()).count();
    for c in &checks {
        match &c.problem {
            None => println!("  {}  OK", c.agent),
            Some(p) => println!("  {}  FAILED: {}", c.agent, p.lines().next().unwrap_or("")),
        }
    }
    println!("{ok} of {} agents OK", checks.len());
    Ok(if ok == checks.len() && !checks.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

pub(super) fn cmd_attach(o: &AttachArgs) -> Result<u8, CliError> {
    match crate::runner::distributed::attach(
        &o.broker.broker,
        o.run_id.as_deref(),
        &o.out.resolved(false),
    )? {
        Some(result) => {
            report_output_errors(&result);
            Ok(exit_code(&result))
        }
        None => Ok(EXIT_OK),
    }
}

pub(super) fn cmd_stop(broker: &str, run_id: Option<&str>) -> Result<u8, CliError> {
    let client = crate::transport::client::BrokerClient::connect(broker, Duration::from_secs(10))
        .map_err(|e| CliError::Run(e.into()))?;
    let req = match run_id {
        Some(r) => crate::transport::CallerRequest::Stop {
            run_id: crate::runner::distributed::resolve_run(&client, r)?,
        },
        None => crate::transport::CallerRequest::Purge,
    };
    match client
        .request(&req, None)
        .map_err(|e| CliError::Run(e.into()))?
    {
        Ok(v) => {
            let stopped: Vec<String> =
                serde_json::from_value(v["stopped"].clone()).unwrap_or_default();
            if stopped.is_empty() {
                println!("No active run to stop.");
            }
            for r in stopped {
                println!("Stopping run {r}: its workers flush what they have, then end");
            }
            Ok(EXIT_OK)
        }
        Err(r) => {
            eprintln!("error: {}", r.message);
            Ok(EXIT_USAGE)
        }
    }
}

pub(super) fn cmd_stop_agent(broker: &str, agent: &str) -> Result<u8, CliError> {
    let req = crate::transport::CallerRequest::StopAgent {
        agent_id: agent.to_owned(),
    };
    let client = crate::transport::client::BrokerClient::connect(broker, Duration::from_secs(10))
        .map_err(|e| CliError::Run(e.into()))?;
    match client
        .request(&req, None)
        .map_err(|e| CliError::Run(e.into()))?
    {
        Ok(v) => {
            let run = v["run_id"].as_str().unwrap_or("?");
            if v["run_goes_on"].as_bool().unwrap_or(false) {
                println!(
                    "Stopping the worker of agent {agent} in run {run}: it flushes what it has; the run goes on with its other agents"
                );
            } else {
                println!(
                    "Stopping run {run}: agent {agent} ran its last worker still going; its workers flush what they have, then end"
                );
            }
            Ok(EXIT_OK)
        }
        Err(r) => {
            eprintln!("error: {}", r.message);
            Ok(EXIT_USAGE)
        }
    }
}

pub(super) fn cmd_keygen(o: &KeygenArgs) -> Result<u8, CliError> {
    let pair =
        crate::transport::security::KeyPair::generate().map_err(|e| CliError::Other(e.into()))?;
    let (key, public) = pair.write(&o.name).map_err(|e| CliError::Usage(e.into()))?;
    println!(
        "Wrote {} (the key pair: keep it secret, mode 0600) and {} (the public key: {})",
        key.display(),
        public.display(),
        pair.public
    );
    Ok(EXIT_OK)
}

pub(super) fn cmd_worker(o: &WorkerArgs) -> Result<u8, CliError> {
    let text = std::fs::read(&o.job)
        .with_context(|| format!("cannot read the job {}", o.job.display()))
        .map_err(CliError::Other)?;
    let job: crate::transport::Job = serde_json::from_slice(&text)
        .with_context(|| format!("invalid job {}", o.job.display()))
        .map_err(CliError::Other)?;
    crate::transport::security::set_client_keys(job.curve.clone());
    crate::runner::distributed::run_worker(&job)?;
    Ok(EXIT_OK)
}
