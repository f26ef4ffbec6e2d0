//! The run summary as one documented, stable JSON document ([`Summary`]): what the `json` output
//! writes, what `--baseline` reads back, and what the HTML report and the webhook observer show.
//! Built from a finished (or running) [`TestResult`](super::TestResult); request times are in milliseconds.
//! The fields are described in `docs/outputs.md`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::stats::{Latency, Problem, RequestStats, SocketStats, TestCounts, TestStats};
use super::threshold::Verdict;

/// Version of the summary format; bumped when a field changes meaning.
pub const SUMMARY_FORMAT: u32 = 1;

/// Request-time figures in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencySummary {
    /// Number of requests measured.
    pub count: u64,
    /// Mean (ms).
    pub mean: f64,
    /// Shortest (ms).
    pub min: f64,
    /// Median (ms).
    pub p50: f64,
    /// 90th percentile (ms).
    pub p90: f64,
    /// 95th percentile (ms).
    pub p95: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// 99.9th percentile (ms).
    pub p999: f64,
    /// Longest (ms).
    pub max: f64,
}

impl LatencySummary {
    /// The figures of a histogram (recorded in microseconds).
    pub fn of(l: &Latency) -> Self {
        if l.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: l.len(),
            mean: l.mean() / 1000.0,
            min: ms(l.0.min()),
            p50: ms(l.quantile(0.50)),
            p90: ms(l.quantile(0.90)),
            p95: ms(l.quantile(0.95)),
            p99: ms(l.quantile(0.99)),
            p999: ms(l.quantile(0.999)),
            max: ms(l.max()),
        }
    }
}

/// What the open model (`--rate`) adds. Its request times (`latency`, `urls`) count from each
/// hit's intended start (corrected for coordinated omission); these are the uncorrected ones.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenSummary {
    /// Request times from each request's send (ms).
    pub latency_uncorrected: LatencySummary,
    /// Hit (test) times from each hit's intended start (ms).
    pub hit_time: LatencySummary,
    /// Hit times from each hit's actual start (ms).
    pub hit_time_uncorrected: LatencySummary,
    /// Starts that never happened (no free virtual user in time).
    pub dropped: u64,
}

/// The figures of one test, scenario or lifecycle hook: the outcome counts (flattened:
/// `started`, `hits`, `successes`, `failures`, `errors`), the rate and the hit durations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TestSummary {
    /// Outcome counts (for a hook: its runs).
    #[serde(flatten)]
    pub counts: TestCounts,
    /// Hits per second over the run.
    #[serde(default)]
    pub hits_per_second: f64,
    /// Hit durations (ms): each hit's whole time, from just before its set-up to just after
    /// its tear-down (`count` is the hits measured).
    #[serde(default)]
    pub duration: LatencySummary,
}

impl TestSummary {
    /// The summary of `t` over a run of `secs` seconds.
    pub fn of(t: &TestStats, secs: f64) -> Self {
        TestSummary {
            counts: t.counts,
            hits_per_second: per_second(t.counts.hits, secs),
            duration: LatencySummary::of(&t.duration),
        }
    }

    /// The summaries of a map of figures.
    pub fn all(m: &BTreeMap<String, TestStats>, secs: f64) -> BTreeMap<String, TestSummary> {
        m.iter()
            .map(|(k, t)| (k.clone(), TestSummary::of(t, secs)))
            .collect()
    }
}

/// Statistics of one URL and method.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UrlSummary {
    /// HTTP method.
    pub method: String,
    /// The URL.
    pub url: String,
    /// Requests made.
    pub requests: u64,
    /// Requests per second over the run.
    pub rps: f64,
    /// Requests without a response (status 0) or with a status of 400 or more.
    pub http_errors: u64,
    /// Responses by status code (`"0"`: no response).
    pub statuses: BTreeMap<String, u64>,
    /// Request times (ms).
    pub latency: LatencySummary,
}

/// One second of the run's history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecondSummary {
    /// Unix time of the second.
    pub time: i64,
    /// Hits that ended in this second.
    pub hits: u64,
    /// Of which successes.
    pub successes: u64,
    /// Of which failures.
    pub failures: u64,
    /// Of which errors.
    pub errors: u64,
    /// Requests that ended in this second.
    pub requests: u64,
    /// WebSocket messages sent and received in this second.
    pub socket_messages: u64,
    /// Active virtual users (all agents).
    pub users: u64,
    /// Open model: arrivals due in this second that never started.
    #[serde(default, skip_serializing_if = "super::timeline::is_zero")]
    pub dropped: u64,
    /// Median request time (ms), when requests ended in this second.
    pub p50: Option<f64>,
    /// 95th percentile (ms).
    pub p95: Option<f64>,
    /// 99th percentile (ms).
    pub p99: Option<f64>,
    /// Mean (ms).
    pub mean: Option<f64>,
    /// Slowest request of the second (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A change of the load made while the run went on (from the dashboard).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadChange {
    /// Unix time of the change (seconds).
    pub time: f64,
    /// The scenario changed (`None`: the whole run).
    pub scenario: Option<String>,
    /// The number of virtual users asked for (a closed model), the run's total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    /// The arrivals per second asked for (the open model), the run's total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// A description, e.g. `users 5 → 20`.
    pub what: String,
}

/// One agent of a cluster run, as the caller saw its results.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSummary {
    /// The agent's id.
    pub id: String,
    /// Its host.
    pub hostname: String,
    /// Hits its worker made.
    pub hits: u64,
    /// Its share of the run's hits (0 to 1).
    pub share: f64,
    /// Unix time of its last event (seconds).
    pub last_event: f64,
    /// The broker lost it during the run.
    pub lost: bool,
}

/// The summary of a run. Field names are stable (see [`SUMMARY_FORMAT`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// [`SUMMARY_FORMAT`].
    pub format: u32,
    /// The run's id.
    pub run_id: String,
    /// The test (`suite::test`).
    pub test: String,
    /// `--project-name`.
    pub project_name: Option<String>,
    /// `--server-url`.
    pub server_url: Option<String>,
    /// The load plan, human-readable.
    pub plan: String,
    /// Agents (1 for a local run).
    pub agents: u64,
    /// Start time, RFC 3339.
    pub started: String,
    /// End time, RFC 3339 (absent while running).
    pub ended: Option<String>,
    /// Duration in seconds.
    pub duration: f64,
    /// Stopped before the end of its plan (Ctrl-C, `loads stop`).
    pub interrupted: bool,
    /// Why `--abort-on-threshold` stopped the run, if it did.
    pub aborted: Option<String>,
    /// Hits: test runs that ended.
    pub hits: u64,
    /// Hits that succeeded.
    pub successes: u64,
    /// Hits that failed an assertion.
    pub failures: u64,
    /// Hits that ended with an error.
    pub errors: u64,
    /// Hits per second.
    pub hits_per_second: f64,
    /// HTTP requests.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Request times of all requests (ms).
    pub latency: LatencySummary,
    /// Responses by status code, all URLs together.
    pub statuses: BTreeMap<String, u64>,
    /// Per URL and method.
    pub urls: Vec<UrlSummary>,
    /// Per test (`suite::test`): started, hits, successes, failures, errors, hits per second
    /// and hit durations.
    pub tests: BTreeMap<String, TestSummary>,
    /// The same per scenario (empty in a run without scenarios).
    pub scenarios: BTreeMap<String, TestSummary>,
    /// The same per lifecycle hook of the virtual users (`suite::on_start`, `suite::on_stop`):
    /// runs of the hook, which are not hits.
    pub lifecycle: BTreeMap<String, TestSummary>,
    /// Custom counters (`incr_counter`).
    pub counters: BTreeMap<String, u64>,
    /// WebSocket figures.
    pub sockets: SocketStats,
    /// Distinct failures and errors with counts (at most 100; see `problems_dropped`).
    pub problems: Vec<Problem>,
    /// Failures and errors beyond the 100 distinct ones kept.
    pub problems_dropped: u64,
    /// Problems of the run itself (a lost agent...).
    pub run_problems: Vec<String>,
    /// `--threshold` verdicts.
    pub thresholds: Vec<Verdict>,
    /// Per-second history.
    pub timeline: Vec<SecondSummary>,
    /// Open model (`--rate`) figures; absent for closed models.
    pub open_model: Option<OpenSummary>,
    /// Changes of the load made while the run went on (the dashboard's), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<LoadChange>,
    /// The agents of a cluster run, by id, with their share of the hits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_agent: Vec<AgentSummary>,
    /// Every hit and lifecycle hook succeeded, no run problem, every threshold passed.
    pub success: bool,
}

pub(super) fn statuses(r: &RequestStats) -> BTreeMap<String, u64> {
    r.statuses
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect()
}

pub(super) fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

impl Summary {
    /// Reads a summary written by the `json` output (for `--baseline`).
    pub fn read(path: &std::path::Path) -> Result<Summary, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the baseline {}: {e}", path.display()))?;
        let s: Summary = serde_json::from_str(&text).map_err(|e| {
            format!(
                "the baseline {} is not a loads JSON summary (write one with `--output json`): {e}",
                path.display()
            )
        })?;
        if s.format == 0 || s.format > SUMMARY_FORMAT {
            return Err(format!(
                "the baseline {} has summary format {} but this loads reads format {SUMMARY_FORMAT}: write it again with `--output json`",
                path.display(),
                s.format
            ));
        }
        Ok(s)
    }
}

/// One figure compared with a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// What is compared (`rps`, `p95`...).
    pub name: String,
    /// This run's value.
    pub current: f64,
    /// The baseline's value.
    pub baseline: f64,
    /// Relative change in percent (`None` when the baseline is 0).
    pub change_percent: Option<f64>,
    /// Whether the change is an improvement (higher rps, lower times and errors); `None` when
    /// unchanged.
    pub better: Option<bool>,
    /// Unit of the values: `ms`, `/s` or empty.
    pub unit: String,
}

/// This run's main figures against `baseline`'s.
pub fn compare(current: &Summary, baseline: &Summary) -> Vec<Delta> {
    let fields: [(&str, f64, f64, bool, &str); 9] = [
        ("rps", current.rps, baseline.rps, true, "/s"),
        (
            "hits/s",
            current.hits_per_second,
            baseline.hits_per_second,
            true,
            "/s",
        ),
        (
            "mean",
            current.latency.mean,
            baseline.latency.mean,
            false,
            "ms",
        ),
        (
            "p50",
            current.latency.p50,
            baseline.latency.p50,
            false,
            "ms",
        ),
        (
            "p95",
            current.latency.p95,
            baseline.latency.p95,
            false,
            "ms",
        ),
        (
            "p99",
            current.latency.p99,
            baseline.latency.p99,
            false,
            "ms",
        ),
        (
            "max",
            current.latency.max,
            baseline.latency.max,
            false,
            "ms",
        ),
        (
            "failures",
            current.failures as f64,
            baseline.failures as f64,
            false,
            "",
        ),
        (
            "errors",
            current.errors as f64,
            baseline.errors as f64,
            false,
            "",
        ),
    ];
    fields
        .into_iter()
        .map(|(name, cur, base, higher_is_better, unit)| {
            let change_percent = (base != 0.0).then(|| (cur - base) * 100.0 / base);
            let better = if (cur - base).abs() < 1e-12 {
                None
            } else {
                Some((cur > base) == higher_is_better)
            };
            Delta {
                name: name.into(),
                current: cur,
                baseline: base,
                change_percent,
                better,
                unit: unit.into(),
            }
        })
        .collect()
}

impl Delta {
    /// `+5.2%`, `-3.0%`, `±0%` or `(was 0)`.
    pub fn change_text(&self) -> String {
        match (self.change_percent, self.better) {
            (_, None) => "±0%".into(),
            (Some(p), _) => format!("{p:+.1}%"),
            (None, _) => format!("{:+}", self.current - self.baseline),
        }
    }
}
