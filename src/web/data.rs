//! The page data: what the page shows, built from a [`TestResult`]. It is the run's JSON
//! [`Summary`] (the `json` output's document: the same figures, thresholds with their verdicts,
//! per-second timeline), plus what the summary does not carry: the latency spectrum of the
//! whole run (from its merged HDR histogram), the deltas against `--baseline`, and, for a live
//! page, the run's state. (A cluster run's agents are in the summary: `per_agent`.)

use serde::Serialize;

use crate::result::summary::Delta;
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
    /// Virtual users active now.
    pub active_users: u64,
    /// What the run waits for before it starts (a cluster's workers).
    pub waiting: Option<String>,
    /// The page may stop the run.
    pub control: bool,
    /// The page may change the number of users or the rate.
    pub change: bool,
    /// The run's scenarios (for a change of one scenario's load).
    pub scenarios: Vec<String>,
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
