//! The per-second timeline of a run: what happened in each second ([`Second`]: counts, active
//! users, and the request times of the requests started in it). Recent seconds keep their full
//! histogram; older ones are compacted to their summary ([`Second::compact`]), so that a long run
//! keeps a bounded history. Seconds enter by recording and merging; they leave through the
//! summary and the outputs' charts.
//!
//! A run files its own virtual users' hits by its own clock, but the seconds of an external
//! runner's `add_hit` (`started`), and of the batches of a runner or of a cluster's workers,
//! are theirs: one message per second of 1970 would add a second per message for the whole
//! run. What comes from them is filed only in a [`Window`]: from [`TIMELINE_SLACK`] before the
//! run's start to [`TIMELINE_SLACK`] after now. What is dated outside it still counts in the
//! run's totals (requests, hits, per URL and per test) but is left out of the timeline, and
//! counted so that the run can say so once. A run's timeline so holds at most one second per
//! second the run lasted plus `2 × TIMELINE_SLACK`, whatever its sources send.

use serde::{Deserialize, Serialize};

use super::latency::{Latency, Quantiles, TIMELINE_SIGFIG};

/// Seconds of the timeline for which full histograms are kept before compaction.
pub const TIMELINE_KEEP_FULL: i64 = 10;

/// How far before a run's start, and after now, a second dated by a source the run does not
/// control (an external runner, a cluster's worker) may lie and still be filed in the run's
/// timeline: five minutes, for clocks a little off and requests that started before a worker
/// was told to go.
pub const TIMELINE_SLACK: i64 = 300;

/// The seconds in which a run's timeline files what its sources date themselves: `from..=to`
/// (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    from: i64,
    to: i64,
}

impl Window {
    /// No second at all: for a holder of a run's figures that keeps no timeline (the broker).
    pub const NOTHING: Window = Window {
        from: i64::MAX,
        to: i64::MIN,
    };

    /// The window of a run that started at unix second `start`, at unix second `now`: from
    /// [`TIMELINE_SLACK`] before `start` to [`TIMELINE_SLACK`] after `now`.
    pub fn of_run(start: i64, now: i64) -> Window {
        Window {
            from: start.saturating_sub(TIMELINE_SLACK),
            to: now.saturating_add(TIMELINE_SLACK),
        }
    }

    /// Whether `second` is filed in the timeline.
    pub fn contains(&self, second: i64) -> bool {
        (self.from..=self.to).contains(&second)
    }
}

/// What happened during one second of the run (unix time).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Second {
    /// Hits that started in this second (counted when they end; a local run's hits, like
    /// requests, are kept under the second they started in).
    pub hits: u64,
    /// Successful hits.
    pub successes: u64,
    /// Failed hits.
    pub failures: u64,
    /// Errored hits.
    pub errors: u64,
    /// HTTP requests started.
    pub requests: u64,
    /// WebSocket messages (both directions).
    pub socket_messages: u64,
    /// Active virtual users, reported once per second by each worker (summed across workers):
    /// in the closed model, the users alive when it was sampled; in the open model, where a
    /// user is active while busy with a hit, the most hits in flight at once during the
    /// collect period (about a second) that covers this second, not at an instant that may
    /// fall between two arrivals.
    pub users: u64,
    /// Open model: arrivals due in this second that never started (no free virtual user in
    /// time, or its `on_start` failed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// Request times of the requests started in this second (recent seconds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Summary of the request times, once the histogram has been compacted away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Quantiles>,
}

/// For `skip_serializing_if`: a count of zero.
pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Second {
    pub(super) fn add(&mut self, o: &Second) {
        self.hits = self.hits.saturating_add(o.hits);
        self.successes = self.successes.saturating_add(o.successes);
        self.failures = self.failures.saturating_add(o.failures);
        self.errors = self.errors.saturating_add(o.errors);
        self.requests = self.requests.saturating_add(o.requests);
        self.socket_messages = self.socket_messages.saturating_add(o.socket_messages);
        self.users = self.users.saturating_add(o.users);
        self.dropped = self.dropped.saturating_add(o.dropped);
        match (&mut self.latency, &o.latency) {
            (Some(mine), Some(theirs)) => mine.add(theirs),
            (None, Some(theirs)) if self.summary.is_none() => self.latency = Some(theirs.clone()),
            (None, Some(theirs)) => {
                // Late data for a compacted second: combine the summaries. Counts and means are
                // exact; percentiles are the larger of the two (an upper bound).
                let q = theirs.quantiles();
                self.summary = Some(combine_quantiles(self.summary.unwrap_or_default(), q));
            }
            _ => {}
        }
        if let Some(q) = o.summary {
            match &mut self.latency {
                Some(h) => {
                    let mine = h.quantiles();
                    self.latency = None;
                    self.summary = Some(combine_quantiles(mine, q));
                }
                None => self.summary = Some(combine_quantiles(self.summary.unwrap_or_default(), q)),
            }
        }
    }

    /// Adds `o` as [`add`](Self::add) does, but keeps no histogram: this second's and `o`'s
    /// request times are added as summaries (for a second that is compacted already, or would
    /// be at the next tick). No histogram is cloned.
    pub(super) fn add_compacted(&mut self, o: &Second) {
        let theirs = o
            .latency
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(Latency::quantiles);
        let summarised = Second {
            latency: None,
            summary: match (o.summary, theirs) {
                (Some(a), Some(b)) => Some(combine_quantiles(a, b)),
                (a, b) => a.or(b),
            },
            ..*o
        };
        self.compact();
        self.add(&summarised);
    }

    /// The hits, requests, socket messages and dropped starts counted in this second: what a
    /// run leaves out of its timeline when it leaves the second out.
    pub(super) fn figures(&self) -> u64 {
        [self.hits, self.requests, self.socket_messages, self.dropped]
            .into_iter()
            .fold(0, u64::saturating_add)
    }

    /// The request-time summary of this second, from the histogram or its compacted form.
    pub fn quantiles(&self) -> Option<Quantiles> {
        match (&self.latency, self.summary) {
            (Some(h), _) if !h.is_empty() => Some(h.quantiles()),
            (_, Some(q)) if q.count > 0 => Some(q),
            _ => None,
        }
    }

    /// Replaces the histogram by its summary to save memory.
    pub fn compact(&mut self) {
        if let Some(h) = self.latency.take() {
            let q = h.quantiles();
            self.summary = Some(match self.summary {
                Some(old) => combine_quantiles(old, q),
                None => q,
            });
        }
    }

    pub(super) fn latency_mut(&mut self) -> &mut Latency {
        self.latency
            .get_or_insert_with(|| Latency::new(TIMELINE_SIGFIG))
    }
}

fn combine_quantiles(a: Quantiles, b: Quantiles) -> Quantiles {
    let count = a.count.saturating_add(b.count);
    if count == 0 {
        return Quantiles::default();
    }
    Quantiles {
        count,
        mean: (a.mean * a.count as f64 + b.mean * b.count as f64) / count as f64,
        p50: a.p50.max(b.p50),
        p90: a.p90.max(b.p90),
        p95: a.p95.max(b.p95),
        p99: a.p99.max(b.p99),
        max: a.max.max(b.max),
    }
}
