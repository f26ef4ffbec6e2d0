//! The `loads` command line and its config file. [`main`] is the whole CLI: the stock binary
//! and every user's load-test binary call it, with their own suites registered.
//!
//! Arguments (and `--config FILE`, a TOML file whose keys are the long option names) become a
//! [`RunArgs`]; the command line wins over the file. Exit codes: 0 when every hit succeeded, 1
//! when any failure or error happened (or an output could not write its report), 2 for usage and
//! configuration errors, 99 when a `--threshold` failed (whatever the hits did), 130 when the
//! run was interrupted with Ctrl-C.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::case::{all_tests, suites};
use crate::demo::DemoServer;
use crate::result::TestResult;
use crate::runner::{
    Cycles, DistributedRunner, LocalRunner, RunArgs, RunError, Runner, parse_duration,
};

/// Exit code: every hit succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: some hit failed or errored.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a threshold failed (or `--abort-on-threshold` stopped the run).
pub const EXIT_THRESHOLD: u8 = 99;
/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "loads",
    version,
    about = "Load-test HTTP and WebSocket services with tests written like unit tests",
    after_help = "Start with `loads demo`: it runs the bundled suite against the embedded demo server.\n\
                  Exit codes: 0 every hit succeeded, 1 failures or errors, 2 usage error, 99 a threshold failed,\n\
                  130 interrupted."
)]
struct Cli {
    #[command(flatten)]
    curve: CurveFlags,
    #[command(subcommand)]
    command: Command,
}

/// CURVE keys of the cluster commands (see `loads keygen` and the README's "Security").
#[derive(Args, Debug, Default)]
struct CurveFlags {
    /// This process's CURVE key pair (from `loads keygen`): the broker's own, or an agent's or
    /// a caller's
    #[arg(long, global = true, value_name = "FILE", env = "LOADS_CURVE_KEY")]
    curve_key: Option<PathBuf>,
    /// Agents and callers: the broker's public key (its .pub file, or the key itself)
    #[arg(long, global = true, value_name = "FILE|KEY", env = "LOADS_BROKER_KEY")]
    broker_key: Option<String>,
}

impl CurveFlags {
    /// The client keys of an agent or a caller, when given.
    fn client(&self) -> anyhow::Result<Option<crate::transport::security::ClientKeys>> {
        match (&self.curve_key, &self.broker_key) {
            (None, None) => Ok(None),
            (Some(k), Some(b)) => Ok(Some(crate::transport::security::ClientKeys::load(k, b)?)),
            _ => anyhow::bail!(
                "give both --curve-key (this process's key pair) and --broker-key (the broker's public key), or neither"
            ),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a CURVE key pair: NAME.key (keep it secret) and NAME.pub (give it to the broker)
    Keygen(KeygenArgs),
    /// Run a test with many virtual users
    Run(Box<RunOptions>),
    /// List the registered tests
    List,
    /// Start the demo server in-process and load-test it with the bundled suite
    Demo(DemoOptions),
    /// Serve the demo target (HTML, JSON, delays, status codes, echo, auth, WebSocket)
    DemoServer(DemoServerOptions),
    /// Start a broker: it hands runs to agents, stores results and publishes them
    Broker(BrokerArgs),
    /// Start an agent: it runs the jobs a broker gives it in worker processes
    Agent(AgentArgs),
    /// Show the broker's pid, endpoints, agents and active runs
    Ping(BrokerAddr),
    /// List the broker's active and past runs
    Runs(BrokerAddr),
    /// Render a stored run again with the outputs
    Report(ReportArgs),
    /// Follow a run of the cluster again (the active one, or RUN_ID)
    Attach(AttachArgs),
    /// Stop a run of the cluster (its workers flush what they have)
    Stop(StopArgs),
    /// Stop every active run of the cluster
    Purge(BrokerAddr),
    /// Run the bundled health test once on every idle agent and report each one
    CheckCluster(CheckArgs),
    /// Run one job of an agent (started by the agent)
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Args, Debug)]
struct BrokerAddr {
    /// The broker's front socket
    #[arg(long, default_value = crate::transport::DEFAULT_FRONTEND, value_name = "ENDPOINT")]
    broker: String,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The run (see `loads runs`)
    run_id: String,
    /// The broker's front socket
    #[arg(long, default_value = crate::transport::DEFAULT_FRONTEND, value_name = "ENDPOINT")]
    broker: String,
    #[command(flatten)]
    out: OutputFlags,
}

#[derive(Args, Debug)]
struct AttachArgs {
    /// The run [default: the active run; asks when there are several]
    run_id: Option<String>,
    /// The broker's front socket
    #[arg(long, default_value = crate::transport::DEFAULT_FRONTEND, value_name = "ENDPOINT")]
    broker: String,
    #[command(flatten)]
    out: OutputFlags,
}

/// Outputs, their options, thresholds and baseline: shared by `run`, `report` and `attach`.
#[derive(Args, Debug, Default, Clone)]
struct OutputFlags {
    /// Output to use (repeatable): stdout, html, json, junit, csv, file, null [default: stdout]
    #[arg(short = 'o', long = "output", value_name = "NAME")]
    outputs: Vec<String>,
    /// File of the html output [default: loads-report.html]
    #[arg(long, value_name = "FILE")]
    output_html_path: Option<String>,
    /// File of the json output [default: loads-summary.json]
    #[arg(long, value_name = "FILE")]
    output_json_path: Option<String>,
    /// File of the junit output [default: loads-junit.xml]
    #[arg(long, value_name = "FILE")]
    output_junit_path: Option<String>,
    /// Prefix of the csv output's PREFIX_stats.csv and PREFIX_history.csv [default: loads]
    #[arg(long, value_name = "PREFIX")]
    output_csv_path: Option<String>,
    /// File of the file output (JSON lines) [default: loads-events.jsonl]
    #[arg(long, value_name = "FILE")]
    output_file_path: Option<String>,
    /// Pass/fail criterion on the whole run (repeatable): p95<200ms, errors<1%, failures==0,
    /// rps>500, "GET /api/items p99<1s"; a failed one makes the exit code 99
    #[arg(long = "threshold", value_name = "EXPR")]
    thresholds: Vec<String>,
    /// Show the changes against an earlier run's JSON summary (written by `--output json`)
    #[arg(long, value_name = "FILE")]
    baseline: Option<String>,
}

impl OutputFlags {
    /// Run arguments for rendering a stored or followed run with these flags.
    fn view(&self) -> RunArgs {
        RunArgs {
            outputs: if self.outputs.is_empty() {
                vec!["stdout".to_owned()]
            } else {
                self.outputs.clone()
            },
            output_options: self.options(&ConfigFile::default()),
            thresholds: self.thresholds.clone(),
            baseline: self.baseline.clone(),
            ..RunArgs::default()
        }
    }

    /// The output options, the command line over the config file.
    fn options(&self, file: &ConfigFile) -> crate::runner::OutputOptions {
        crate::runner::OutputOptions {
            html_path: self
                .output_html_path
                .clone()
                .or(file.output_html_path.clone()),
            json_path: self
                .output_json_path
                .clone()
                .or(file.output_json_path.clone()),
            junit_path: self
                .output_junit_path
                .clone()
                .or(file.output_junit_path.clone()),
            csv_path: self
                .output_csv_path
                .clone()
                .or(file.output_csv_path.clone()),
            file_path: self
                .output_file_path
                .clone()
                .or(file.output_file_path.clone()),
        }
    }
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The broker's front socket
    #[arg(long, default_value = crate::transport::DEFAULT_FRONTEND, value_name = "ENDPOINT")]
    broker: String,
    /// A demo server the agents can reach [default: one started here on 127.0.0.1, which only
    /// agents on this machine reach]
    #[arg(short = 's', long, value_name = "URL")]
    server_url: Option<String>,
}

#[derive(Args, Debug)]
struct StopArgs {
    /// The run
    run_id: String,
    /// The broker's front socket
    #[arg(long, default_value = crate::transport::DEFAULT_FRONTEND, value_name = "ENDPOINT")]
    broker: String,
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Base name of the files: NAME.key and NAME.pub
    name: PathBuf,
}

#[derive(Args, Debug)]
struct BrokerArgs {
    /// TOML file with these options (keys: the long names, and curve-key); the command line wins
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The agents' public keys (they register, take jobs, and their workers send results): a
    /// directory of .pub files, or a file with one key per line; with --curve-key
    #[arg(long, value_name = "DIR|FILE")]
    authorized_agents: Option<PathBuf>,
    /// The callers' public keys (they start runs, and see and stop their own runs only)
    #[arg(long, value_name = "DIR|FILE")]
    authorized_callers: Option<PathBuf>,
    /// Admins' public keys: callers that see and act on every caller's runs
    #[arg(long, value_name = "DIR|FILE")]
    admin_keys: Option<PathBuf>,
    /// Deprecated: keys admitted both as agents and as callers (use --authorized-agents and
    /// --authorized-callers, so that a caller's key cannot register as an agent)
    #[arg(long, value_name = "DIR|FILE")]
    authorized_keys: Option<PathBuf>,
    /// Bind endpoints beyond loopback without keys (anyone who reaches them can run code on the
    /// agents): only on a network you trust
    #[arg(long)]
    insecure: bool,
    /// Front socket, for callers [default: tcp://127.0.0.1:7780]
    #[arg(long, value_name = "ENDPOINT")]
    frontend: Option<String>,
    /// Back socket, for agents [default: tcp://127.0.0.1:7781]
    #[arg(long, value_name = "ENDPOINT")]
    backend: Option<String>,
    /// Receiver, for the workers' results [default: tcp://127.0.0.1:7782]
    #[arg(long, value_name = "ENDPOINT")]
    receiver: Option<String>,
    /// Publisher, for callers [default: tcp://127.0.0.1:7783]
    #[arg(long, value_name = "ENDPOINT")]
    publisher: Option<String>,
    /// Heartbeat, for callers [default: tcp://127.0.0.1:7784]
    #[arg(long, value_name = "ENDPOINT")]
    heartbeat: Option<String>,
    /// The SQLite file [default: $XDG_DATA_HOME/loads/broker.sqlite or ~/.local/share/loads/broker.sqlite]
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Drop agents silent for this long [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    agent_timeout: Option<Duration>,
    /// A run's workers must be ready (binary fetched, worker started) within this long; past
    /// it the run starts without the late ones, or fails when none is ready [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ready_timeout: Option<Duration>,
}

/// The broker's config file: its long option names as keys.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct BrokerConfig {
    authorized_agents: Option<PathBuf>,
    authorized_callers: Option<PathBuf>,
    admin_keys: Option<PathBuf>,
    authorized_keys: Option<PathBuf>,
    ready_timeout: Option<DurationValue>,
    insecure: Option<bool>,
    frontend: Option<String>,
    backend: Option<String>,
    receiver: Option<String>,
    publisher: Option<String>,
    heartbeat: Option<String>,
    db: Option<PathBuf>,
    agent_timeout: Option<DurationValue>,
    curve_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct AgentArgs {
    /// TOML file with these options (keys: the long names, curve-key and broker-key); the
    /// command line wins
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The broker's back socket [default: tcp://127.0.0.1:7781]
    #[arg(long, value_name = "ENDPOINT")]
    broker: Option<String>,
    /// Where test binaries are cached [default: ~/.cache/loads/binaries]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Where each run gets its test directory [default: a loads-agent directory under the temp dir]
    #[arg(long, value_name = "DIR")]
    test_dir: Option<PathBuf>,
}

/// The agent's config file: its long option names as keys.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct AgentConfig {
    broker: Option<String>,
    cache_dir: Option<PathBuf>,
    test_dir: Option<PathBuf>,
    curve_key: Option<PathBuf>,
    broker_key: Option<String>,
}

/// Reads a TOML config file; `keys` says what its keys are, for the error message. No file:
/// the defaults.
fn parse_toml<T: for<'de> Deserialize<'de> + Default>(
    path: Option<&Path>,
    keys: &str,
) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "invalid config file {}: {}\n(keys are {keys})",
            path.display(),
            e.to_string().trim_end()
        )
    })
}

/// Reads the TOML config file of `loads broker` or `loads agent` (`what`).
fn read_toml<T: for<'de> Deserialize<'de> + Default>(
    path: Option<&Path>,
    what: &str,
) -> Result<T, CliError> {
    parse_toml(path, &format!("the long options of `loads {what}`")).map_err(CliError::Usage)
}

#[derive(Args, Debug)]
struct WorkerArgs {
    /// The job file written by the agent
    #[arg(long, value_name = "FILE")]
    job: PathBuf,
}

/// Options of `loads run`; the same keys (long names) may be set in the config file.
#[derive(Args, Debug, Default, Clone)]
struct RunOptions {
    /// The test to run, SUITE::TEST (see `loads list`); may be set as `test` in the config file
    test: Option<String>,
    /// Virtual users, as cycles: 10 or 10:20:30 runs the plan once per value [default: 1]
    #[arg(short = 'u', long, value_name = "N[:N...]")]
    users: Option<Cycles>,
    /// Hits per user, as cycles: 5 or 5:10 [default: 1]
    #[arg(long, value_name = "N[:N...]", conflicts_with = "duration")]
    hits: Option<Cycles>,
    /// Run each cycle step for this long instead of a number of hits: 30, 30s, 1m30s, 500ms
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Base URL of the system under test, for `app` (relative URLs)
    #[arg(short = 's', long, value_name = "URL")]
    server_url: Option<String>,
    /// TOML file with default values for these options (the command line wins)
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    out: OutputFlags,
    /// Stop the run as soon as a threshold can no longer pass (a count or max over its bound)
    #[arg(long)]
    abort_on_threshold: bool,
    /// Do not use the stdout output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Project name shown in reports
    #[arg(long, value_name = "NAME")]
    project_name: Option<String>,
    /// Timeout of each request and WebSocket wait [default: 30s]
    #[arg(long, visible_alias = "timeout", value_name = "DURATION", value_parser = parse_duration)]
    request_timeout: Option<Duration>,
    /// Run on this many agents of a cluster instead of in this process
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    agents: Option<u64>,
    /// The broker's front socket, with --agents [default: tcp://127.0.0.1:7780]
    #[arg(long, value_name = "ENDPOINT")]
    broker: Option<String>,
    /// With --agents: ship the files matching GLOB into each worker's test directory (repeatable)
    #[arg(long = "include-file", value_name = "GLOB", requires = "agents")]
    include_files: Vec<String>,
    /// With --agents: notify when the run ends, on the broker (repeatable): webhook, email
    #[arg(long = "observer", value_name = "NAME", requires = "agents")]
    observers: Vec<String>,
    /// Where the webhook observer POSTs the JSON summary
    #[arg(long, value_name = "URL")]
    observer_webhook_url: Option<String>,
    /// Whom the email observer writes to
    #[arg(long, value_name = "ADDRESS")]
    observer_email_to: Option<String>,
    /// The SMTP server of the email observer
    #[arg(long, value_name = "HOST:PORT")]
    observer_email_smtp: Option<String>,
    /// The sender of the email observer's mails [default: loads@localhost]
    #[arg(long, value_name = "ADDRESS")]
    observer_email_from: Option<String>,
    /// Send every event one by one instead of per-second batches (debugging, external tools)
    #[arg(long)]
    raw_events: bool,
    /// With --agents: start the run and return at once, printing its id
    #[arg(long, requires = "agents")]
    detach: bool,
    /// Start a cycle step's users evenly over this time instead of all at once
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ramp_up: Option<Duration>,
    /// Closed model by stages: users move linearly to each stage's count, e.g. 10:30s,50:1m,0:20s
    #[arg(long, value_name = "USERS:DURATION,...")]
    stages: Option<String>,
    /// Pause between a user's hits, not counted in request times: 1s, or 500ms..2s (uniform)
    #[arg(long, value_name = "DURATION|MIN..MAX")]
    think_time: Option<String>,
    /// Open model: start hits at this rate whatever the latency (with -d), e.g. 200/s
    #[arg(long, value_name = "N/s")]
    rate: Option<String>,
    /// Open model: move the rate linearly through stages, e.g. 50/s:30s,200/s:1m
    #[arg(long, value_name = "RATE:DURATION,...")]
    rate_stages: Option<String>,
    /// Open model: most virtual users serving the arrivals [default: 1000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_users: Option<u64>,
    /// Run TEST through this external program, one process per virtual user and cycle step,
    /// `{test}` replaced by TEST: e.g. "python3 -m loads_client {test}" (docs/external-runners.md)
    #[arg(long, value_name = "CMD")]
    test_runner: Option<String>,
    /// Worker threads for the virtual users, 1 to 1024 [default: one per available core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

#[derive(Args, Debug)]
struct DemoOptions {
    /// Virtual users of the HTTP part of the demo
    #[arg(short = 'u', long, default_value = "50", value_name = "N[:N...]")]
    users: Cycles,
    /// Hits per user of the HTTP part, instead of running it for a duration
    #[arg(long, value_name = "N[:N...]", conflicts_with = "duration")]
    hits: Option<Cycles>,
    /// How long the HTTP part runs [default: 5s]
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
}

#[derive(Args, Debug)]
struct DemoServerOptions {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port)
    #[arg(
        short = 'b',
        long,
        default_value = "127.0.0.1:8080",
        value_name = "ADDR:PORT"
    )]
    bind: SocketAddr,
    /// Worker threads, 1 to 1024
    #[arg(long, default_value = "1", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
}

/// A duration in the config file: a number of seconds or a string such as "1m30s".
#[derive(Deserialize, Debug, Clone)]
#[serde(
    untagged,
    expecting = "a duration: a number of seconds or a string such as \"30s\" or \"1m30s\""
)]
enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    fn get(&self, key: &str) -> anyhow::Result<Duration> {
        let text = match self {
            DurationValue::Seconds(s) => s.to_string(),
            DurationValue::Text(t) => t.clone(),
        };
        parse_duration(&text).map_err(|e| anyhow::anyhow!("{key}: {e}"))
    }
}

#[derive(Deserialize, Debug, Clone)]
#[serde(
    untagged,
    expecting = "an output name such as \"stdout\", or a list of them"
)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The config file: the long option names of `loads run` as keys.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConfigFile {
    test: Option<String>,
    users: Option<Cycles>,
    hits: Option<Cycles>,
    duration: Option<DurationValue>,
    server_url: Option<String>,
    output: Option<OneOrMany>,
    quiet: Option<bool>,
    project_name: Option<String>,
    request_timeout: Option<DurationValue>,
    threads: Option<usize>,
    agents: Option<u64>,
    broker: Option<String>,
    include_file: Option<OneOrMany>,
    raw_events: Option<bool>,
    observer: Option<OneOrMany>,
    observer_webhook_url: Option<String>,
    observer_email_to: Option<String>,
    observer_email_smtp: Option<String>,
    observer_email_from: Option<String>,
    output_html_path: Option<String>,
    output_json_path: Option<String>,
    output_junit_path: Option<String>,
    output_csv_path: Option<String>,
    output_file_path: Option<String>,
    threshold: Option<OneOrMany>,
    abort_on_threshold: Option<bool>,
    baseline: Option<String>,
    test_runner: Option<String>,
    curve_key: Option<PathBuf>,
    broker_key: Option<String>,
    ramp_up: Option<DurationValue>,
    stages: Option<String>,
    think_time: Option<String>,
    rate: Option<String>,
    rate_stages: Option<String>,
    max_users: Option<u64>,
}

/// Reads `loads run`'s config file (`--config`), or gives the defaults without one.
fn read_config(opts: &RunOptions) -> anyhow::Result<ConfigFile> {
    parse_toml(
        opts.config.as_deref(),
        "the long options of `loads run`: test, users, hits, duration, server-url, output, \
         output-html-path, threshold, baseline, quiet, project-name, request-timeout, threads...; \
         see `loads run --help`",
    )
}

/// Merges the command line over the config file `file` (see [`read_config`]) into run
/// arguments.
fn run_args(opts: &RunOptions, mut file: ConfigFile) -> anyhow::Result<RunArgs> {
    let output_options = opts.out.options(&file);
    let test = opts.test.clone().or(file.test.take()).ok_or_else(|| {
        anyhow::anyhow!("no test given: `loads run SUITE::TEST` (see `loads list`)")
    })?;
    // --hits and --duration exclude each other: one given on the command line overrides both
    // of the file's.
    let (hits, duration) = if opts.hits.is_some() || opts.duration.is_some() {
        (opts.hits.clone(), opts.duration)
    } else {
        let d = match &file.duration {
            Some(d) => Some(d.get("duration")?),
            None => None,
        };
        (file.hits, d)
    };
    let mut outputs = if !opts.out.outputs.is_empty() {
        opts.out.outputs.clone()
    } else {
        match file.output.take() {
            Some(OneOrMany::One(o)) => vec![o],
            Some(OneOrMany::Many(v)) => v,
            None => vec!["stdout".into()],
        }
    };
    if opts.quiet || file.quiet.unwrap_or(false) {
        outputs.retain(|o| o != "stdout");
    }
    let mut seen = std::collections::HashSet::new();
    outputs.retain(|o| seen.insert(o.clone()));
    let request_timeout = match (opts.request_timeout, &file.request_timeout) {
        (Some(d), _) => d,
        (None, Some(d)) => d.get("request-timeout")?,
        (None, None) => Duration::from_secs_f64(crate::runner::DEFAULT_REQUEST_TIMEOUT),
    };
    let args = RunArgs {
        test,
        users: opts.users.clone().or(file.users).unwrap_or_default(),
        hits,
        duration: duration.map(|d| d.as_secs_f64()),
        server_url: opts.server_url.clone().or(file.server_url),
        outputs,
        project_name: opts.project_name.clone().or(file.project_name),
        request_timeout: request_timeout.as_secs_f64(),
        run_id: String::new(),
        threads: opts.threads.map(usize::from).or(file.threads),
        raw_events: opts.raw_events || file.raw_events.unwrap_or(false),
        observers: if !opts.observers.is_empty() {
            opts.observers.clone()
        } else {
            match file.observer {
                Some(OneOrMany::One(o)) => vec![o],
                Some(OneOrMany::Many(v)) => v,
                None => Vec::new(),
            }
        },
        observer_webhook_url: opts
            .observer_webhook_url
            .clone()
            .or(file.observer_webhook_url),
        observer_email_to: opts.observer_email_to.clone().or(file.observer_email_to),
        observer_email_smtp: opts
            .observer_email_smtp
            .clone()
            .or(file.observer_email_smtp),
        observer_email_from: opts
            .observer_email_from
            .clone()
            .or(file.observer_email_from.clone()),
        output_options,
        thresholds: if !opts.out.thresholds.is_empty() {
            opts.out.thresholds.clone()
        } else {
            match file.threshold.take() {
                Some(OneOrMany::One(t)) => vec![t],
                Some(OneOrMany::Many(v)) => v,
                None => Vec::new(),
            }
        },
        abort_on_threshold: opts.abort_on_threshold || file.abort_on_threshold.unwrap_or(false),
        baseline: opts.out.baseline.clone().or(file.baseline.clone()),
        test_runner: opts.test_runner.clone().or(file.test_runner.clone()),
        ramp_up: match (opts.ramp_up, &file.ramp_up) {
            (Some(d), _) => Some(d.as_secs_f64()),
            (None, Some(d)) => Some(d.get("ramp-up")?.as_secs_f64()),
            (None, None) => None,
        },
        stages: opts.stages.clone().or(file.stages.clone()),
        think_time: opts.think_time.clone().or(file.think_time.clone()),
        rate: opts.rate.clone().or(file.rate.clone()),
        rate_stages: opts.rate_stages.clone().or(file.rate_stages.clone()),
        max_users: opts.max_users.or(file.max_users),
        share: None,
    };
    Ok(args)
}

/// The exit code of a finished run.
pub fn exit_code(result: &TestResult) -> u8 {
    if result.interrupted() {
        EXIT_INTERRUPTED
    } else if result.aborted().is_some() || !result.thresholds_pass() {
        EXIT_THRESHOLD
    } else if !result.is_success() || !result.output_errors().is_empty() {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn report_output_errors(result: &TestResult) {
    for e in result.output_errors() {
        eprintln!("error: {e}");
    }
}

fn cmd_run(opts: &RunOptions, curve: &CurveFlags) -> Result<u8, CliError> {
    // The config file is read once; the run arguments take their part of it.
    let file = read_config(opts).map_err(CliError::Usage)?;
    let args = run_args(opts, file.clone()).map_err(CliError::Usage)?;
    // The caller's keys: the command line (or environment) over the config file.
    let flags = CurveFlags {
        curve_key: curve.curve_key.clone().or(file.curve_key.clone()),
        broker_key: curve.broker_key.clone().or(file.broker_key.clone()),
    };
    crate::transport::security::set_client_keys(flags.client().map_err(CliError::Usage)?);
    let result = match opts.agents.or(file.agents) {
        Some(n) => {
            let broker = opts
                .broker
                .clone()
                .or(file.broker)
                .unwrap_or_else(|| crate::transport::DEFAULT_FRONTEND.to_owned());
            let globs = if !opts.include_files.is_empty() {
                opts.include_files.clone()
            } else {
                match file.include_file {
                    Some(OneOrMany::One(g)) => vec![g],
                    Some(OneOrMany::Many(v)) => v,
                    None => Vec::new(),
                }
            };
            let mut runner = DistributedRunner::new(args, n, &broker)?.include_files(&globs)?;
            if opts.detach {
                let id = runner.detach()?;
                println!(
                    "Started run {id}; `loads attach {id}` follows it, `loads stop {id}` stops it"
                );
                return Ok(EXIT_OK);
            }
            match runner.run()? {
                Some(r) => r,
                None => return Ok(EXIT_OK),
            }
        }
        None if args.test_runner.is_some() => crate::runner::ExternalRunner::new(args)?
            .handle_ctrl_c(true)
            .execute()?,
        None => LocalRunner::new(args)?.handle_ctrl_c(true).execute()?,
    };
    report_output_errors(&result);
    Ok(exit_code(&result))
}

fn cmd_list() -> u8 {
    let tests = all_tests();
    if tests.is_empty() {
        println!(
            "No tests are registered in this binary: mark an impl block with #[loads::suite]."
        );
        return EXIT_OK;
    }
    let width = tests.iter().map(|t| t.full_name().len()).max().unwrap_or(0);
    for suite in suites() {
        match suite.doc.lines().next().filter(|l| !l.is_empty()) {
            Some(doc) => println!("{} — {doc}", suite.name),
            None => println!("{}", suite.name),
        }
        for t in tests.iter().filter(|t| std::ptr::eq(t.suite, suite)) {
            println!(
                "  {:width$}  {}",
                t.full_name(),
                t.info().doc.lines().next().unwrap_or("")
            );
        }
    }
    EXIT_OK
}

fn cmd_demo(opts: &DemoOptions) -> Result<u8, CliError> {
    let server = DemoServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), 1)
        .context("cannot start the demo server")
        .map_err(CliError::Other)?;
    println!("Demo server listening on {}\n", server.url());
    let parts = [
        RunArgs {
            test: "example::get_root".into(),
            users: opts.users.clone(),
            hits: opts.hits.clone(),
            duration: match (&opts.hits, opts.duration) {
                (Some(_), _) => None,
                (None, d) => Some(d.unwrap_or(Duration::from_secs(5)).as_secs_f64()),
            },
            server_url: Some(server.url()),
            ..RunArgs::default()
        },
        RunArgs {
            test: "example::websocket_echo".into(),
            users: Cycles::one(10),
            hits: Some(Cycles::one(10)),
            server_url: Some(server.url()),
            ..RunArgs::default()
        },
    ];
    let mut code = EXIT_OK;
    for (i, args) in parts.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        let runner = LocalRunner::new(args).map_err(|e| match e {
            RunError::UnknownTest(_) => CliError::Other(anyhow::anyhow!(
                "the demo needs the bundled `example` suite, which this binary does not have; \
                 run the stock `loads` binary (`cargo run --release -- demo`)"
            )),
            other => other.into(),
        })?;
        let result = runner.handle_ctrl_c(true).execute()?;
        report_output_errors(&result);
        code = code.max(exit_code(&result));
        if result.interrupted() {
            break;
        }
    }
    Ok(code)
}

fn cmd_demo_server(opts: &DemoServerOptions) -> Result<u8, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(opts.threads))
        .enable_all()
        .build()
        .context("cannot start the runtime")
        .map_err(CliError::Other)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.bind)
            .await
            .with_context(|| format!("cannot listen on {}", opts.bind))
            .map_err(CliError::Other)?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::Other(e.into()))?;
        println!("loads demo server listening on http://{addr} (Ctrl-C to stop)");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        crate::demo::serve(listener, crate::config::signals::interrupts().wait())
            .await
            .context("demo server")
            .map_err(CliError::Other)?;
        Ok(EXIT_OK)
    })
}

fn cmd_broker(o: &BrokerArgs, curve: &CurveFlags) -> Result<u8, CliError> {
    let file: BrokerConfig = read_toml(o.config.as_deref(), "broker")?;
    let curve_key = curve.curve_key.clone().or(file.curve_key.clone());
    let keys = match curve_key {
        Some(k) => Some(crate::transport::security::ServerKeys {
            pair: crate::transport::security::KeyPair::read(&k)
                .map_err(|e| CliError::Usage(e.into()))?,
            roles: broker_roles(o, &file, true)?,
        }),
        None => {
            broker_roles(o, &file, false)?;
            None
        }
    };
    let pick = |cli: &Option<String>, file: Option<String>, default: &str| {
        cli.clone().or(file).unwrap_or_else(|| default.to_owned())
    };
    let agent_timeout = match (o.agent_timeout, &file.agent_timeout) {
        (Some(d), _) => d,
        (None, Some(d)) => d.get("agent-timeout").map_err(CliError::Usage)?,
        (None, None) => Duration::from_secs(10),
    };
    let ready_timeout = match (o.ready_timeout, &file.ready_timeout) {
        (Some(d), _) => d,
        (None, Some(d)) => d.get("ready-timeout").map_err(CliError::Usage)?,
        (None, None) => crate::transport::broker::DEFAULT_READY_TIMEOUT,
    };
    let opts = crate::transport::broker::BrokerOptions {
        keys,
        insecure: o.insecure || file.insecure.unwrap_or(false),
        frontend: pick(
            &o.frontend,
            file.frontend,
            crate::transport::DEFAULT_FRONTEND,
        ),
        backend: pick(&o.backend, file.backend, crate::transport::DEFAULT_BACKEND),
        receiver: pick(
            &o.receiver,
            file.receiver,
            crate::transport::DEFAULT_RECEIVER,
        ),
        publisher: pick(
            &o.publisher,
            file.publisher,
            crate::transport::DEFAULT_PUBLISHER,
        ),
        heartbeat: pick(
            &o.heartbeat,
            file.heartbeat,
            crate::transport::DEFAULT_HEARTBEAT,
        ),
        db: o
            .db
            .clone()
            .or(file.db)
            .unwrap_or_else(crate::db::default_path),
        agent_timeout,
        ready_timeout,
    };
    let db = opts.db.clone();
    crate::transport::broker::run_broker(opts, crate::config::signals::stop_flag(), |info| {
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
    file: &BrokerConfig,
    keyed: bool,
) -> Result<crate::transport::security::Roles, CliError> {
    use crate::transport::security::read_authorized;
    let pick = |cli: &Option<PathBuf>, f: &Option<PathBuf>| cli.clone().or(f.clone());
    let (agents, callers, admins, both) = (
        pick(&o.authorized_agents, &file.authorized_agents),
        pick(&o.authorized_callers, &file.authorized_callers),
        pick(&o.admin_keys, &file.admin_keys),
        pick(&o.authorized_keys, &file.authorized_keys),
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

fn cmd_agent(o: &AgentArgs, curve: &CurveFlags) -> Result<u8, CliError> {
    let file: AgentConfig = read_toml(o.config.as_deref(), "agent")?;
    // The agent's keys: the command line (or environment) over the config file.
    let flags = CurveFlags {
        curve_key: curve.curve_key.clone().or(file.curve_key),
        broker_key: curve.broker_key.clone().or(file.broker_key),
    };
    crate::transport::security::set_client_keys(flags.client().map_err(CliError::Usage)?);
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let opts = crate::transport::agent::AgentOptions {
        broker: o
            .broker
            .clone()
            .or(file.broker)
            .unwrap_or_else(|| crate::transport::DEFAULT_BACKEND.to_owned()),
        cache_dir: o
            .cache_dir
            .clone()
            .or(file.cache_dir)
            .unwrap_or_else(|| home.join(".cache/loads/binaries")),
        work_dir: o.test_dir.clone().or(file.test_dir).unwrap_or_else(|| {
            std::env::temp_dir().join(format!("loads-agent-{}", std::process::id()))
        }),
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

fn cmd_ping(o: &BrokerAddr) -> Result<u8, CliError> {
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

fn broker_call(
    endpoint: &str,
    req: &crate::transport::CallerRequest,
) -> Result<serde_json::Value, CliError> {
    let client = crate::transport::client::BrokerClient::connect(endpoint, Duration::from_secs(10))
        .map_err(|e| CliError::Run(e.into()))?;
    client.call(req, None).map_err(|e| CliError::Run(e.into()))
}

fn cmd_runs(o: &BrokerAddr) -> Result<u8, CliError> {
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

fn cmd_report(o: &ReportArgs) -> Result<u8, CliError> {
    let result = crate::runner::distributed::report(&o.broker, &o.run_id, &o.out.view())?;
    report_output_errors(&result);
    Ok(exit_code(&result))
}

fn cmd_check(o: &CheckArgs) -> Result<u8, CliError> {
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
    let checks = crate::runner::distributed::check_cluster(&o.broker, &url)?;
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

fn cmd_attach(o: &AttachArgs) -> Result<u8, CliError> {
    match crate::runner::distributed::attach(&o.broker, o.run_id.as_deref(), &o.out.view())? {
        Some(result) => {
            report_output_errors(&result);
            Ok(exit_code(&result))
        }
        None => Ok(EXIT_OK),
    }
}

fn cmd_stop(broker: &str, run_id: Option<&str>) -> Result<u8, CliError> {
    let req = match run_id {
        Some(r) => crate::transport::CallerRequest::Stop {
            run_id: r.to_owned(),
        },
        None => crate::transport::CallerRequest::Purge,
    };
    let client = crate::transport::client::BrokerClient::connect(broker, Duration::from_secs(10))
        .map_err(|e| CliError::Run(e.into()))?;
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

fn cmd_keygen(o: &KeygenArgs) -> Result<u8, CliError> {
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

fn cmd_worker(o: &WorkerArgs) -> Result<u8, CliError> {
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

/// An error the CLI reports before exiting.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{}", chain(.0))]
    Usage(anyhow::Error),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{}", chain(.0))]
    Other(anyhow::Error),
}

/// An error and its causes on one line, each cause once: a cause whose text its error already
/// shows (many errors print their source in their own message) is not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Run(e) if e.is_usage() => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOADS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the `loads` command line with `args` (the program name first) and returns the exit code.
pub fn run_cli<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    init_logging();
    // Agents, callers and workers talk to brokers with this process's keys, if any (a worker
    // takes its agent's from the job file).
    if !matches!(
        cli.command,
        Command::Broker(_) | Command::Worker(_) | Command::Run(_) | Command::Agent(_)
    ) {
        match cli.curve.client() {
            Ok(keys) => crate::transport::security::set_client_keys(keys),
            Err(e) => {
                eprintln!("error: {}", chain(&e));
                return EXIT_USAGE;
            }
        }
    }
    let outcome = match &cli.command {
        Command::Run(o) => cmd_run(o, &cli.curve),
        Command::List => Ok(cmd_list()),
        Command::Demo(o) => cmd_demo(o),
        Command::DemoServer(o) => cmd_demo_server(o),
        Command::Keygen(o) => cmd_keygen(o),
        Command::Broker(o) => cmd_broker(o, &cli.curve),
        Command::Agent(o) => cmd_agent(o, &cli.curve),
        Command::Ping(o) => cmd_ping(o),
        Command::Runs(o) => cmd_runs(o),
        Command::Report(o) => cmd_report(o),
        Command::Attach(o) => cmd_attach(o),
        Command::Stop(o) => cmd_stop(&o.broker, Some(&o.run_id)),
        Command::Purge(o) => cmd_stop(&o.broker, None),
        Command::CheckCluster(o) => cmd_check(o),
        Command::Worker(o) => cmd_worker(o),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    }
}

/// The `loads` command line, with every suite linked into this binary. Call it from `main`:
/// `fn main() -> std::process::ExitCode { loads::main() }`.
pub fn main() -> ExitCode {
    ExitCode::from(run_cli(std::env::args_os()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run arguments of `opts`, config file included.
    fn run_args_of(opts: &RunOptions) -> anyhow::Result<RunArgs> {
        run_args(opts, read_config(opts)?)
    }

    fn parse(args: &[&str]) -> RunOptions {
        let mut v = vec!["loads", "run"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).expect("parse").command {
            Command::Run(o) => *o,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn command_line_wins_over_config_file() {
        let dir = std::env::temp_dir().join(format!("loads-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "test = \"example::health\"\nusers = \"2:3\"\nhits = 4\nserver-url = \"http://127.0.0.1:1\"\n\
             output = [\"stdout\", \"null\"]\nproject-name = \"p\"\nrequest-timeout = \"2s\"\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let a = run_args_of(&parse(&["--config", p])).expect("args");
        assert_eq!(a.test, "example::health");
        assert_eq!(a.users.values(), &[2, 3]);
        assert_eq!(a.hits.as_ref().map(|h| h.values().to_vec()), Some(vec![4]));
        assert_eq!(a.outputs, vec!["stdout", "null"]);
        assert_eq!(a.request_timeout, 2.0);
        let b = run_args_of(&parse(&["--config", p, "-u", "7", "-d", "3", "-q", "x::y"]))
            .expect("args");
        assert_eq!(b.test, "x::y");
        assert_eq!(b.users.values(), &[7]);
        assert_eq!(b.hits, None);
        assert_eq!(b.duration, Some(3.0));
        assert_eq!(b.outputs, vec!["null"]);
        std::fs::write(&path, "userz = 3\n").expect("write");
        let err = run_args_of(&parse(&["--config", p, "a::b"])).expect_err("unknown key");
        assert!(err.to_string().contains("userz"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = Cli::try_parse_from(["loads", "run", "a::b", "-u", "0"]).expect_err("zero users");
        let text = e.to_string();
        assert!(
            text.contains("--users") && text.contains("at least 1"),
            "{text}"
        );
        let e = Cli::try_parse_from(["loads", "run", "a::b", "--hits", "2", "-d", "1s"])
            .expect_err("both");
        assert!(e.to_string().contains("cannot be used with"), "{e}");
        let e = Cli::try_parse_from(["loads", "run", "a::b", "-d", "soon"]).expect_err("duration");
        assert!(e.to_string().contains("--duration"), "{e}");
    }
}
