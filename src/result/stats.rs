//! Mergeable statistics: the aggregates that a [`TestResult`](super::TestResult) keeps and that
//! workers send as [`Event::Batch`].
//!
//! Everything here is a sum or an HDR histogram, so two [`Stats`] merge exactly (percentiles of a
//! merged run are those of one histogram that saw every value) and memory depends on the number
//! of distinct URLs, tests, counters and seconds, never on the number of hits. Latencies are
//! recorded in microseconds. Data enters through the `record_*` methods (virtual users, via
//! [`Recorder`](super::Recorder)), [`Stats::apply`] (single events from external programs) and
//! [`Stats::merge`] (batches); it leaves through the accessors and serde.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{
    Deserializer as HdrDeserializer, Serializer as _, V2DeflateSerializer,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::event::{Direction, Event};

/// Significant figures of the whole-run latency histograms.
pub const LATENCY_SIGFIG: u8 = 3;
/// Significant figures of the per-second latency histograms (smaller, one per second).
pub const TIMELINE_SIGFIG: u8 = 2;
/// Distinct `(method, URL)` pairs kept; more are counted under [`OTHER_URL`].
pub const MAX_URLS: usize = 1000;
/// Distinct failure/error messages kept; more are counted in [`Stats::problems_dropped`].
pub const MAX_PROBLEMS: usize = 100;
/// The URL under which requests beyond [`MAX_URLS`] distinct URLs are counted.
pub const OTHER_URL: &str = "(other URLs)";
/// Seconds of the timeline for which full histograms are kept before compaction.
pub const TIMELINE_KEEP_FULL: i64 = 10;

/// A latency histogram in microseconds. Serialised in HDR's standard compressed form
/// (V2 + deflate), base64-encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency(pub Histogram<u64>);

impl Latency {
    /// An empty, auto-resizing histogram with `sigfig` significant figures.
    pub fn new(sigfig: u8) -> Self {
        // 1..=5 are always valid significant-figure counts for an auto-resizing histogram.
        Latency(Histogram::new(sigfig).expect("valid significant figures"))
    }

    /// Records one value in microseconds.
    pub fn record(&mut self, micros: u64) {
        // An auto-resizing histogram accepts any u64 up to its bounds; saturate otherwise.
        if self.0.record(micros).is_err() {
            let high = self.0.high();
            let _ = self.0.record(high);
        }
    }

    /// Adds every value of `other`.
    pub fn add(&mut self, other: &Latency) {
        if other.0.is_empty() {
            return;
        }
        if self.0.add(&other.0).is_err() {
            // Only when the histograms have different precision: copy value by value.
            for v in other.0.iter_recorded() {
                let _ = self.0.record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at quantile `q` (0.0..=1.0), in microseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        self.0.value_at_quantile(q)
    }

    /// Mean in microseconds.
    pub fn mean(&self) -> f64 {
        self.0.mean()
    }

    /// Largest recorded value in microseconds.
    pub fn max(&self) -> u64 {
        self.0.max()
    }

    /// Clears the counts but keeps the allocation.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// The summary figures of this histogram.
    pub fn quantiles(&self) -> Quantiles {
        Quantiles {
            count: self.len(),
            mean: self.mean(),
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            max: self.max(),
        }
    }
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut buf)
            .map_err(|e| serde::ser::Error::custom(format!("histogram: {e:?}")))?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&buf))
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("histogram: bad base64: {e}")))?;
        let mut h: Histogram<u64> = HdrDeserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| serde::de::Error::custom(format!("histogram: {e:?}")))?;
        h.auto(true);
        Ok(Latency(h))
    }
}

/// Serde for maps with integer keys, written as JSON object keys (strings). Needed because a
/// batch travels inside an internally tagged enum, where serde cannot read integer keys back.
mod int_keys {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<K: Display, V: Serialize, S: Serializer>(
        m: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k.to_string(), v)))
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: FromStr + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let raw = BTreeMap::<String, V>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                k.parse::<K>()
                    .map(|k| (k, v))
                    .map_err(|_| D::Error::custom(format!("expected an integer key, got {k:?}")))
            })
            .collect()
    }
}

/// Summary figures of a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Quantiles {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// Outcome counts of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TestCounts {
    /// Hits started (`startTest`; a local run counts them when they end or are abandoned).
    pub started: u64,
    /// Hits finished (`stopTest`): the test runs.
    pub hits: u64,
    /// Successful hits.
    pub successes: u64,
    /// Hits whose assertion did not hold.
    pub failures: u64,
    /// Hits that ended with any other error.
    pub errors: u64,
}

impl TestCounts {
    fn add(&mut self, o: &TestCounts) {
        self.started = self.started.saturating_add(o.started);
        self.hits = self.hits.saturating_add(o.hits);
        self.successes = self.successes.saturating_add(o.successes);
        self.failures = self.failures.saturating_add(o.failures);
        self.errors = self.errors.saturating_add(o.errors);
    }
    fn is_zero(&self) -> bool {
        *self == TestCounts::default()
    }
}

/// Statistics of a set of HTTP requests (one URL and method, or all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Number of requests.
    pub count: u64,
    /// Responses by status code (0: no response).
    #[serde(with = "int_keys")]
    pub statuses: BTreeMap<u16, u64>,
    /// Request times.
    pub latency: Latency,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            count: 0,
            statuses: BTreeMap::new(),
            latency: Latency::new(LATENCY_SIGFIG),
        }
    }
}

impl RequestStats {
    fn record(&mut self, status: u16, micros: u64) {
        self.count += 1;
        *self.statuses.entry(status).or_insert(0) += 1;
        self.latency.record(micros);
    }

    /// Adds the counts and latencies of `o`.
    pub fn add(&mut self, o: &RequestStats) {
        self.count = self.count.saturating_add(o.count);
        for (s, n) in &o.statuses {
            if *n > 0 {
                let c = self.statuses.entry(*s).or_insert(0);
                *c = c.saturating_add(*n);
            }
        }
        self.latency.add(&o.latency);
    }

    fn reset(&mut self) {
        self.count = 0;
        self.statuses.clear();
        self.latency.reset();
    }

    /// Requests answered with a status below 400 (0, no response, is not a success).
    pub fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| (1..400).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests without a response (status 0) or with a status of 400 or more.
    pub fn http_errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s == 0 || **s >= 400)
            .map(|(_, n)| n)
            .sum()
    }
}

/// WebSocket totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SocketStats {
    /// Sockets opened.
    pub opened: u64,
    /// Sockets closed.
    pub closed: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
}

impl SocketStats {
    fn add(&mut self, o: &SocketStats) {
        self.opened = self.opened.saturating_add(o.opened);
        self.closed = self.closed.saturating_add(o.closed);
        self.messages_received = self.messages_received.saturating_add(o.messages_received);
        self.bytes_received = self.bytes_received.saturating_add(o.bytes_received);
        self.messages_sent = self.messages_sent.saturating_add(o.messages_sent);
        self.bytes_sent = self.bytes_sent.saturating_add(o.bytes_sent);
    }
}

/// Whether a problem is a failure or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// An assertion did not hold.
    Failure,
    /// Any other error.
    Error,
}

/// One distinct failure or error message and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Failure or error.
    pub outcome: ProblemKind,
    /// The test it happened in.
    pub test: String,
    /// The message.
    pub message: String,
    /// The kind (assertion macro, `panic`, error type).
    pub kind: String,
    /// The traceback of its first occurrence.
    pub traceback: String,
    /// How many times it happened.
    pub count: u64,
}

/// What happened during one second of the run (unix time).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Second {
    /// Hits finished.
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
    /// Active virtual users, sampled once per second by each worker (summed across workers).
    pub users: u64,
    /// Request times of the requests started in this second (recent seconds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Summary of the request times, once the histogram has been compacted away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Quantiles>,
}

impl Second {
    fn add(&mut self, o: &Second) {
        self.hits = self.hits.saturating_add(o.hits);
        self.successes = self.successes.saturating_add(o.successes);
        self.failures = self.failures.saturating_add(o.failures);
        self.errors = self.errors.saturating_add(o.errors);
        self.requests = self.requests.saturating_add(o.requests);
        self.socket_messages = self.socket_messages.saturating_add(o.socket_messages);
        self.users = self.users.saturating_add(o.users);
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

    fn latency_mut(&mut self) -> &mut Latency {
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

/// The mergeable aggregate of a run (or of a part of it: a worker's batch).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Outcome counts per test (full name).
    #[serde(default)]
    pub tests: BTreeMap<String, TestCounts>,
    /// All HTTP requests together.
    #[serde(default)]
    pub requests: RequestStats,
    /// HTTP requests per URL, then per method.
    #[serde(default)]
    pub urls: BTreeMap<String, BTreeMap<String, RequestStats>>,
    /// Custom counters.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// WebSocket totals.
    #[serde(default)]
    pub sockets: SocketStats,
    /// Distinct failures and errors, with counts (at most [`MAX_PROBLEMS`]).
    #[serde(default)]
    pub problems: Vec<Problem>,
    /// Failures and errors not kept in `problems` because there were too many distinct ones.
    #[serde(default)]
    pub problems_dropped: u64,
    /// Per-second history, keyed by unix time in seconds.
    #[serde(default, with = "int_keys")]
    pub timeline: BTreeMap<i64, Second>,
    /// Figures of the open model (`--rate`), absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<Box<OpenModel>>,
}

/// What the open model adds: in it, request times (in `requests` and `urls`) and hit times are
/// measured from each hit's *intended* start, so that a service that makes hits start late is
/// not flattered (coordinated omission); the uncorrected figures are kept beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenModel {
    /// Request times measured from when each request was sent.
    pub requests_uncorrected: Latency,
    /// Hit (test) times from each hit's intended start.
    pub hits: Latency,
    /// Hit times from each hit's actual start.
    pub hits_uncorrected: Latency,
    /// Starts that never happened: no virtual user was free before the plan ended, or the
    /// backlog of late starts was full.
    pub dropped: u64,
}

impl Default for OpenModel {
    fn default() -> Self {
        OpenModel {
            requests_uncorrected: Latency::new(LATENCY_SIGFIG),
            hits: Latency::new(LATENCY_SIGFIG),
            hits_uncorrected: Latency::new(LATENCY_SIGFIG),
            dropped: 0,
        }
    }
}

impl OpenModel {
    fn add(&mut self, o: &OpenModel) {
        self.requests_uncorrected.add(&o.requests_uncorrected);
        self.hits.add(&o.hits);
        self.hits_uncorrected.add(&o.hits_uncorrected);
        self.dropped = self.dropped.saturating_add(o.dropped);
    }

    fn reset(&mut self) {
        self.requests_uncorrected.reset();
        self.hits.reset();
        self.hits_uncorrected.reset();
        self.dropped = 0;
    }

    fn is_empty(&self) -> bool {
        self.requests_uncorrected.is_empty()
            && self.hits.is_empty()
            && self.hits_uncorrected.is_empty()
            && self.dropped == 0
    }
}

impl Stats {
    /// Counts one HTTP request: `micros` from sending it to the end of the response,
    /// started during unix second `second`.
    pub fn record_request(
        &mut self,
        method: &str,
        url: &str,
        status: u16,
        micros: u64,
        second: i64,
    ) {
        self.requests.record(status, micros);
        self.url_entry(method, url).record(status, micros);
        let s = self.timeline.entry(second).or_default();
        s.requests += 1;
        s.latency_mut().record(micros);
    }

    fn url_entry(&mut self, method: &str, url: &str) -> &mut RequestStats {
        let url = if self.urls.contains_key(url) || self.urls.len() < MAX_URLS {
            url
        } else {
            OTHER_URL
        };
        if !self.urls.contains_key(url) {
            self.urls.insert(url.to_owned(), BTreeMap::new());
        }
        let methods = self.urls.get_mut(url).expect("inserted above");
        if !methods.contains_key(method) {
            methods.insert(method.to_owned(), RequestStats::default());
        }
        methods.get_mut(method).expect("inserted above")
    }

    fn test_entry(&mut self, test: &str) -> &mut TestCounts {
        if !self.tests.contains_key(test) {
            self.tests.insert(test.to_owned(), TestCounts::default());
        }
        self.tests.get_mut(test).expect("inserted above")
    }

    /// Counts the start of a hit.
    pub fn record_start(&mut self, test: &str) {
        self.test_entry(test).started += 1;
    }

    /// Counts the start and the successful end of a hit, finished during unix second `second`
    /// (one lookup for both: the hot path of a local run).
    pub fn record_hit_success(&mut self, test: &str, second: i64) {
        let t = self.test_entry(test);
        t.started += 1;
        t.hits += 1;
        t.successes += 1;
        let s = self.timeline.entry(second).or_default();
        s.hits += 1;
        s.successes += 1;
    }

    /// Counts the end of a successful hit, finished during unix second `second`.
    pub fn record_success(&mut self, test: &str, second: i64) {
        let t = self.test_entry(test);
        t.hits += 1;
        t.successes += 1;
        let s = self.timeline.entry(second).or_default();
        s.hits += 1;
        s.successes += 1;
    }

    /// Counts the end of a failed or errored hit and remembers its message.
    pub fn record_problem(
        &mut self,
        outcome: ProblemKind,
        test: &str,
        message: &str,
        kind: &str,
        traceback: &str,
        second: i64,
    ) {
        let t = self.test_entry(test);
        t.hits += 1;
        match outcome {
            ProblemKind::Failure => t.failures += 1,
            ProblemKind::Error => t.errors += 1,
        }
        let s = self.timeline.entry(second).or_default();
        s.hits += 1;
        match outcome {
            ProblemKind::Failure => s.failures += 1,
            ProblemKind::Error => s.errors += 1,
        }
        self.add_problem(outcome, test, message, kind, traceback, 1);
    }

    fn add_problem(
        &mut self,
        outcome: ProblemKind,
        test: &str,
        message: &str,
        kind: &str,
        traceback: &str,
        count: u64,
    ) {
        if let Some(p) = self
            .problems
            .iter_mut()
            .find(|p| p.outcome == outcome && p.message == message && p.test == test)
        {
            p.count = p.count.saturating_add(count);
        } else if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                outcome,
                test: test.to_owned(),
                message: message.to_owned(),
                kind: kind.to_owned(),
                traceback: traceback.to_owned(),
                count,
            });
        } else {
            self.problems_dropped = self.problems_dropped.saturating_add(count);
        }
    }

    /// Increments custom counter `name`.
    pub fn incr_counter(&mut self, name: &str) {
        match self.counters.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.counters.insert(name.to_owned(), 1);
            }
        }
    }

    /// Counts an opened WebSocket.
    pub fn socket_open(&mut self) {
        self.sockets.opened += 1;
    }

    /// Counts a closed WebSocket.
    pub fn socket_close(&mut self) {
        self.sockets.closed += 1;
    }

    /// Counts a WebSocket message of `size` bytes, during unix second `second`.
    pub fn socket_message(&mut self, size: u64, direction: Direction, second: i64) {
        match direction {
            Direction::Received => {
                self.sockets.messages_received += 1;
                self.sockets.bytes_received = self.sockets.bytes_received.saturating_add(size);
            }
            Direction::Sent => {
                self.sockets.messages_sent += 1;
                self.sockets.bytes_sent = self.sockets.bytes_sent.saturating_add(size);
            }
        }
        self.timeline.entry(second).or_default().socket_messages += 1;
    }

    /// Sets the active-users sample of unix second `second`.
    pub fn sample_users(&mut self, second: i64, users: u64) {
        self.timeline.entry(second).or_default().users += users;
    }

    /// Applies one event. `now` (unix seconds) dates the events that carry no time of their own.
    /// Run-level events (`startTestRun`, `stopTestRun`) change nothing here.
    pub fn apply(&mut self, event: &Event, now: i64) {
        match event {
            Event::StartTestRun | Event::StopTestRun | Event::StopTest { .. } => {}
            Event::StartTest { test, .. } => self.record_start(test),
            Event::AddSuccess { test, .. } => self.record_success(test, now),
            Event::AddFailure { test, exc_info, .. } => self.record_problem(
                ProblemKind::Failure,
                test,
                exc_info.message(),
                exc_info.kind(),
                exc_info.traceback(),
                now,
            ),
            Event::AddError { test, exc_info, .. } => self.record_problem(
                ProblemKind::Error,
                test,
                exc_info.message(),
                exc_info.kind(),
                exc_info.traceback(),
                now,
            ),
            Event::AddHit {
                url,
                method,
                status,
                started,
                elapsed,
                ..
            } => {
                let micros = if elapsed.is_finite() && *elapsed > 0.0 {
                    (elapsed * 1e6).round() as u64
                } else {
                    0
                };
                self.record_request(method, url, *status, micros, started.timestamp());
            }
            Event::SocketOpen => self.socket_open(),
            Event::SocketClose => self.socket_close(),
            Event::SocketMessage { size, direction } => self.socket_message(*size, *direction, now),
            Event::IncrCounter { name, .. } => self.incr_counter(name),
            Event::Batch(b) => self.merge(b),
        }
    }

    /// Adds everything in `other` to `self`.
    pub fn merge(&mut self, other: &Stats) {
        for (name, c) in &other.tests {
            if !c.is_zero() {
                self.test_entry(name).add(c);
            }
        }
        self.requests.add(&other.requests);
        for (url, methods) in &other.urls {
            for (method, rs) in methods {
                if rs.count > 0 {
                    self.url_entry(method, url).add(rs);
                }
            }
        }
        for (name, n) in &other.counters {
            if *n > 0 {
                let c = self.counters.entry(name.clone()).or_insert(0);
                *c = c.saturating_add(*n);
            }
        }
        self.sockets.add(&other.sockets);
        for p in &other.problems {
            self.add_problem(
                p.outcome,
                &p.test,
                &p.message,
                &p.kind,
                &p.traceback,
                p.count,
            );
        }
        self.problems_dropped = self.problems_dropped.saturating_add(other.problems_dropped);
        for (t, s) in &other.timeline {
            self.timeline.entry(*t).or_default().add(s);
        }
        if let Some(o) = &other.open {
            self.open_mut().add(o);
        }
    }

    /// The open model's figures, created on first use.
    pub fn open_mut(&mut self) -> &mut OpenModel {
        self.open.get_or_insert_with(Box::default)
    }

    /// Open model: records a request that took `micros` in a hit that started `lag_micros`
    /// after its intended start (the request time counts from the intended start).
    pub fn record_request_late(
        &mut self,
        method: &str,
        url: &str,
        status: u16,
        micros: u64,
        lag_micros: u64,
        second: i64,
    ) {
        self.record_request(
            method,
            url,
            status,
            micros.saturating_add(lag_micros),
            second,
        );
        self.open_mut().requests_uncorrected.record(micros);
    }

    /// Open model: records a hit's time, from its intended start and from its actual start.
    pub fn record_hit_time(&mut self, micros: u64, lag_micros: u64) {
        let o = self.open_mut();
        o.hits.record(micros.saturating_add(lag_micros));
        o.hits_uncorrected.record(micros);
    }

    /// Clears every count but keeps the keys and histogram allocations for reuse.
    pub fn reset(&mut self) {
        self.tests
            .values_mut()
            .for_each(|t| *t = TestCounts::default());
        self.requests.reset();
        self.urls
            .values_mut()
            .flat_map(|m| m.values_mut())
            .for_each(RequestStats::reset);
        self.counters.values_mut().for_each(|n| *n = 0);
        self.sockets = SocketStats::default();
        self.problems.clear();
        self.problems_dropped = 0;
        self.timeline.clear();
        if let Some(o) = self.open.as_mut() {
            o.reset();
        }
    }

    /// Whether nothing has been recorded since creation or the last reset.
    pub fn is_empty(&self) -> bool {
        self.tests.values().all(TestCounts::is_zero)
            && self.requests.count == 0
            && self.counters.values().all(|n| *n == 0)
            && self.sockets == SocketStats::default()
            && self.problems.is_empty()
            && self.problems_dropped == 0
            && self.timeline.is_empty()
            && self.open.as_ref().is_none_or(|o| o.is_empty())
    }

    /// Replaces the histograms of seconds older than `now - TIMELINE_KEEP_FULL` by summaries.
    pub fn compact_timeline(&mut self, now: i64) {
        for (_, s) in self.timeline.range_mut(..now - TIMELINE_KEEP_FULL) {
            s.compact();
        }
    }

    /// Outcome counts of all tests together.
    pub fn totals(&self) -> TestCounts {
        let mut t = TestCounts::default();
        for c in self.tests.values() {
            t.add(c);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_percentiles_equal_one_histogram() {
        let mut whole = Stats::default();
        let mut parts = [Stats::default(), Stats::default(), Stats::default()];
        let mut x: u64 = 12345;
        for i in 0..30_000u64 {
            // A deterministic spread of latencies from 50 µs to ~2 s.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let micros = 50 + (x >> 33) % 2_000_000;
            let status = if i % 10 == 0 { 500 } else { 200 };
            whole.record_request("GET", "/a", status, micros, 100 + (i / 10_000) as i64);
            parts[(i % 3) as usize].record_request(
                "GET",
                "/a",
                status,
                micros,
                100 + (i / 10_000) as i64,
            );
        }
        let mut merged = Stats::default();
        for p in &parts {
            merged.merge(p);
        }
        for q in [0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(
                merged.requests.latency.quantile(q),
                whole.requests.latency.quantile(q)
            );
            assert_eq!(
                merged.urls["/a"]["GET"].latency.quantile(q),
                whole.urls["/a"]["GET"].latency.quantile(q)
            );
        }
        assert_eq!(merged.requests.count, 30_000);
        assert_eq!(merged.requests.statuses[&500], 3_000);
        assert_eq!(merged.timeline[&101].requests, 10_000);
        assert_eq!(merged, whole);
    }

    #[test]
    fn histogram_survives_serialisation() {
        let mut s = Stats::default();
        for v in [1u64, 10, 100, 1000, 10_000, 100_000, 1_000_000, 60_000_000] {
            s.record_request("POST", "/b", 201, v, 7);
        }
        let json = serde_json::to_string(&s).expect("ser");
        let back: Stats = serde_json::from_str(&json).expect("de");
        assert_eq!(back, s);
        assert_eq!(back.requests.latency.max(), s.requests.latency.max());
    }

    #[test]
    fn memory_does_not_grow_with_hits() {
        // One million hits on a handful of URLs: the structure's size is set by the keys.
        let mut s = Stats::default();
        for i in 0..1_000_000u64 {
            s.record_request(
                "GET",
                ["/a", "/b", "/c"][(i % 3) as usize],
                200,
                i % 5000,
                0,
            );
            s.record_success("t::x", 0);
        }
        assert_eq!(s.urls.len(), 3);
        assert_eq!(s.tests["t::x"].hits, 1_000_000);
        assert_eq!(s.timeline.len(), 1);
        assert_eq!(s.requests.count, 1_000_000);
    }

    #[test]
    fn distinct_urls_and_problems_are_bounded() {
        let mut s = Stats::default();
        for i in 0..(MAX_URLS + 50) {
            s.record_request("GET", &format!("/u{i}"), 200, 10, 0);
        }
        assert_eq!(s.urls.len(), MAX_URLS + 1);
        assert_eq!(s.urls[OTHER_URL]["GET"].count, 50);
        for i in 0..(MAX_PROBLEMS + 7) {
            s.record_problem(ProblemKind::Error, "t", &format!("e{i}"), "k", "", 0);
        }
        assert_eq!(s.problems.len(), MAX_PROBLEMS);
        assert_eq!(s.problems_dropped, 7);
        assert_eq!(s.tests["t"].errors, (MAX_PROBLEMS + 7) as u64);
    }

    #[test]
    fn reset_keeps_nothing_countable() {
        let mut s = Stats::default();
        s.record_request("GET", "/a", 200, 10, 0);
        s.incr_counter("c");
        s.record_start("t");
        assert!(!s.is_empty());
        s.reset();
        assert!(s.is_empty());
        let mut target = Stats::default();
        target.merge(&s);
        assert_eq!(target, Stats::default());
    }

    #[test]
    fn compaction_keeps_counts_and_summary() {
        let mut s = Stats::default();
        for v in 1..=100u64 {
            s.record_request("GET", "/a", 200, v * 1000, 5);
        }
        let before = s.timeline[&5].quantiles().expect("some");
        s.compact_timeline(100);
        let after = s.timeline[&5].quantiles().expect("some");
        assert!(s.timeline[&5].latency.is_none());
        assert_eq!(before, after);
        assert_eq!(s.timeline[&5].requests, 100);
    }
}
