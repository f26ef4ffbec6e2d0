//! The page data: what the page shows, built from a [`TestResult`]. It is the run's JSON
//! [`Summary`] (the `json` output's document: the same figures, thresholds with their verdicts,
//! per-second timeline), plus what the summary does not carry: the latency spectrum of the
//! whole run (from its merged HDR histogram), the deltas against `--baseline`, and, for a live
//! page, the run's state. (A cluster run's agents are in the summary: `per_agent`.)

use serde::Serialize;

use crate::result::summary::Delta;
use crate::result::summary::{LatencySummary, TestSummary};
use crate::result::{Latency, Summary, TestResult};

/// Points of the latency spectrum (percentiles from 0 to 99.999 %, then the maximum).
const SPECTRUM_POINTS: usize = 100;

/// The data of one rendering of the page.
#[derive(Debug, Clone, Serialize)]
pub struct PageData {
    /// The run's summary, as the `json` output writes it.
    pub summary: Summary,
    /// `(quantile, request time in ms)` over the whole run, from 0 to 1.
    pub spectrum: Vec<(f64, f64)>,
    /// The comparison with `--baseline`, when one was given.
    pub baseline: Option<BaselineData>,
    /// The run's state, on a live page.
    pub live: Option<LiveData>,
}

/// The baseline run and the deltas against it.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineData {
    /// The baseline's run id.
    pub run_id: String,
    /// The baseline's test.
    pub test: String,
    /// When the baseline started.
    pub started: String,
    /// This run's main figures against the baseline's.
    pub deltas: Vec<Delta>,
}

/// The state of a live run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveData {
    /// The run is going on.
    pub running: bool,
    /// The run has ended (the page stops listening).
    pub finished: bool,
    /// Virtual users active, as the timeline's `users` (in the open model, the most hits in
    /// flight at once in the last collect period, about a second).
    pub active_users: u64,
    /// What the run waits for before it starts (a cluster's workers).
    pub waiting: Option<String>,
    /// The page may stop the run.
    pub control: bool,
    /// The page may change the number of users or the rate.
    pub change: bool,
    /// The run's scenarios (for a change of one scenario's load).
    pub scenarios: Vec<String>,
    /// What each part's change sets: `users`, `rate` (arrivals per second) or `fixed`.
    pub loads: Vec<LoadPart>,
}

/// What a change of one part of the run sets (the page labels its input by it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadPart {
    /// The scenario (`None`: the run has no scenarios).
    pub scenario: Option<String>,
    /// `users`, `rate` or `fixed`.
    pub kind: &'static str,
}

impl PageData {
    /// The page data of `result` as it is now.
    pub fn of(result: &TestResult, live: Option<LiveData>) -> PageData {
        let summary = result.summary();
        let baseline = result.baseline().map(|b| BaselineData {
            run_id: b.run_id.clone(),
            test: b.test.clone(),
            started: b.started.clone(),
            deltas: crate::result::summary::compare(&summary, b),
        });
        PageData {
            spectrum: spectrum(&result.stats().requests.latency),
            summary,
            baseline,
            live,
        }
    }

    /// As JSON text.
    pub fn to_json(&self) -> String {
        // Plain data (strings, numbers, maps with string keys): it always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Two runs compared (the broker's page): the main figures, then per URL and per test.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The first run (the reference).
    pub a: RunBrief,
    /// The second run.
    pub b: RunBrief,
    /// The runs' main figures against each other (b against a).
    pub deltas: Vec<Delta>,
    /// Per `METHOD URL` present in either run.
    pub urls: Vec<CompareRow>,
    /// Per test present in either run (hit durations).
    pub tests: Vec<CompareRow>,
}

/// What names a run in a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RunBrief {
    /// Its id.
    pub run_id: String,
    /// Its test.
    pub test: String,
    /// When it started.
    pub started: String,
    /// Its plan.
    pub plan: String,
}

/// One URL's or test's figures in both runs (`None`: not in that run).
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    /// `METHOD URL`, or the test's name.
    pub name: String,
    /// The figures in run a.
    pub a: Option<Figures>,
    /// The figures in run b.
    pub b: Option<Figures>,
}

/// The compared figures of a URL or test: times from merged histograms (ms).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Figures {
    /// Requests or hits.
    pub count: u64,
    /// Per second.
    pub rate: f64,
    /// Errors (HTTP errors, or failed and errored hits) as a share of the count.
    pub error_rate: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

fn figures(count: u64, rate: f64, errors: u64, l: &LatencySummary) -> Figures {
    Figures {
        count,
        rate,
        error_rate: if count > 0 {
            errors as f64 / count as f64
        } else {
            0.0
        },
        p50: l.p50,
        p95: l.p95,
        p99: l.p99,
    }
}

fn brief(s: &Summary) -> RunBrief {
    RunBrief {
        run_id: s.run_id.clone(),
        test: s.test.clone(),
        started: s.started.clone(),
        plan: s.plan.clone(),
    }
}

/// Compares run `b` with run `a`.
pub fn compare(a: &Summary, b: &Summary) -> Comparison {
    use std::collections::BTreeMap;
    let urls_of = |s: &Summary| -> BTreeMap<String, Figures> {
        s.urls
            .iter()
            .map(|u| {
                (
                    format!("{} {}", u.method, u.url),
                    figures(u.requests, u.rps, u.http_errors, &u.latency),
                )
            })
            .collect()
    };
    let tests_of = |s: &Summary| -> BTreeMap<String, Figures> {
        s.tests
            .iter()
            .map(|(name, t): (&String, &TestSummary)| {
                let c = &t.counts;
                (
                    name.clone(),
                    figures(
                        c.hits,
                        t.hits_per_second,
                        c.failures + c.errors,
                        &t.duration,
                    ),
                )
            })
            .collect()
    };
    let rows = |x: BTreeMap<String, Figures>, y: BTreeMap<String, Figures>| {
        let mut names: Vec<&String> = x.keys().chain(y.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| CompareRow {
                name: n.clone(),
                a: x.get(n).copied(),
                b: y.get(n).copied(),
            })
            .collect::<Vec<_>>()
    };
    Comparison {
        a: brief(a),
        b: brief(b),
        deltas: crate::result::summary::compare(b, a),
        urls: rows(urls_of(a), urls_of(b)),
        tests: rows(tests_of(a), tests_of(b)),
    }
}

/// The latency spectrum of `l`: request times (ms) at quantiles spaced evenly on a log scale of
/// `1 / (1 - q)` (0, 90 %, 99 %... 99.999 %), then the maximum. Empty for no requests.
pub fn spectrum(l: &Latency) -> Vec<(f64, f64)> {
    if l.is_empty() {
        return Vec::new();
    }
    let mut points = Vec::with_capacity(SPECTRUM_POINTS + 1);
    for i in 0..SPECTRUM_POINTS {
        let q = 1.0 - 10f64.powf(-5.0 * i as f64 / (SPECTRUM_POINTS - 1) as f64);
        points.push((q, l.quantile(q) as f64 / 1000.0));
    }
    points.push((0.999_999, l.max() as f64 / 1000.0));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comparison_has_every_url_and_test_of_either_run() {
        use crate::result::summary::UrlSummary;
        let url = |u: &str, n: u64| UrlSummary {
            method: "GET".into(),
            url: u.into(),
            requests: n,
            rps: n as f64,
            http_errors: n / 10,
            statuses: Default::default(),
            latency: LatencySummary::default(),
        };
        let a = Summary {
            run_id: "a".into(),
            urls: vec![url("/x", 10), url("/only-a", 5)],
            ..Summary::default()
        };
        let b = Summary {
            run_id: "b".into(),
            urls: vec![url("/x", 20)],
            ..Summary::default()
        };
        let c = compare(&a, &b);
        assert_eq!((c.a.run_id.as_str(), c.b.run_id.as_str()), ("a", "b"));
        assert_eq!(c.urls.len(), 2);
        let x = c.urls.iter().find(|r| r.name == "GET /x").expect("x");
        assert_eq!(x.a.map(|f| f.count), Some(10));
        assert_eq!(x.b.map(|f| f.count), Some(20));
        assert!((x.b.expect("b").error_rate - 0.1).abs() < 1e-9);
        let only = c
            .urls
            .iter()
            .find(|r| r.name == "GET /only-a")
            .expect("only-a");
        assert!(only.b.is_none());
        assert!(c.deltas.iter().any(|d| d.name == "rps"));
    }

    #[test]
    fn spectrum_rises_to_the_maximum() {
        let mut l = Latency::new(3);
        for us in 1..=10_000u64 {
            l.record(us);
        }
        let s = spectrum(&l);
        assert_eq!(s.len(), SPECTRUM_POINTS + 1);
        assert_eq!(s[0].0, 0.0);
        assert!(s.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!((s.last().expect("max").1 - 10.0).abs() < 0.01);
        assert!(spectrum(&Latency::new(3)).is_empty());
    }
}
