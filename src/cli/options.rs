//! The options of `loads run`, `loads broker` and `loads agent`, each declared once: one struct
//! per command derives both the command line (clap) and the config file (serde; the long option
//! names are the keys), [`merge`] lays the command line over the file in one generic place, and
//! unknown keys of a config file are refused all at once, each with the closest known key.
//!
//! Data enters as arguments and TOML text; it leaves as the merged struct and, for `run`, as the
//! [`RunArgs`] of the run ([`run_args`]).

use anyhow::Context as _;
use clap::Args;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CurveFlags;
use crate::config::units::parse_duration;
use crate::runner::{Cycles, RunArgs};

/// Lays `cli` over `file`: a value given on the command line wins; one it leaves out (an
/// absent option, a flag not set, a repeatable option not given) is the file's.
pub(super) fn merge<T: Serialize + DeserializeOwned>(cli: &T, file: &T) -> anyhow::Result<T> {
    fn overlay(base: &mut serde_json::Value, top: serde_json::Value) {
        use serde_json::Value;
        match (base, top) {
            (Value::Object(b), Value::Object(t)) => {
                for (k, v) in t {
                    match v {
                        Value::Null | Value::Bool(false) => {}
                        Value::Array(a) if a.is_empty() => {}
                        v => overlay(b.entry(k).or_insert(Value::Null), v),
                    }
                }
            }
            (b, t) => *b = t,
        }
    }
    let mut merged = serde_json::to_value(file).context("options")?;
    overlay(&mut merged, serde_json::to_value(cli).context("options")?);
    serde_json::from_value(merged).context("options")
}

/// Reads the TOML config file at `path` (none: the defaults) of `loads COMMAND`. Its keys are
/// the long option names of the command; unknown ones are refused together, each with the
/// closest known key.
pub(super) fn read_options<T: Serialize + DeserializeOwned + Default>(
    path: Option<&Path>,
    command: &str,
) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let invalid = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "invalid config file {}: {}
(its keys are the long options of `loads {command}`; see `loads {command} --help`)",
            path.display(),
            e.to_string().trim_end()
        )
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(&e))?;
    // The keys this command knows: those of its options, as serde writes them.
    let known: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !known.contains(k))
        .map(|k| {
            let closest = known
                .iter()
                .map(|c| (strsim::jaro_winkler(k, c), c))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match closest {
                Some((_, c)) => format!("`{k}` (did you mean `{c}`?)"),
                None => format!("`{k}`"),
            }
        })
        .collect();
    if !unknown.is_empty() {
        let mut keys = known.clone();
        keys.sort();
        return Err(anyhow::anyhow!(
            "invalid config file {}: unknown key{} {}; the keys are: {}",
            path.display(),
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            keys.join(", ")
        ));
    }
    toml::from_str(&text).map_err(|e| invalid(&e))
}

/// A duration in a config file: a number of seconds or a string such as "1m30s"; written back
/// (for [`merge`]) as seconds.
mod duration_secs {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a duration: a number of seconds or a string such as \"30s\" or \"1m30s\""
    )]
    enum DurationValue {
        Seconds(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = match Option::<DurationValue>::deserialize(d)? {
            None => return Ok(None),
            Some(DurationValue::Seconds(s)) => s.to_string(),
            Some(DurationValue::Text(t)) => t,
        };
        super::parse_duration(&text)
            .map(Some)
            .map_err(D::Error::custom)
    }
}

/// A repeatable option in a config file: one value or a list of them.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "an output name such as \"stdout\", or a list of them"
    )]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Option::<OneOrMany>::deserialize(d)? {
            None => Vec::new(),
            Some(OneOrMany::One(v)) => vec![v],
            Some(OneOrMany::Many(v)) => v,
        })
    }
}

/// Outputs, their options, thresholds and baseline: shared by `run`, `report` and `attach`.
#[derive(Args, Serialize, Deserialize, Debug, Default, Clone)]
#[serde(default, rename_all = "kebab-case")]
pub(super) struct OutputFlags {
    /// Output to use (repeatable): stdout, html, json, junit, csv, file, null [default: stdout]
    #[arg(short = 'o', long = "output", value_name = "NAME")]
    #[serde(rename = "output", with = "one_or_many")]
    pub(super) outputs: Vec<String>,
    /// File of the html output [default: loads-report.html]
    #[arg(long, value_name = "FILE")]
    pub(super) output_html_path: Option<String>,
    /// File of the json output [default: loads-summary.json]
    #[arg(long, value_name = "FILE")]
    pub(super) output_json_path: Option<String>,
    /// File of the junit output [default: loads-junit.xml]
    #[arg(long, value_name = "FILE")]
    pub(super) output_junit_path: Option<String>,
    /// Prefix of the csv output's PREFIX_stats.csv and PREFIX_history.csv [default: loads]
    #[arg(long, value_name = "PREFIX")]
    pub(super) output_csv_path: Option<String>,
    /// File of the file output (JSON lines) [default: loads-events.jsonl]
    #[arg(long, value_name = "FILE")]
    pub(super) output_file_path: Option<String>,
    /// Pass/fail criterion on the whole run (repeatable): p95<200ms, errors<1%, failures==0,
    /// rps>500, "GET /api/items p99<1s"; a failed one makes the exit code 99
    #[arg(long = "threshold", value_name = "EXPR")]
    #[serde(rename = "threshold", with = "one_or_many")]
    pub(super) thresholds: Vec<String>,
    /// Show the changes against an earlier run's JSON summary (written by `--output json`)
    #[arg(long, value_name = "FILE")]
    pub(super) baseline: Option<String>,
}

impl OutputFlags {
    /// Run arguments for rendering a stored or followed run with these flags.
    pub(super) fn view(&self) -> RunArgs {
        RunArgs {
            outputs: if self.outputs.is_empty() {
                vec!["stdout".to_owned()]
            } else {
                self.outputs.clone()
            },
            output_options: self.options(),
            thresholds: self.thresholds.clone(),
            baseline: self.baseline.clone(),
            ..RunArgs::default()
        }
    }

    /// The output options.
    pub(super) fn options(&self) -> crate::config::OutputOptions {
        crate::config::OutputOptions {
            html_path: self.output_html_path.clone(),
            json_path: self.output_json_path.clone(),
            junit_path: self.output_junit_path.clone(),
            csv_path: self.output_csv_path.clone(),
            file_path: self.output_file_path.clone(),
        }
    }
}

/// Options of `loads run`, declared once: the command line (clap) and the config file (serde, the
/// same long names as keys) read this struct, [`merge`] lays the command line over the file, and
/// [`run_args`] turns the result into the [`RunArgs`] of the run. Adding an option touches this
/// struct, the place that uses it, the docs and a test.
#[derive(Args, Serialize, Deserialize, Debug, Default, Clone)]
#[serde(default, rename_all = "kebab-case")]
pub(super) struct RunOptions {
    /// The test to run, SUITE::TEST (see `loads list`); may be set as `test` in the config file
    pub(super) test: Option<String>,
    /// Virtual users, as cycles: 10 or 10:20:30 runs the plan once per value [default: 1]
    #[arg(short = 'u', long, value_name = "N[:N...]")]
    pub(super) users: Option<Cycles>,
    /// Hits per user, as cycles: 5 or 5:10 [default: 1]
    #[arg(long, value_name = "N[:N...]", conflicts_with = "duration")]
    pub(super) hits: Option<Cycles>,
    /// Run each cycle step for this long instead of a number of hits: 30, 30s, 1m30s, 500ms
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration_secs")]
    pub(super) duration: Option<Duration>,
    /// Base URL of the system under test, for `app` (relative URLs)
    #[arg(short = 's', long, value_name = "URL")]
    pub(super) server_url: Option<String>,
    /// TOML file with default values for these options (the command line wins)
    #[arg(short = 'c', long, value_name = "FILE")]
    #[serde(skip)]
    pub(super) config: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub(super) out: OutputFlags,
    /// Stop the run as soon as a threshold can no longer pass (a count or max over its bound)
    #[arg(long)]
    pub(super) abort_on_threshold: bool,
    /// Do not use the stdout output
    #[arg(short = 'q', long)]
    pub(super) quiet: bool,
    /// Project name shown in reports
    #[arg(long, value_name = "NAME")]
    pub(super) project_name: Option<String>,
    /// Timeout of each request and WebSocket wait [default: 30s]
    #[arg(long, visible_alias = "timeout", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration_secs")]
    pub(super) request_timeout: Option<Duration>,
    /// Run on this many agents of a cluster instead of in this process
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) agents: Option<u64>,
    /// The broker's front socket, with --agents [default: tcp://127.0.0.1:7780]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) broker: Option<String>,
    /// With --agents: ship the files matching GLOB into each worker's test directory (repeatable)
    #[arg(long = "include-file", value_name = "GLOB", requires = "agents")]
    #[serde(rename = "include-file", with = "one_or_many")]
    pub(super) include_files: Vec<String>,
    /// With --agents: notify when the run ends, on the broker (repeatable): webhook, email
    #[arg(long = "observer", value_name = "NAME", requires = "agents")]
    #[serde(rename = "observer", with = "one_or_many")]
    pub(super) observers: Vec<String>,
    /// Where the webhook observer POSTs the JSON summary
    #[arg(long, value_name = "URL")]
    pub(super) observer_webhook_url: Option<String>,
    /// Whom the email observer writes to
    #[arg(long, value_name = "ADDRESS")]
    pub(super) observer_email_to: Option<String>,
    /// The SMTP server of the email observer
    #[arg(long, value_name = "HOST:PORT")]
    pub(super) observer_email_smtp: Option<String>,
    /// The sender of the email observer's mails [default: loads@localhost]
    #[arg(long, value_name = "ADDRESS")]
    pub(super) observer_email_from: Option<String>,
    /// Send every event one by one instead of per-second batches (debugging, external tools)
    #[arg(long)]
    pub(super) raw_events: bool,
    /// With --agents: start the run and return at once, printing its id
    #[arg(long, requires = "agents")]
    #[serde(skip)]
    pub(super) detach: bool,
    /// Start a cycle step's users evenly over this time instead of all at once
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration_secs")]
    pub(super) ramp_up: Option<Duration>,
    /// Closed model by stages: users move linearly to each stage's count, e.g. 10:30s,50:1m,0:20s
    #[arg(long, value_name = "USERS:DURATION,...")]
    pub(super) stages: Option<String>,
    /// Pause between a user's hits, not counted in request times: 1s, or 500ms..2s (uniform)
    #[arg(long, value_name = "DURATION|MIN..MAX")]
    pub(super) think_time: Option<String>,
    /// Open model: start hits at this rate whatever the latency (with -d), e.g. 200/s
    #[arg(long, value_name = "N/s")]
    pub(super) rate: Option<String>,
    /// Open model: move the rate linearly through stages, e.g. 50/s:30s,200/s:1m
    #[arg(long, value_name = "RATE:DURATION,...")]
    pub(super) rate_stages: Option<String>,
    /// Open model: most virtual users serving the arrivals [default: 1000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) max_users: Option<u64>,
    /// Run TEST through this external program, one process per virtual user and cycle step,
    /// `{test}` replaced by TEST: e.g. "python3 -m loads_client {test}" (docs/external-runners.md)
    #[arg(long, value_name = "CMD")]
    pub(super) test_runner: Option<String>,
    /// Worker threads for the virtual users, 1 to 1024 [default: one per available core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(super) threads: Option<u16>,
    /// The caller's keys, from the config file (the command line's are global).
    #[arg(skip)]
    #[serde(flatten)]
    pub(super) curve: CurveFlags,
}

/// Options of `loads broker`, declared once: the command line (clap) and the config file (serde,
/// the same long names as keys) read this struct, and [`merge`] lays one over the other.
#[derive(Args, Serialize, Deserialize, Debug, Default, Clone)]
#[serde(default, rename_all = "kebab-case")]
pub(super) struct BrokerArgs {
    /// TOML file with these options (keys: the long names, and curve-key); the command line wins
    #[arg(short = 'c', long, value_name = "FILE")]
    #[serde(skip)]
    pub(super) config: Option<PathBuf>,
    /// The agents' public keys (they register, take jobs, and their workers send results): a
    /// directory of .pub files, or a file with one key per line; with --curve-key
    #[arg(long, value_name = "DIR|FILE")]
    pub(super) authorized_agents: Option<PathBuf>,
    /// The callers' public keys (they start runs, and see and stop their own runs only)
    #[arg(long, value_name = "DIR|FILE")]
    pub(super) authorized_callers: Option<PathBuf>,
    /// Admins' public keys: callers that see and act on every caller's runs
    #[arg(long, value_name = "DIR|FILE")]
    pub(super) admin_keys: Option<PathBuf>,
    /// Deprecated: keys admitted both as agents and as callers (use --authorized-agents and
    /// --authorized-callers, so that a caller's key cannot register as an agent)
    #[arg(long, value_name = "DIR|FILE")]
    pub(super) authorized_keys: Option<PathBuf>,
    /// Bind endpoints beyond loopback without keys (anyone who reaches them can run code on the
    /// agents): only on a network you trust
    #[arg(long)]
    pub(super) insecure: bool,
    /// Front socket, for callers [default: tcp://127.0.0.1:7780]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) frontend: Option<String>,
    /// Back socket, for agents [default: tcp://127.0.0.1:7781]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) backend: Option<String>,
    /// Receiver, for the workers' results [default: tcp://127.0.0.1:7782]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) receiver: Option<String>,
    /// Publisher, for callers [default: tcp://127.0.0.1:7783]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) publisher: Option<String>,
    /// Heartbeat, for callers [default: tcp://127.0.0.1:7784]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) heartbeat: Option<String>,
    /// The SQLite file [default: $XDG_DATA_HOME/loads/broker.sqlite or ~/.local/share/loads/broker.sqlite]
    #[arg(long, value_name = "PATH")]
    pub(super) db: Option<PathBuf>,
    /// Drop agents silent for this long [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration_secs")]
    pub(super) agent_timeout: Option<Duration>,
    /// A run's workers must be ready (binary fetched, worker started) within this long; past
    /// it the run starts without the late ones, or fails when none is ready [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration_secs")]
    pub(super) ready_timeout: Option<Duration>,
    /// The broker's key pair, from the config file (the command line's is global).
    #[arg(skip)]
    #[serde(flatten)]
    pub(super) curve: CurveFlags,
}

/// Options of `loads agent`, declared once (see [`BrokerArgs`]).
#[derive(Args, Serialize, Deserialize, Debug, Default, Clone)]
#[serde(default, rename_all = "kebab-case")]
pub(super) struct AgentArgs {
    /// TOML file with these options (keys: the long names, curve-key and broker-key); the
    /// command line wins
    #[arg(short = 'c', long, value_name = "FILE")]
    #[serde(skip)]
    pub(super) config: Option<PathBuf>,
    /// The broker's back socket [default: tcp://127.0.0.1:7781]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) broker: Option<String>,
    /// Where test binaries are cached [default: ~/.cache/loads/binaries]
    #[arg(long, value_name = "DIR")]
    pub(super) cache_dir: Option<PathBuf>,
    /// Where each run gets its test directory [default: a loads-agent directory under the temp dir]
    #[arg(long, value_name = "DIR")]
    pub(super) test_dir: Option<PathBuf>,
    /// The agent's keys, from the config file (the command line's are global).
    #[arg(skip)]
    #[serde(flatten)]
    pub(super) curve: CurveFlags,
}

/// The run arguments of merged options (see [`merge`]): the one place where `loads run`'s options
/// become the [`RunArgs`] that runners take (and that travel to agents).
pub(super) fn run_args(o: &RunOptions) -> anyhow::Result<RunArgs> {
    let test = o.test.clone().ok_or_else(|| {
        anyhow::anyhow!("no test given: `loads run SUITE::TEST` (see `loads list`)")
    })?;
    let mut outputs = if o.out.outputs.is_empty() {
        vec!["stdout".to_owned()]
    } else {
        o.out.outputs.clone()
    };
    if o.quiet {
        outputs.retain(|o| o != "stdout");
    }
    let mut seen = std::collections::HashSet::new();
    outputs.retain(|o| seen.insert(o.clone()));
    Ok(RunArgs {
        test,
        users: o.users.clone().unwrap_or_default(),
        hits: o.hits.clone(),
        duration: o.duration.map(|d| d.as_secs_f64()),
        server_url: o.server_url.clone(),
        outputs,
        project_name: o.project_name.clone(),
        request_timeout: o
            .request_timeout
            .map_or(crate::config::DEFAULT_REQUEST_TIMEOUT, |d| d.as_secs_f64()),
        run_id: String::new(),
        threads: o.threads.map(usize::from),
        raw_events: o.raw_events,
        observers: o.observers.clone(),
        observer_webhook_url: o.observer_webhook_url.clone(),
        observer_email_to: o.observer_email_to.clone(),
        observer_email_smtp: o.observer_email_smtp.clone(),
        observer_email_from: o.observer_email_from.clone(),
        output_options: o.out.options(),
        thresholds: o.out.thresholds.clone(),
        abort_on_threshold: o.abort_on_threshold,
        baseline: o.out.baseline.clone(),
        test_runner: o.test_runner.clone(),
        ramp_up: o.ramp_up.map(|d| d.as_secs_f64()),
        stages: o.stages.clone(),
        think_time: o.think_time.clone(),
        rate: o.rate.clone(),
        rate_stages: o.rate_stages.clone(),
        max_users: o.max_users,
        share: None,
    })
}

/// `loads run`'s options: the command line `cli` over its config file (`--config`), read once.
pub(super) fn run_options(cli: &RunOptions) -> anyhow::Result<RunOptions> {
    let file: RunOptions = read_options(cli.config.as_deref(), "run")?;
    let mut merged = merge(cli, &file)?;
    // --hits and --duration exclude each other: one given on the command line overrides both
    // of the file's.
    if cli.hits.is_some() || cli.duration.is_some() {
        merged.hits = cli.hits.clone();
        merged.duration = cli.duration;
    }
    merged.config = cli.config.clone();
    merged.detach = cli.detach;
    Ok(merged)
}
