//! Thresholds: pass/fail criteria of a run for CI (`--threshold EXPR`). An expression is parsed
//! once into a [`Threshold`] (a bad one is a usage error that names what is wrong), evaluated on
//! the whole run's merged [`Stats`] into a [`Verdict`] when the run ends, and checked while it
//! runs for `--abort-on-threshold` ([`Threshold::can_no_longer_pass`]).
//!
//! Grammar: `[test=NAME | scenario=NAME] [METHOD] [URL] METRIC OP VALUE`, for example
//! `p95<200ms`, `errors<1%`, `failures==0`, `rps>500`, `GET /api/items p95<100ms`,
//! `test=blog::checkout p95<800ms`, `scenario=admins errors==0`.
//! - METRIC: `p50`, `p90`, `p95`, `p99`, `p99.9` (any `pN` with 0 < N ≤ 100), `mean`, `max`
//!   (request times); `rps` (requests per second); `requests`, `hits` (counts); `failures`,
//!   `errors` (hits that failed or errored: a count, or a percentage of hits with `%`).
//! - OP: `<`, `<=`, `>`, `>=`, `==`, `!=`.
//! - VALUE: a duration for request times (`200ms`, `1s`, `250us`; a bare number is milliseconds),
//!   a number, or a percentage (`1%`) for failures and errors.
//! - A request scope (`GET`, `/api/items`, `GET /api/items`, or a full URL) restricts request
//!   metrics to the matching URLs and methods; there `errors` means requests without a response
//!   or with a status of 400 or more.
//! - A hit scope, `test=NAME` (a full `suite::test`, or a bare test name that only one suite of
//!   the run has) or `scenario=NAME` (NAME without spaces), restricts the metrics to the hits of
//!   that test or scenario: there the time metrics are **hit durations** (each hit's whole time,
//!   set-up and tear-down included), `rps` is its hits per second, `hits`, `failures` and
//!   `errors` its counts (the percentages of its hits); `requests` is not kept per test, and a
//!   hit scope does not combine with a request scope. A test or scenario the run never had
//!   fails the threshold ("no hits of test 'x'").

use serde::{Deserialize, Serialize};
use std::fmt;

use super::stats::{RequestStats, Stats, TestStats};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A request-time percentile, 0 < p ≤ 100.
    Percentile(f64),
    /// Mean request time.
    Mean,
    /// Longest request time.
    Max,
    /// Requests per second over the run.
    Rps,
    /// Number of requests.
    Requests,
    /// Number of hits (test runs).
    Hits,
    /// Hits that failed (an assertion).
    Failures,
    /// Hits that errored; scoped to URLs, requests without a response or with status ≥ 400.
    Errors,
}

impl Metric {
    fn is_latency(self) -> bool {
        matches!(self, Metric::Percentile(_) | Metric::Mean | Metric::Max)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Percentile(p) => write!(f, "p{p}"),
            Metric::Mean => f.write_str("mean"),
            Metric::Max => f.write_str("max"),
            Metric::Rps => f.write_str("rps"),
            Metric::Requests => f.write_str("requests"),
            Metric::Hits => f.write_str("hits"),
            Metric::Failures => f.write_str("failures"),
            Metric::Errors => f.write_str("errors"),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
            Op::Eq => (actual - bound).abs() < 1e-9,
            Op::Ne => (actual - bound).abs() >= 1e-9,
        }
    }
}

/// The unit of a threshold's value (and of its measured value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds.
    Micros,
    /// A percentage (0–100).
    Percent,
    /// A plain number.
    Number,
}

/// The hits a hit-scoped threshold looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One test: its full name `suite::test`, or a bare test name that one suite of the run has.
    Test(String),
    /// One scenario, by name.
    Scenario(String),
}

impl Target {
    /// The hits' figures of this test or scenario in `stats`, or why there are none.
    fn find<'s>(&self, stats: &'s Stats) -> Result<(&'s TestStats, String), String> {
        let listed = |names: Vec<&String>| {
            let shown: Vec<&str> = names.iter().take(10).map(|n| n.as_str()).collect();
            let more = names.len().saturating_sub(shown.len());
            let mut s = shown.join(", ");
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
            s
        };
        let (found, what, name) = match self {
            Target::Test(name) => {
                let found = match stats.tests.get_key_value(name.as_str()) {
                    Some(kv) => Some(kv),
                    None if !name.contains("::") => {
                        let same: Vec<(&String, &TestStats)> = stats
                            .tests
                            .iter()
                            .filter(|(k, _)| k.rsplit_once("::").is_some_and(|(_, t)| t == name))
                            .collect();
                        if same.len() > 1 {
                            return Err(format!(
                                "test '{name}' is ambiguous ({}): write test=SUITE::{name}",
                                listed(same.iter().map(|(k, _)| *k).collect())
                            ));
                        }
                        same.first().copied()
                    }
                    None => None,
                };
                let known = listed(stats.tests.keys().collect());
                match found {
                    Some(kv) => (Some(kv), "test", name),
                    None if known.is_empty() => return Err(format!("no hits of test '{name}'")),
                    None => {
                        return Err(format!(
                            "no hits of test '{name}' (the run's tests: {known})"
                        ));
                    }
                }
            }
            Target::Scenario(name) => match stats.scenarios.get_key_value(name.as_str()) {
                Some(kv) => (Some(kv), "scenario", name),
                None if stats.scenarios.is_empty() => {
                    return Err(format!(
                        "no hits of scenario '{name}' (the run has no scenarios)"
                    ));
                }
                None => {
                    return Err(format!(
                        "no hits of scenario '{name}' (the run's scenarios: {})",
                        listed(stats.scenarios.keys().collect())
                    ));
                }
            },
        };
        match found {
            Some((key, t)) if t.counts.hits > 0 => Ok((t, format!("{what} '{key}'"))),
            _ => Err(format!("no hits of {what} '{name}'")),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Test(n) => write!(f, "test={n}"),
            Target::Scenario(n) => write!(f, "scenario={n}"),
        }
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written.
    pub expression: String,
    /// The HTTP method it is scoped to, if any.
    pub method: Option<String>,
    /// The URL (or path) it is scoped to, if any.
    pub url: Option<String>,
    /// The test or scenario whose hits it looks at, if any.
    pub target: Option<Target>,
    /// What it measures.
    pub metric: Metric,
    /// How the measure compares to the bound.
    pub op: Op,
    /// The bound, in `unit`.
    pub value: f64,
    /// The bound's unit.
    pub unit: Unit,
}

/// A bad threshold expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid threshold {expression:?}: {problem}")]
pub struct ThresholdError {
    /// The expression.
    pub expression: String,
    /// What is wrong, and what is expected.
    pub problem: String,
}

/// The outcome of one threshold on a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The expression as written.
    pub expression: String,
    /// The measured value, in the unit of the expression (`null` when there was nothing to
    /// measure, e.g. no request matched).
    pub actual: Option<f64>,
    /// The measured value, human-readable (`212.40 ms`, `0.52%`, `"no requests"`).
    pub actual_text: String,
    /// Whether the threshold holds.
    pub pass: bool,
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

impl Threshold {
    /// Parses `expression`.
    pub fn parse(expression: &str) -> Result<Threshold, ThresholdError> {
        let err = |problem: String| ThresholdError {
            expression: expression.to_owned(),
            problem,
        };
        let text = expression.trim();
        // The scope comes first: a method and/or a URL, whose query may hold `=`.
        let mut scope_words = Vec::new();
        let mut rest_at = 0;
        for w in text.split_whitespace() {
            let is_scope = METHODS.contains(&w)
                || w.starts_with('/')
                || w.contains("://")
                || scope_word(w).is_some();
            if !is_scope {
                break;
            }
            scope_words.push(w);
            rest_at = text[rest_at..]
                .find(w)
                .map_or(rest_at, |at| rest_at + at + w.len());
        }
        let body = &text[rest_at..];
        // The operator: the first of < > = ! after the scope and metric.
        let op_at = body.find(['<', '>', '=', '!']).ok_or_else(|| {
            err(
                "no comparison: expected METRIC OP VALUE, e.g. p95<200ms, errors<1%, rps>100"
                    .into(),
            )
        })?;
        let (left, rest) = body.split_at(op_at);
        let (op, value_text) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (*op, v.trim())))
        .ok_or_else(|| err("unknown operator: use <, <=, >, >=, == or !=".into()))?;
        let mut words: Vec<&str> = left.split_whitespace().collect();
        let metric_text = words
            .pop()
            .ok_or_else(|| err("no metric before the operator".into()))?;
        let words: Vec<&str> = scope_words.into_iter().chain(words).collect();
        let metric = parse_metric(metric_text).map_err(err)?;
        let (mut method, mut url, mut target) = (None, None, None);
        for w in words {
            if let Some((key, name)) = scope_word(w) {
                let make: fn(String) -> Target = match key.to_ascii_lowercase().as_str() {
                    "test" => Target::Test,
                    "scenario" => Target::Scenario,
                    _ => {
                        return Err(err(format!(
                            "unknown scope {key:?}: use test=NAME (suite::test) or scenario=NAME"
                        )));
                    }
                };
                if name.is_empty() {
                    return Err(err(format!(
                        "{key}= needs a name, e.g. test=blog::checkout or scenario=admins"
                    )));
                }
                if target.is_some() {
                    return Err(err(
                        "more than one test= or scenario= scope: give one per threshold".into(),
                    ));
                }
                target = Some(make(name.to_owned()));
            } else if METHODS.contains(&w) && method.is_none() && url.is_none() {
                method = Some(w.to_owned());
            } else if (w.starts_with('/') || w.contains("://")) && url.is_none() {
                url = Some(w.to_owned());
            } else {
                return Err(err(format!(
                    "unexpected {w:?}: a scope is test=NAME, scenario=NAME, or an HTTP method (GET, POST...) and/or a URL or path starting with /"
                )));
            }
        }
        let scoped = method.is_some() || url.is_some();
        if let Some(t) = &target {
            if scoped {
                return Err(err(format!(
                    "{t} looks at hits, which have no URL or method: drop the method and URL, or the {t}"
                )));
            }
            if metric == Metric::Requests {
                return Err(err(format!(
                    "requests are not counted per test or scenario: use {t} hits, or a URL scope without {t}"
                )));
            }
        }
        if scoped && matches!(metric, Metric::Hits | Metric::Failures) {
            return Err(err(format!(
                "{metric} counts hits (test runs), which have no URL: remove the scope"
            )));
        }
        if value_text.is_empty() {
            return Err(err("no value after the operator".into()));
        }
        let (value, unit) = if metric.is_latency() {
            (parse_latency(value_text).map_err(err)?, Unit::Micros)
        } else if let Some(p) = value_text.strip_suffix('%') {
            if !matches!(metric, Metric::Failures | Metric::Errors) {
                return Err(err(format!("{metric} takes a number, not a percentage")));
            }
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| err(format!("{value_text:?} is not a percentage such as 1%")))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(err(format!("{value_text} is not between 0% and 100%")));
            }
            (v, Unit::Percent)
        } else {
            let t = if metric == Metric::Rps {
                value_text.strip_suffix("/s").unwrap_or(value_text)
            } else {
                value_text
            };
            let v: f64 = t.trim().parse().map_err(|_| {
                err(format!(
                    "{value_text:?} is not a number{}",
                    if matches!(metric, Metric::Failures | Metric::Errors) {
                        " or a percentage such as 1%"
                    } else {
                        ""
                    }
                ))
            })?;
            if !v.is_finite() || v < 0.0 {
                return Err(err(format!("{value_text} must be a non-negative number")));
            }
            (v, Unit::Number)
        };
        Ok(Threshold {
            expression: text.to_owned(),
            method,
            url,
            target,
            metric,
            op,
            value,
            unit,
        })
    }

    fn scoped(&self) -> bool {
        self.method.is_some() || self.url.is_some()
    }

    /// The requests this threshold looks at: all of them, or the matching URLs and methods.
    fn requests(&self, stats: &Stats) -> RequestStats {
        if !self.scoped() {
            return stats.requests.clone();
        }
        let mut out = RequestStats::default();
        for (url, methods) in &stats.urls {
            if let Some(want) = &self.url
                && !url_matches(url, want)
            {
                continue;
            }
            for (method, r) in methods {
                if self.method.as_deref().is_none_or(|m| m == method) {
                    out.add(r);
                }
            }
        }
        out
    }

    /// The measured value of a hit-scoped threshold, or why there is none.
    fn measure_target(
        &self,
        target: &Target,
        stats: &Stats,
        duration_secs: f64,
    ) -> Result<f64, String> {
        let (t, which) = target.find(stats)?;
        let c = &t.counts;
        let share = |n: u64| match self.unit {
            Unit::Percent => n as f64 * 100.0 / c.hits as f64,
            _ => n as f64,
        };
        let d = &t.duration;
        if self.metric.is_latency() && d.is_empty() {
            return Err(format!("no hit durations of {which}"));
        }
        Ok(match self.metric {
            Metric::Percentile(p) => d.quantile(p / 100.0) as f64,
            Metric::Mean => d.mean(),
            Metric::Max => d.max() as f64,
            Metric::Rps if duration_secs > 0.0 => c.hits as f64 / duration_secs,
            Metric::Rps => 0.0,
            Metric::Hits => c.hits as f64,
            Metric::Failures => share(c.failures),
            Metric::Errors => share(c.errors),
            // Refused when parsed.
            Metric::Requests => return Err("requests are not counted per test".into()),
        })
    }

    /// The measured value in this threshold's unit, or why there is none.
    fn measure(&self, stats: &Stats, duration_secs: f64) -> Result<f64, String> {
        if let Some(target) = &self.target {
            return self.measure_target(target, stats, duration_secs);
        }
        let totals = stats.totals();
        let hits_percent = |n: u64| {
            if totals.hits == 0 {
                0.0
            } else {
                n as f64 * 100.0 / totals.hits as f64
            }
        };
        match self.metric {
            Metric::Percentile(_) | Metric::Mean | Metric::Max => {
                let r = self.requests(stats);
                if r.count == 0 {
                    return Err("no requests".into());
                }
                Ok(match self.metric {
                    Metric::Percentile(p) => r.latency.quantile(p / 100.0) as f64,
                    Metric::Mean => r.latency.mean(),
                    _ => r.latency.max() as f64,
                })
            }
            Metric::Rps => {
                let n = self.requests(stats).count;
                Ok(if duration_secs > 0.0 {
                    n as f64 / duration_secs
                } else {
                    0.0
                })
            }
            Metric::Requests => Ok(self.requests(stats).count as f64),
            Metric::Hits => Ok(totals.hits as f64),
            Metric::Failures => Ok(match self.unit {
                Unit::Percent => hits_percent(totals.failures),
                _ => totals.failures as f64,
            }),
            Metric::Errors if self.scoped() => {
                let r = self.requests(stats);
                let bad = r.http_errors();
                Ok(match self.unit {
                    Unit::Percent if r.count == 0 => 0.0,
                    Unit::Percent => bad as f64 * 100.0 / r.count as f64,
                    _ => bad as f64,
                })
            }
            Metric::Errors => Ok(match self.unit {
                Unit::Percent => hits_percent(totals.errors),
                _ => totals.errors as f64,
            }),
        }
    }

    /// Evaluates the threshold on a run's merged statistics.
    pub fn evaluate(&self, stats: &Stats, duration_secs: f64) -> Verdict {
        match self.measure(stats, duration_secs) {
            Ok(v) => Verdict {
                expression: self.expression.clone(),
                actual: Some(match self.unit {
                    // Report request times in milliseconds in the JSON (µs internally).
                    Unit::Micros => v / 1000.0,
                    _ => v,
                }),
                actual_text: self.format_value(v),
                pass: self.op.holds(v, self.value),
            },
            Err(why) => Verdict {
                expression: self.expression.clone(),
                actual: None,
                actual_text: why,
                pass: false,
            },
        }
    }

    /// Whether the run, although not over, can no longer pass this threshold: a count, a
    /// maximum or (with a known number of planned hits) a share of hits has already gone past
    /// an upper bound. Other thresholds can recover and are only judged at the end.
    pub fn can_no_longer_pass(&self, stats: &Stats, planned_hits: Option<u64>) -> bool {
        if !matches!(self.op, Op::Lt | Op::Le | Op::Eq) {
            return false;
        }
        let over = |actual: f64| match self.op {
            Op::Lt => actual >= self.value,
            _ => actual > self.value + 1e-9,
        };
        let grows = matches!(
            self.metric,
            Metric::Max | Metric::Requests | Metric::Hits | Metric::Failures | Metric::Errors
        );
        if !grows {
            return false;
        }
        match self.unit {
            Unit::Percent => {
                // A share can only be judged early against the plan's total.
                let (Some(planned), false, None) = (planned_hits, self.scoped(), &self.target)
                else {
                    return false;
                };
                if planned == 0 {
                    return false;
                }
                let t = stats.totals();
                let n = if self.metric == Metric::Failures {
                    t.failures
                } else {
                    t.errors
                };
                over(n as f64 * 100.0 / planned as f64)
            }
            _ => match self.measure(stats, 0.0) {
                Ok(v) => over(v),
                Err(_) => false,
            },
        }
    }

    fn format_value(&self, v: f64) -> String {
        match self.unit {
            Unit::Micros => crate::config::units::format_micros(v),
            Unit::Percent => format!("{v:.2}%"),
            Unit::Number if v.fract() == 0.0 => format!("{v:.0}"),
            Unit::Number => format!("{v:.2}"),
        }
    }
}

/// A hit scope's `(key, name)` in a word `key=name` whose key is a word of letters that is not a
/// metric (so that `errors=0`, a mistyped operator, is reported as one).
fn scope_word(w: &str) -> Option<(&str, &str)> {
    let (key, name) = w.split_once('=')?;
    let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphabetic());
    if !is_key || name.starts_with(['=', '<', '>']) || parse_metric(key).is_ok() {
        return None;
    }
    Some((key, name))
}

/// Parses every expression, stopping at the first bad one.
pub fn parse_all(expressions: &[String]) -> Result<Vec<Threshold>, ThresholdError> {
    expressions.iter().map(|e| Threshold::parse(e)).collect()
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "mean" | "avg" => Metric::Mean,
        "max" => Metric::Max,
        "rps" => Metric::Rps,
        "requests" => Metric::Requests,
        "hits" => Metric::Hits,
        "failures" => Metric::Failures,
        "errors" => Metric::Errors,
        "median" => Metric::Percentile(50.0),
        other => match other.strip_prefix('p').map(str::parse::<f64>) {
            Some(Ok(p)) if p > 0.0 && p <= 100.0 => Metric::Percentile(p),
            Some(_) => {
                return Err(format!(
                    "{s:?} is not a percentile: use p50, p90, p95, p99 or p99.9 (0 < N ≤ 100)"
                ));
            }
            None => {
                return Err(format!(
                    "unknown metric {s:?}: use p50, p90, p95, p99, p99.9, mean, max, rps, requests, hits, failures or errors"
                ));
            }
        },
    })
}

/// A request time in microseconds: `200ms`, `1.5s`, `250us`/`250µs`, or a bare number of
/// milliseconds.
fn parse_latency(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 200ms, 1.5s or 250us"))?;
    let factor = match unit.trim() {
        "" | "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "us" | "µs" => 1.0,
        "m" | "min" => 60_000_000.0,
        other => {
            return Err(format!(
                "unknown time unit {other:?} in {s:?}: use us, ms, s or m"
            ));
        }
    };
    Ok(n * factor)
}

/// Whether the recorded `url` is the threshold's `want`: the same full URL, or the same path
/// (with its query, when `want` has one).
fn url_matches(url: &str, want: &str) -> bool {
    if url == want {
        return true;
    }
    if !want.starts_with('/') {
        return false;
    }
    match url::Url::parse(url) {
        Ok(u) => {
            if want.contains('?') {
                let full = match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_owned(),
                };
                full == want
            } else {
                u.path() == want
            }
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::ProblemKind;

    fn stats() -> Stats {
        let mut s = Stats::default();
        for i in 1..=100u64 {
            s.record_request("GET", "http://127.0.0.1:1/api/items", 200, i * 1000, 0);
        }
        s.record_request("POST", "http://127.0.0.1:1/api/items", 500, 500_000, 0);
        s.record_request("GET", "http://127.0.0.1:1/", 0, 10, 0);
        for _ in 0..8 {
            s.record_start("t");
            s.record_success("t", 0);
        }
        s.record_start("t");
        s.record_problem(ProblemKind::Failure, "t", "no", "ensure", "", 0);
        s.record_start("t");
        s.record_problem(ProblemKind::Error, "t", "io", "io", "", 0);
        s
    }

    fn check(expr: &str) -> Verdict {
        Threshold::parse(expr).expect(expr).evaluate(&stats(), 2.0)
    }

    #[test]
    fn each_kind_passes_and_fails() {
        for (pass, fail) in [
            ("p95<600ms", "p95<90ms"),
            ("GET /api/items p95<=96ms", "GET /api/items p95<90ms"),
            ("p50 < 60", "p50<40"),
            ("mean<10s", "mean<1ms"),
            ("max<=0.501s", "max<499ms"),
            ("rps>50", "rps>=100"),
            ("requests==102", "requests!=102"),
            ("hits==10", "hits>10"),
            ("failures<=1", "failures==0"),
            ("errors<=10%", "errors<10%"),
            ("POST errors==100%", "/api/items errors<0.5%"),
            ("/api/items requests==101", "GET requests<100"),
            ("GET /api/items?page=2 requests==0", "/?x=1 p95<1ms"),
        ] {
            assert!(check(pass).pass, "{pass} should pass: {:?}", check(pass));
            assert!(!check(fail).pass, "{fail} should fail: {:?}", check(fail));
        }
    }

    #[test]
    fn values_are_reported_in_the_expression_unit() {
        let v = check("GET /api/items p95<600ms");
        // HDR histograms keep 3 significant figures.
        let ms = v.actual.expect("measured");
        assert!((ms - 95.0).abs() < 0.1, "{ms}");
        assert!(v.actual_text.starts_with("95.0"), "{}", v.actual_text);
        let v = check("errors<1%");
        assert_eq!(v.actual, Some(10.0));
        assert_eq!(v.actual_text, "10.00%");
        let v = check("DELETE p99<1s");
        assert!(!v.pass);
        assert_eq!(v.actual_text, "no requests");
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, says) in [
            ("p95", "no comparison"),
            ("p95 ~ 3", "no comparison"),
            ("p95<", "no value"),
            ("<3", "no metric"),
            ("latency<3ms", "unknown metric"),
            ("p101<3ms", "not a percentile"),
            ("p95<3 parsecs", "unknown time unit"),
            ("rps>5%", "not a percentage"),
            ("errors<lots", "not a number or a percentage"),
            ("errors<150%", "between 0% and 100%"),
            ("GET failures==0", "remove the scope"),
            ("api p95<1s", "unexpected \"api\""),
            ("p95=<1s", "unknown operator"),
            ("rps>-1", "non-negative"),
        ] {
            let e = Threshold::parse(expr).expect_err(expr);
            assert!(e.to_string().contains(says), "{expr}: {e}");
        }
    }

    /// Two tests of suite `blog` (and one `other::browse`) in two scenarios.
    fn scoped_stats() -> Stats {
        use crate::result::{Hit, HitOutcome};
        let mut s = Stats::default();
        let mut hit = |test, scenario, ms: u64, ok: bool| {
            s.record_hit(&Hit {
                test,
                scenario,
                micros: Some(ms * 1000),
                second: 0,
                outcome: if ok {
                    HitOutcome::Success
                } else {
                    HitOutcome::Problem {
                        outcome: ProblemKind::Error,
                        message: "io",
                        kind: "io",
                        traceback: "",
                    }
                },
            })
        };
        for i in 1..=100 {
            hit("blog::checkout", Some("buyers"), 500 + i, i != 50);
            hit("blog::browse", Some("visitors"), i, true);
        }
        hit("other::browse", None, 1, true);
        s.record_hook("blog::on_start", 1_000_000, &HitOutcome::Success);
        s
    }

    #[test]
    fn test_and_scenario_scopes_measure_their_hits() {
        let s = scoped_stats();
        let check = |e: &str| Threshold::parse(e).expect(e).evaluate(&s, 10.0);
        for (pass, fail) in [
            (
                "test=blog::checkout p95<800ms",
                "test=blog::checkout p95<500ms",
            ),
            ("test=checkout max<=601ms", "test=checkout max<600ms"),
            (
                "test=blog::browse p50<=51ms",
                "test=blog::browse mean>100ms",
            ),
            (
                "test=blog::checkout errors==1",
                "test=blog::checkout errors==0",
            ),
            (
                "test=blog::checkout errors<=1%",
                "test=blog::checkout errors<1%",
            ),
            (
                "test=blog::browse failures<1%",
                "test=blog::browse hits!=100",
            ),
            ("test=blog::browse rps==10", "test=blog::browse rps>10"),
            ("scenario=visitors errors==0", "scenario=buyers errors==0"),
            ("scenario=buyers p99<700ms", "scenario=buyers p50<500ms"),
            ("scenario=buyers hits==100", "scenario=buyers hits>100"),
        ] {
            assert!(check(pass).pass, "{pass} should pass: {:?}", check(pass));
            assert!(!check(fail).pass, "{fail} should fail: {:?}", check(fail));
        }
        // The whole run's figures do not count the hooks.
        assert!(check("hits==201").pass);
        let v = check("test=blog::checkout p95<1s");
        assert!((v.actual.expect("ms") - 595.0).abs() < 1.0, "{v:?}");
        // Names the run never had, or that are ambiguous.
        let v = check("test=blog::chekout p95<1s");
        assert!(!v.pass && v.actual.is_none());
        assert!(
            v.actual_text
                .starts_with("no hits of test 'blog::chekout' (the run's tests: blog::browse"),
            "{}",
            v.actual_text
        );
        let v = check("test=browse hits>0");
        assert!(!v.pass && v.actual_text.contains("ambiguous"), "{v:?}");
        assert!(
            v.actual_text.contains("blog::browse, other::browse"),
            "{v:?}"
        );
        let v = check("scenario=admins errors==0");
        assert_eq!(
            v.actual_text,
            "no hits of scenario 'admins' (the run's scenarios: buyers, visitors)"
        );
        let v = Threshold::parse("scenario=admins errors==0")
            .expect("parse")
            .evaluate(&stats(), 1.0);
        assert!(!v.pass);
        assert_eq!(
            v.actual_text,
            "no hits of scenario 'admins' (the run has no scenarios)"
        );
        // A hook is not a test.
        assert!(!check("test=blog::on_start hits>0").pass);
    }

    #[test]
    fn scopes_parse_and_bad_ones_say_how_to_fix_them() {
        let t = Threshold::parse(" test=blog::checkout  p95 < 800ms").expect("parse");
        assert_eq!(t.target, Some(Target::Test("blog::checkout".into())));
        assert_eq!(t.metric, Metric::Percentile(95.0));
        assert_eq!(t.value, 800_000.0);
        let t = Threshold::parse("scenario=admins errors==0").expect("parse");
        assert_eq!(t.target, Some(Target::Scenario("admins".into())));
        assert_eq!((t.method.as_deref(), t.url.as_deref()), (None, None));
        for (expr, says) in [
            ("test= p95<1s", "test= needs a name"),
            (
                "suite=blog p95<1s",
                "unknown scope \"suite\": use test=NAME",
            ),
            (
                "test=a::b scenario=x p95<1s",
                "more than one test= or scenario=",
            ),
            ("test=a::b GET p95<1s", "drop the method and URL"),
            ("scenario=x /api p95<1s", "drop the method and URL"),
            ("test=a::b requests>1", "not counted per test or scenario"),
            ("errors=0", "unknown operator"),
            ("api p95<1s", "a scope is test=NAME"),
        ] {
            let e = Threshold::parse(expr).expect_err(expr);
            assert!(e.to_string().contains(says), "{expr}: {e}");
        }
    }

    #[test]
    fn early_verdicts_only_for_bounds_that_cannot_recover() {
        let s = stats();
        let t = |e: &str| Threshold::parse(e).expect(e);
        assert!(t("failures==0").can_no_longer_pass(&s, None));
        assert!(t("errors<1").can_no_longer_pass(&s, None));
        assert!(!t("errors<2").can_no_longer_pass(&s, None));
        assert!(t("max<100ms").can_no_longer_pass(&s, None));
        assert!(!t("p95<1ms").can_no_longer_pass(&s, None));
        assert!(!t("rps>1000").can_no_longer_pass(&s, None));
        assert!(!t("errors<1%").can_no_longer_pass(&s, None));
        assert!(t("errors<1%").can_no_longer_pass(&s, Some(100)));
        assert!(!t("errors<2%").can_no_longer_pass(&s, Some(100)));
        assert!(!t("hits>5").can_no_longer_pass(&s, None));
        let scoped = scoped_stats();
        assert!(t("test=blog::checkout errors==0").can_no_longer_pass(&scoped, None));
        assert!(!t("test=blog::browse errors==0").can_no_longer_pass(&scoped, None));
        assert!(t("scenario=buyers max<600ms").can_no_longer_pass(&scoped, None));
        assert!(!t("test=blog::checkout errors<1%").can_no_longer_pass(&scoped, Some(100)));
        assert!(!t("test=nope errors==0").can_no_longer_pass(&scoped, None));
    }
}
