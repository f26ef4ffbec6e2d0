//! [`RunArgs`]: everything a runner needs to execute a run, declared once. The same structs
//! are `loads run`'s command line (clap: the doc comments are the help), its config file (the
//! long option names are the keys; `cli` maps them) and the JSON object that travels to agents
//! in each job (serde; the parts are flattened, so the object keeps one level). A run's
//! arguments come in three parts, each read by the floor that owns it:
//!
//! - [`PlanArgs`]: the test and the load plan, checked into a [`Plan`] by [`PlanArgs::plan`];
//! - [`ReportArgs`]: outputs and their options, thresholds, the baseline, read by `output`;
//! - [`NotifyArgs`]: the end-of-run notifiers the broker calls, read by `notify`.
//!
//! Data enters from the command line, the config file or a job's JSON; it leaves as the checked
//! [`Plan`] and as the options the outputs, thresholds and notifiers read. An option given
//! nowhere is `None` (or empty, or `false`) here, and its default is applied where it is read
//! (the accessors below), so that the command line can be laid over the config file.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::data::DataSpec;
use super::plan::{Cycles, MAX_USERS, Model, Plan, Stop};
use super::units::{Secs, duration_from_secs};
use super::{UsageError, one_or_many};

/// One checked scenario of a run: its arguments (`None`: the run's own test and model), its
/// plan and its start delay.
pub(crate) type ScenarioPlan<'a> = (Option<&'a super::ScenarioArgs>, Plan, Duration);

/// Default request timeout, in seconds.
pub const DEFAULT_REQUEST_TIMEOUT: f64 = 30.0;

/// Everything a runner needs to execute a run: the run id and the three parts. Serialisable:
/// the same object is sent to agents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct RunArgs {
    /// Identifier of the run (set by the caller or the broker, not an option).
    #[arg(skip)]
    pub run_id: String,
    /// The test and its load plan.
    #[command(flatten)]
    #[serde(flatten)]
    pub plan: PlanArgs,
    /// Outputs, thresholds and baseline.
    #[command(flatten)]
    #[serde(flatten)]
    pub report: ReportArgs,
    /// End-of-run notifiers.
    #[command(flatten)]
    #[serde(flatten)]
    pub notify: NotifyArgs,
}

/// The test and its load plan: what runs, how many users, for how many hits or how long.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
#[command(next_help_heading = "Load plan")]
pub struct PlanArgs {
    /// The test to run, SUITE::TEST (see `loads list`), or a weighted mix of one suite's tests:
    /// blog::browse=70 blog::search=25 (no weight: 1), or SUITE for all its tests with their
    /// default weights; may be set as `test` in the config file
    #[arg(id = "test", value_name = "TEST[=WEIGHT]")]
    #[serde(
        rename = "test",
        with = "super::mix_text",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tests: Vec<String>,
    /// How many users, for how many hits or how long, with which model.
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    /// Project name shown in reports
    #[arg(long, value_name = "NAME")]
    pub project_name: Option<String>,
    /// Base URL of the system under test, for `app` (relative URLs)
    #[arg(short = 's', long, value_name = "URL")]
    pub server_url: Option<String>,
    /// Timeout of each request and WebSocket wait [default: 30s]
    #[arg(long, visible_alias = "timeout", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Secs>,
    /// Worker threads for the virtual users, 1 to 1024 [default: one per available core]
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Stop the run as soon as a threshold can no longer pass (a count or max over its bound)
    #[arg(long)]
    pub abort_on_threshold: bool,
    /// Send every event one by one instead of per-second batches (debugging, external tools)
    #[arg(long)]
    pub raw_events: bool,
    /// Run TEST through this external program, one process per virtual user and cycle step,
    /// `{test}` replaced by TEST: e.g. "python3 -m loads_client {test}" (docs/external-runners.md)
    #[arg(long, value_name = "CMD")]
    pub test_runner: Option<String>,
    /// With --test-runner and --hits: stop (SIGTERM, then SIGKILL) a runner process still
    /// running this long after its cycle step started, as a run error [default: no limit]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_process_timeout: Option<Secs>,
    /// Test data for `t.data("NAME")` (repeatable): NAME=FILE[:STRATEGY], FILE a CSV with a
    /// header, a JSON array of objects or JSON lines; STRATEGY circular (default), random, queue,
    /// queue-stop or per-user; `[[data]]` tables (name, file, strategy) in the config file
    #[arg(long = "data", value_name = "NAME=FILE[:STRATEGY]", value_parser = super::data::parse_spec)]
    #[serde(
        deserialize_with = "super::data::deserialize_specs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub data: Vec<DataSpec>,
    /// Several scenarios in one run, each with its tests and its own load model (the config
    /// file's `[[scenario]]` tables; not a command-line option). With scenarios the run's own
    /// test is not given, and its model options are the scenarios' defaults.
    #[arg(skip)]
    #[serde(rename = "scenario", skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<super::ScenarioArgs>,
    /// This process's share of a cluster run, `(index, count)`: the broker sets it per agent, and
    /// the stages' users, the rate and the pool are divided (remainders to the first agents).
    #[arg(skip)]
    pub share: Option<(u64, u64)>,
}

/// The load model of a run or of one scenario: users, hits or duration, and the shape of the
/// load (ramp-up, stages, think time, an arrival rate). Checked into a [`Plan`] by
/// [`ModelArgs::plan`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
#[command(next_help_heading = "Load plan")]
pub struct ModelArgs {
    /// Virtual users, as cycles: 10 or 10:20:30 runs the plan once per value [default: 1]
    #[arg(short = 'u', long, value_name = "N[:N...]", allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Cycles>,
    /// Hits per user, as cycles: 5 or 5:10 [default: 1]
    #[arg(
        long,
        value_name = "N[:N...]",
        conflicts_with = "duration",
        allow_hyphen_values = true
    )]
    pub hits: Option<Cycles>,
    /// Run each cycle step for this long instead of a number of hits: 30, 30s, 1m30s, 500ms
    #[arg(short = 'd', long, value_name = "DURATION")]
    pub duration: Option<Secs>,
    /// Start a cycle step's users evenly over this time instead of all at once
    #[arg(long, value_name = "DURATION")]
    pub ramp_up: Option<Secs>,
    /// Closed model by stages: users move linearly to each stage's count, e.g. 10:30s,50:1m,0:20s
    #[arg(long, value_name = "USERS:DURATION,...")]
    pub stages: Option<String>,
    /// Pause between a user's hits, not counted in request times: 1s, or 500ms..2s (uniform)
    #[arg(long, value_name = "DURATION|MIN..MAX")]
    pub think_time: Option<String>,
    /// Open model: start hits at this rate whatever the latency (with -d), e.g. 200/s
    #[arg(long, value_name = "N/s")]
    pub rate: Option<String>,
    /// Open model: move the rate linearly through stages, e.g. 50/s:30s,200/s:1m
    #[arg(long, value_name = "RATE:DURATION,...")]
    pub rate_stages: Option<String>,
    /// Open model: most virtual users serving the arrivals [default: 1000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_users: Option<u64>,
}

/// How the run is reported: the outputs and their options, pass/fail criteria, a baseline. Also
/// what `loads report` and `loads attach` take to render a stored or followed run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
#[command(next_help_heading = "Reports")]
pub struct ReportArgs {
    /// Output to add to the terminal's (repeatable): html, json, junit, csv, file; `null` (or
    /// -q) leaves the terminal's stdout output out
    #[arg(short = 'o', long = "output", value_name = "NAME")]
    #[serde(deserialize_with = "one_or_many::deserialize")]
    pub outputs: Vec<String>,
    /// Options of the outputs.
    #[command(flatten)]
    pub output_options: OutputOptions,
    /// Pass/fail criterion on the whole run (repeatable): p95<200ms, errors<1%, failures==0,
    /// rps>500, "GET /api/items p99<1s"; a failed one makes the exit code 99
    #[arg(long = "threshold", value_name = "EXPR")]
    #[serde(deserialize_with = "one_or_many::deserialize")]
    pub thresholds: Vec<String>,
    /// Show the changes against an earlier run's JSON summary (written by `--output json`)
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<String>,
}

impl ReportArgs {
    /// These arguments with the outputs a run uses: `stdout` first, then each output given,
    /// once (`-o json` adds to the terminal's summary, as in the seed system, k6 and Locust);
    /// `quiet` (`-q`) removes `stdout`, and so does the `null` output unless `stdout` is given
    /// too; `null` itself reports nothing.
    pub fn resolved(&self, quiet: bool) -> ReportArgs {
        let given = |name: &str| self.outputs.iter().any(|o| o == name);
        let terminal = !quiet && (given("stdout") || !given("null"));
        let mut outputs: Vec<String> = std::iter::once("stdout".to_owned())
            .filter(|_| terminal)
            .chain(
                self.outputs
                    .iter()
                    .filter(|o| *o != "stdout" && *o != "null")
                    .cloned(),
            )
            .collect();
        let mut seen = std::collections::HashSet::new();
        outputs.retain(|o| seen.insert(o.clone()));
        ReportArgs {
            outputs,
            ..self.clone()
        }
    }
}

/// End-of-run notifiers: what the broker calls when a cluster run ends. (The JSON names, which
/// travel to agents and brokers, keep the earlier word "observer", and so do the options' ids,
/// which the config file's keys are mapped through; `--observer…` remain aliases.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
#[command(next_help_heading = "Notifiers (cluster runs)")]
pub struct NotifyArgs {
    /// With --agents: notify when the run ends, on the broker (repeatable): webhook, email, chat
    #[arg(
        id = "observers",
        long = "notify",
        alias = "observer",
        value_name = "NAME",
        requires = "agents"
    )]
    #[serde(rename = "observers", deserialize_with = "one_or_many::deserialize")]
    pub notifiers: Vec<String>,
    /// Where the webhook notifier POSTs the JSON summary
    #[arg(
        id = "observer_webhook_url",
        long = "notify-webhook-url",
        alias = "observer-webhook-url",
        value_name = "URL"
    )]
    #[serde(rename = "observer_webhook_url")]
    pub webhook_url: Option<String>,
    /// Where the chat notifier POSTs {"text": "…"}, a short summary: a Slack incoming webhook,
    /// a Matrix hookshot webhook or any endpoint that takes that JSON
    #[arg(long = "notify-chat-url", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_url: Option<String>,
    /// Whom the email notifier writes to
    #[arg(
        id = "observer_email_to",
        long = "notify-email-to",
        alias = "observer-email-to",
        value_name = "ADDRESS"
    )]
    #[serde(rename = "observer_email_to")]
    pub email_to: Option<String>,
    /// The SMTP server of the email notifier
    #[arg(
        id = "observer_email_smtp",
        long = "notify-email-smtp",
        alias = "observer-email-smtp",
        value_name = "HOST:PORT"
    )]
    #[serde(rename = "observer_email_smtp")]
    pub email_smtp: Option<String>,
    /// The sender of the email notifier's mails (default: loads@localhost)
    #[arg(
        id = "observer_email_from",
        long = "notify-email-from",
        alias = "observer-email-from",
        value_name = "ADDRESS"
    )]
    #[serde(rename = "observer_email_from")]
    pub email_from: Option<String>,
    /// The subject of the email notifier's mails: `{test}`, `{verdict}` (finished, stopped or
    /// failed) and `{run_id}` are replaced [default: "loads: run {run_id} of {test} {verdict}"]
    #[arg(long = "notify-email-subject", value_name = "TEMPLATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_subject: Option<String>,
    /// The user the email notifier logs in to the SMTP server as (AUTH PLAIN or LOGIN, with
    /// --notify-email-password); refused over a plain connection to a host beyond loopback
    #[arg(long = "notify-email-user", value_name = "USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_user: Option<String>,
    /// The password of --notify-email-user; better from the environment, LOADS_SMTP_PASSWORD,
    /// than on a command line that others can read. Never shown, stored, or sent to agents
    #[arg(
        long = "notify-email-password",
        value_name = "PASSWORD",
        env = "LOADS_SMTP_PASSWORD",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_password: Option<super::Secret>,
    /// How the email notifier secures its connection: none (plain SMTP), starttls (plain, then
    /// STARTTLS, required before anything is sent) or tls (TLS from the start, port 465 as a
    /// rule); certificates are checked against the Mozilla roots [default: none]
    #[arg(long = "notify-email-tls", value_name = "MODE", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_tls: Option<EmailTls>,
}

/// How the email notifier secures its connection to the SMTP server (`--notify-email-tls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain SMTP (a relay on the cluster's own network).
    #[default]
    None,
    /// A plain connection upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// TLS from the first byte (SMTPS, "implicit TLS").
    Tls,
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of threads from 1 to {MAX_THREADS}"
        )),
    }
}

/// `n` divided among `count` agents: the part of agent `index` (the first ones take the
/// remainder).
pub fn share_of(n: u64, (index, count): (u64, u64)) -> u64 {
    let count = count.max(1);
    n / count + u64::from(index < n % count)
}

/// Options of the outputs, `--output-NAME-OPTION` on the command line and `output-NAME-OPTION`
/// in the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct OutputOptions {
    /// File of the html output [default: loads-report.html]
    #[arg(long = "output-html-path", value_name = "FILE")]
    pub html_path: Option<String>,
    /// File of the json output [default: loads-summary.json]
    #[arg(long = "output-json-path", value_name = "FILE")]
    pub json_path: Option<String>,
    /// File of the junit output [default: loads-junit.xml]
    #[arg(long = "output-junit-path", value_name = "FILE")]
    pub junit_path: Option<String>,
    /// Prefix of the csv output's PREFIX_stats.csv, PREFIX_history.csv and PREFIX_tests.csv [default: loads]
    #[arg(long = "output-csv-path", value_name = "PREFIX")]
    pub csv_path: Option<String>,
    /// File of the file output (JSON lines) [default: loads-events.jsonl]
    #[arg(long = "output-file-path", value_name = "FILE")]
    pub file_path: Option<String>,
}

/// Most worker threads a run may ask for.
pub const MAX_THREADS: usize = 1024;

impl PlanArgs {
    /// The test, `SUITE::TEST` or a mix (empty when none is given; the runner reports it); with
    /// scenarios, each scenario's name and tests: `shoppers: blog::browse=70 blog::checkout=30;
    /// admins: blog::admin_report`.
    pub fn test(&self) -> String {
        if self.scenarios.is_empty() {
            return self.tests.join(" ");
        }
        let parts: Vec<String> = self
            .scenarios
            .iter()
            .map(|s| format!("{}: {}", s.name, s.tests.join(" ")))
            .collect();
        parts.join("; ")
    }

    /// The run's scenarios, checked: each one's plan (this process's share of it) and start
    /// delay. With scenarios the run gives no test and no model of its own (each scenario has
    /// its own); without them the run is one unnamed scenario of its test and model.
    pub(crate) fn checked_scenarios(&self) -> Result<Vec<ScenarioPlan<'_>>, UsageError> {
        let top = self.plan()?;
        if self.scenarios.is_empty() {
            return Ok(vec![(None, top, Duration::ZERO)]);
        }
        if !self.tests.is_empty() {
            return Err(UsageError::new(
                "test",
                "a run with [[scenario]] tables takes its tests from them: remove the test given on the command line (or the config file's `test` key)",
            ));
        }
        if self.model != ModelArgs::default() {
            return Err(UsageError::new(
                "[[scenario]]",
                "with [[scenario]] tables each scenario has its own load model: remove the run's own -u, --hits, -d, --stages, --rate, --rate-stages, --think-time, --ramp-up and --max-users (or move them into the scenarios)",
            ));
        }
        super::scenario::check_names(&self.scenarios)?;
        if self.raw_events {
            return Err(UsageError::new(
                "--raw-events",
                "--raw-events cannot be used with [[scenario]] tables: raw events carry no scenario, so the per-scenario figures would be lost",
            ));
        }
        self.scenarios
            .iter()
            .map(|s| {
                let (plan, after) = s.checked(self.share, self.raw_events)?;
                Ok((Some(s), plan, after))
            })
            .collect()
    }

    /// The users' cycles [default: one user].
    pub fn users(&self) -> Cycles {
        self.model.users()
    }

    /// The request timeout in seconds [default: [`DEFAULT_REQUEST_TIMEOUT`]].
    pub fn request_timeout_secs(&self) -> f64 {
        self.request_timeout
            .map_or(DEFAULT_REQUEST_TIMEOUT, |s| s.0)
    }

    /// The request timeout as a duration (the default when the value is not a valid one; the
    /// plan check reports it).
    pub fn request_timeout(&self) -> Duration {
        duration_from_secs(self.request_timeout_secs())
            .unwrap_or(Duration::from_secs(DEFAULT_REQUEST_TIMEOUT as u64))
    }

    /// How long a runner process of a hits step may run (`--external-process-timeout`); `None`
    /// for no limit (or a value that is not a valid one: the plan check reports it).
    pub fn external_process_timeout(&self) -> Option<Duration> {
        self.external_process_timeout
            .and_then(|t| duration_from_secs(t.0).ok())
            .filter(|d| !d.is_zero())
    }

    /// The worker threads to use.
    pub fn worker_threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, MAX_THREADS)
    }

    /// The validated load plan: one user and one hit unless told otherwise. (The options of
    /// the outputs, thresholds and notifiers are checked by the floors that own them:
    /// `runner::checked_plan`.)
    pub(crate) fn plan(&self) -> Result<Plan, UsageError> {
        duration_from_secs(self.request_timeout_secs())
            .map_err(|e| UsageError::invalid("--request-timeout", e))?;
        if let Some(t) = self.external_process_timeout {
            let d = duration_from_secs(t.0)
                .map_err(|e| UsageError::invalid("--external-process-timeout", e))?;
            if d.is_zero() {
                return Err(UsageError::invalid(
                    "--external-process-timeout",
                    "0: give a duration longer than 0, e.g. 5m",
                ));
            }
        }
        if let Some(t) = self.threads
            && !(1..=MAX_THREADS).contains(&t)
        {
            return Err(UsageError::invalid(
                "--threads",
                format!("{t}: expected 1 to {MAX_THREADS}"),
            ));
        }
        if let Some(u) = &self.server_url {
            let parsed = url::Url::parse(u).map_err(|e| {
                UsageError::invalid(
                    "--server-url",
                    format!("{u:?}: {e}; expected an absolute URL such as http://127.0.0.1:8080"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(UsageError::invalid(
                    "--server-url",
                    format!("{u:?}: the scheme must be http or https, e.g. http://127.0.0.1:8080"),
                ));
            }
        }
        super::data::check_specs(&self.data).map_err(|e| UsageError::invalid("--data", e))?;
        self.model.plan(self.share, self.raw_events)
    }
}

impl ModelArgs {
    /// The users' cycles [default: one user].
    pub fn users(&self) -> Cycles {
        self.users.clone().unwrap_or_default()
    }

    /// The validated plan of this model, for this process's `share` of a cluster run (the
    /// stages' users, the rate and the pool are divided); `raw_events` cannot go with a rate.
    pub(crate) fn plan(
        &self,
        share: Option<(u64, u64)>,
        raw_events: bool,
    ) -> Result<Plan, UsageError> {
        let stop = match (&self.hits, self.duration) {
            (Some(_), Some(_)) => {
                return Err(UsageError::new(
                    "--hits",
                    "--hits and --duration (or the config keys hits and duration) cannot be used together: a run is made of hits or lasts a duration",
                ));
            }
            (Some(h), None) => Stop::Hits(h.clone()),
            (None, Some(d)) => Stop::Duration(
                duration_from_secs(d.0).map_err(|e| UsageError::invalid("--duration", e))?,
            ),
            (None, None) => Stop::Hits(Cycles::default()),
        };
        let mut plan = Plan::cycles(self.users(), stop);
        self.model_into(&mut plan, share, raw_events)?;
        plan.check()?;
        Ok(plan)
    }

    /// Adds ramp-up, think time, stages or rate to a cycles plan, checking the combinations.
    fn model_into(
        &self,
        plan: &mut Plan,
        share: Option<(u64, u64)>,
        raw_events: bool,
    ) -> Result<(), UsageError> {
        let open = self.rate.is_some() || self.rate_stages.is_some();
        let explicit_users = self.users.as_ref().is_some_and(|u| *u != Cycles::default());
        if let Some(t) = &self.think_time {
            if open {
                return Err(UsageError::new(
                    "--think-time",
                    "--think-time is for closed models: in the open model (--rate) hits start at the arrival rate",
                ));
            }
            plan.think = Some(
                super::plan::parse_think_time(t)
                    .map_err(|e| UsageError::invalid("--think-time", e))?,
            );
        }
        if let Some(r) = self.ramp_up {
            if open || self.stages.is_some() {
                return Err(UsageError::new(
                    "--ramp-up",
                    "--ramp-up is for users × hits cycles; with --stages or --rate the stages ramp the load",
                ));
            }
            plan.ramp_up =
                Some(duration_from_secs(r.0).map_err(|e| UsageError::invalid("--ramp-up", e))?);
        }
        if self.max_users.is_some() && !open {
            return Err(UsageError::new(
                "--max-users",
                "--max-users sizes the open model's pool: use it with --rate",
            ));
        }
        let share = share.unwrap_or((0, 1));
        let count = share.1;
        if let Some(st) = &self.stages {
            if open {
                return Err(UsageError::new(
                    "--stages",
                    "--stages (closed model) and --rate (open model) cannot be used together",
                ));
            }
            if self.hits.is_some() || self.duration.is_some() || explicit_users {
                return Err(UsageError::new(
                    "--stages",
                    "--stages sets the users and the duration: remove -u, --hits and -d",
                ));
            }
            let stages: Vec<(u64, Duration)> = super::plan::parse_stages(st)
                .map_err(|e| UsageError::invalid("--stages", e))?
                .into_iter()
                .map(|(u, d)| (share_of(u, share), d))
                .collect();
            let total: Duration = stages.iter().map(|(_, d)| *d).sum();
            let peak = stages.iter().map(|(u, _)| *u).max().unwrap_or(0);
            plan.users = Cycles::one(peak);
            plan.stop = Stop::Duration(total);
            plan.model = Model::Stages(stages);
        } else if open {
            if self.hits.is_some() || explicit_users {
                return Err(UsageError::new(
                    "--rate",
                    "the open model (--rate) starts hits at a rate: remove -u and --hits (--max-users sizes its pool)",
                ));
            }
            let start = match &self.rate {
                Some(r) => {
                    super::plan::parse_rate(r).map_err(|e| UsageError::invalid("--rate", e))?
                }
                None => 0.0,
            };
            let stages = match (&self.rate_stages, self.duration) {
                (Some(_), Some(_)) => {
                    return Err(UsageError::new(
                        "--rate-stages",
                        "--rate-stages sets the duration: remove -d",
                    ));
                }
                (Some(rs), None) => super::plan::parse_rate_stages(rs)
                    .map_err(|e| UsageError::invalid("--rate-stages", e))?,
                (None, Some(d)) => vec![(
                    start,
                    duration_from_secs(d.0).map_err(|e| UsageError::invalid("--duration", e))?,
                )],
                (None, None) => {
                    return Err(UsageError::new(
                        "--rate",
                        "--rate needs a duration: add -d (e.g. --rate 200/s -d 1m) or --rate-stages",
                    ));
                }
            };
            // Each agent takes its share of the rate (an exact division) and of the pool.
            let part = |r: f64| r / count.max(1) as f64;
            let max_users = self.max_users.unwrap_or(super::plan::DEFAULT_MAX_USERS);
            if max_users == 0 || max_users > MAX_USERS {
                return Err(UsageError::invalid(
                    "--max-users",
                    format!("{max_users}: expected 1 to {MAX_USERS}"),
                ));
            }
            let stages: Vec<(f64, Duration)> =
                stages.into_iter().map(|(r, d)| (part(r), d)).collect();
            let total: Duration = stages.iter().map(|(_, d)| *d).sum();
            plan.stop = Stop::Duration(total);
            if raw_events {
                return Err(UsageError::new(
                    "--raw-events",
                    "--raw-events sends request times as measured, not from each hit's intended start: it cannot be used with --rate",
                ));
            }
            plan.model = Model::Rate {
                start: part(start),
                stages,
                max_users: share_of(max_users, share).max(1),
                offset: share.0 as f64 / count.max(1) as f64,
            };
        }
        Ok(())
    }
}

/// A new run id: time-based and unique enough to tell runs apart.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}-{:04x}",
        now.as_secs(),
        (now.subsec_nanos() >> 8) & 0xffff ^ std::process::id() & 0xffff
    )
}
