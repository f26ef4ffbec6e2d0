//! [`RunArgs`]: everything a runner needs to execute a run, in one serialisable struct — the
//! same JSON object travels to agents in each job. It enters from the command line and the
//! config file (the CLI builds it), and from the broker's job on a worker; it leaves as the load
//! [`Plan`] it checks ([`RunArgs::plan`]) and as the options the outputs, thresholds and
//! notifiers read.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::UsageError;
use super::plan::{Cycles, MAX_USERS, Model, Plan, Stop};
use super::units::duration_from_secs;

/// Default request timeout, in seconds.
pub const DEFAULT_REQUEST_TIMEOUT: f64 = 30.0;

/// Everything a runner needs to execute a run. Serialisable: the same struct is sent to agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunArgs {
    /// The test to run, `suite::test`.
    pub test: String,
    /// Virtual users of each cycle step.
    pub users: Cycles,
    /// Hits of each cycle step (exclusive with `duration`).
    pub hits: Option<Cycles>,
    /// Duration of each cycle step in seconds (exclusive with `hits`).
    pub duration: Option<f64>,
    /// The server URL that `app` resolves against.
    pub server_url: Option<String>,
    /// Outputs by name.
    pub outputs: Vec<String>,
    /// Project name shown in reports.
    pub project_name: Option<String>,
    /// Timeout of each HTTP request and WebSocket wait, in seconds.
    pub request_timeout: f64,
    /// Identifier of the run.
    pub run_id: String,
    /// Worker threads for the virtual users (default: one per available core).
    pub threads: Option<usize>,
    /// Record and send every event one by one instead of per-second batches (debugging,
    /// external tools).
    pub raw_events: bool,
    /// End-of-run observers the broker calls (`webhook`, `email`).
    pub observers: Vec<String>,
    /// Where the `webhook` observer POSTs the summary.
    pub observer_webhook_url: Option<String>,
    /// Whom the `email` observer writes to.
    pub observer_email_to: Option<String>,
    /// The SMTP server of the `email` observer, `HOST:PORT`.
    pub observer_email_smtp: Option<String>,
    /// The sender of the `email` observer's mails.
    pub observer_email_from: Option<String>,
    /// Options of the outputs (`--output-NAME-OPTION`).
    pub output_options: OutputOptions,
    /// Pass/fail criteria (`--threshold`), judged on the whole run.
    pub thresholds: Vec<String>,
    /// Stop the run as soon as a threshold can no longer pass.
    pub abort_on_threshold: bool,
    /// A JSON summary of an earlier run to compare with (`--baseline`), read by the caller.
    pub baseline: Option<String>,
    /// Run the test through this external command, one process per virtual user
    /// (`--test-runner "CMD ARGS {test}"`), instead of a registered Rust test.
    pub test_runner: Option<String>,
    /// Cycles model: start a step's users evenly over this many seconds.
    pub ramp_up: Option<f64>,
    /// Closed model by stages, `USERS:DURATION,…`.
    pub stages: Option<String>,
    /// Pause between a user's hits: `DURATION` or `MIN..MAX`.
    pub think_time: Option<String>,
    /// Open model: hits start at this rate (`200/s`).
    pub rate: Option<String>,
    /// Open model: the rate moves linearly through `RATE:DURATION,…`.
    pub rate_stages: Option<String>,
    /// Open model: most virtual users in the pool.
    pub max_users: Option<u64>,
    /// This process's share of a cluster run, `(index, count)`: the broker sets it per agent, and
    /// the stages' users, the rate and the pool are divided (remainders to the first agents).
    pub share: Option<(u64, u64)>,
}

/// `n` divided among `count` agents: the part of agent `index` (the first ones take the
/// remainder).
pub fn share_of(n: u64, (index, count): (u64, u64)) -> u64 {
    let count = count.max(1);
    n / count + u64::from(index < n % count)
}

/// Options of the outputs, `--output-NAME-OPTION` on the command line and `output-NAME-OPTION`
/// in the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputOptions {
    /// `--output-html-path` [default: `loads-report.html`].
    pub html_path: Option<String>,
    /// `--output-json-path` [default: `loads-summary.json`].
    pub json_path: Option<String>,
    /// `--output-junit-path` [default: `loads-junit.xml`].
    pub junit_path: Option<String>,
    /// `--output-csv-path`: the prefix of `PREFIX_stats.csv` and `PREFIX_history.csv`
    /// [default: `loads`].
    pub csv_path: Option<String>,
    /// `--output-file-path` [default: `loads-events.jsonl`].
    pub file_path: Option<String>,
}

/// Most worker threads a run may ask for.
pub const MAX_THREADS: usize = 1024;

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            test: String::new(),
            users: Cycles::default(),
            hits: None,
            duration: None,
            server_url: None,
            outputs: vec!["stdout".into()],
            project_name: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            run_id: String::new(),
            threads: None,
            raw_events: false,
            observers: Vec::new(),
            observer_webhook_url: None,
            observer_email_to: None,
            observer_email_smtp: None,
            observer_email_from: None,
            output_options: OutputOptions::default(),
            thresholds: Vec::new(),
            abort_on_threshold: false,
            baseline: None,
            test_runner: None,
            ramp_up: None,
            stages: None,
            think_time: None,
            rate: None,
            rate_stages: None,
            max_users: None,
            share: None,
        }
    }
}

impl RunArgs {
    /// The request timeout as a duration (the default when the value is not a valid one; the
    /// plan check reports it).
    pub fn request_timeout(&self) -> Duration {
        duration_from_secs(self.request_timeout)
            .unwrap_or(Duration::from_secs(DEFAULT_REQUEST_TIMEOUT as u64))
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
    pub fn plan(&self) -> Result<Plan, UsageError> {
        let stop = match (&self.hits, self.duration) {
            (Some(_), Some(_)) => {
                return Err(UsageError(
                    "--hits and --duration (or the config keys hits and duration) cannot be used together: a run is made of hits or lasts a duration"
                        .into(),
                ));
            }
            (Some(h), None) => Stop::Hits(h.clone()),
            (None, Some(d)) => Stop::Duration(
                duration_from_secs(d)
                    .map_err(|e| UsageError(format!("invalid --duration: {e}")))?,
            ),
            (None, None) => Stop::Hits(Cycles::default()),
        };
        duration_from_secs(self.request_timeout)
            .map_err(|e| UsageError(format!("invalid --request-timeout: {e}")))?;
        if let Some(t) = self.threads
            && !(1..=MAX_THREADS).contains(&t)
        {
            return Err(UsageError(format!(
                "invalid --threads {t}: expected 1 to {MAX_THREADS}"
            )));
        }
        if let Some(u) = &self.server_url {
            let parsed = url::Url::parse(u).map_err(|e| {
                UsageError(format!(
                    "invalid --server-url {u:?}: {e}; expected an absolute URL such as http://127.0.0.1:8080"
                ))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(UsageError(format!(
                    "invalid --server-url {u:?}: the scheme must be http or https, e.g. http://127.0.0.1:8080"
                )));
            }
        }
        let mut plan = Plan::cycles(self.users.clone(), stop);
        self.model_into(&mut plan).map_err(UsageError)?;
        plan.check().map_err(UsageError)?;
        Ok(plan)
    }

    /// Adds ramp-up, think time, stages or rate to a cycles plan, checking the combinations.
    fn model_into(&self, plan: &mut Plan) -> Result<(), String> {
        let open = self.rate.is_some() || self.rate_stages.is_some();
        let explicit_users = self.users != Cycles::default();
        if let Some(t) = &self.think_time {
            if open {
                return Err("--think-time is for closed models: in the open model (--rate) hits start at the arrival rate".into());
            }
            plan.think = Some(
                super::plan::parse_think_time(t)
                    .map_err(|e| format!("invalid --think-time: {e}"))?,
            );
        }
        if let Some(r) = self.ramp_up {
            if open || self.stages.is_some() {
                return Err("--ramp-up is for users × hits cycles; with --stages or --rate the stages ramp the load".into());
            }
            plan.ramp_up =
                Some(duration_from_secs(r).map_err(|e| format!("invalid --ramp-up: {e}"))?);
        }
        if self.max_users.is_some() && !open {
            return Err("--max-users sizes the open model's pool: use it with --rate".into());
        }
        let share = self.share.unwrap_or((0, 1));
        let count = share.1;
        if let Some(st) = &self.stages {
            if open {
                return Err(
                    "--stages (closed model) and --rate (open model) cannot be used together"
                        .into(),
                );
            }
            if self.hits.is_some() || self.duration.is_some() || explicit_users {
                return Err(
                    "--stages sets the users and the duration: remove -u, --hits and -d".into(),
                );
            }
            let stages: Vec<(u64, Duration)> = super::plan::parse_stages(st)
                .map_err(|e| format!("invalid --stages: {e}"))?
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
                return Err("the open model (--rate) starts hits at a rate: remove -u and --hits (--max-users sizes its pool)".into());
            }
            let start = match &self.rate {
                Some(r) => {
                    super::plan::parse_rate(r).map_err(|e| format!("invalid --rate: {e}"))?
                }
                None => 0.0,
            };
            let stages = match (&self.rate_stages, self.duration) {
                (Some(_), Some(_)) => {
                    return Err("--rate-stages sets the duration: remove -d".into());
                }
                (Some(rs), None) => super::plan::parse_rate_stages(rs)
                    .map_err(|e| format!("invalid --rate-stages: {e}"))?,
                (None, Some(d)) => vec![(
                    start,
                    duration_from_secs(d).map_err(|e| format!("invalid --duration: {e}"))?,
                )],
                (None, None) => {
                    return Err("--rate needs a duration: add -d (e.g. --rate 200/s -d 1m) or --rate-stages".into());
                }
            };
            // Each agent takes its share of the rate (an exact division) and of the pool.
            let part = |r: f64| r / count.max(1) as f64;
            let max_users = self.max_users.unwrap_or(super::plan::DEFAULT_MAX_USERS);
            if max_users == 0 || max_users > MAX_USERS {
                return Err(format!("--max-users must be 1 to {MAX_USERS}"));
            }
            let stages: Vec<(f64, Duration)> =
                stages.into_iter().map(|(r, d)| (part(r), d)).collect();
            let total: Duration = stages.iter().map(|(_, d)| *d).sum();
            plan.stop = Stop::Duration(total);
            if self.raw_events {
                return Err("--raw-events sends request times as measured, not from each hit's intended start: it cannot be used with --rate".into());
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
