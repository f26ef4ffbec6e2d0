//! Mergeable statistics: the aggregates that a [`TestResult`](super::TestResult) keeps and that
//! workers send as [`Event::Batch`](super::Event::Batch).
//!
//! Everything here is a sum or an HDR histogram, so two [`Stats`] merge exactly (percentiles of a
//! merged run are those of one histogram that saw every value) and memory depends on the number
//! of distinct URLs, tests, counters and seconds, never on the number of hits. Latencies are
//! recorded in microseconds. Data enters through the `record_*` methods (virtual users, via
//! [`Recorder`](super::Recorder)), [`Event::apply_to`](super::Event::apply_to) (single events from external programs) and
//! [`Stats::merge`] (batches); it leaves through the accessors and serde.
//!
//! # Memory bounds
//!
//! A histogram covers at most 1 µs..=[`MAX_LATENCY_MICROS`] (a day) with at most
//! [`MAX_SIGFIG`] significant figures: at most 28 672 counters (224 KiB) with
//! [`LATENCY_SIGFIG`], 3 968 (31 KiB) with [`TIMELINE_SIGFIG`]. Recording and merging saturate
//! there, and decoding checks the encoded header before anything is allocated by a size the
//! input claims ([`decode_histogram`]). A [`Stats`] holds at most [`MAX_BATCH_REQUEST_STATS`]
//! `(URL, method)` entries, [`MAX_TESTS`] + 1 tests, [`MAX_SCENARIOS`] + 1 scenarios and
//! [`MAX_HOOKS`] + 1 lifecycle hooks (each with a histogram of hit durations), whether built by
//! recording, by merging or by decoding; a decoded one (a worker's batch) at most
//! [`MAX_BATCH_SECONDS`] timeline seconds. So the histograms of one decoded batch take at most
//! (1 + 1017 + 3 + 167) × 224 KiB + 600 × 31 KiB ≈ 278 MiB, however small the message; those of
//! a run's merged result (1 + 1017 + 3 + 167) × 224 KiB ≈ 260 MiB plus 31 KiB for each timeline
//! second not yet compacted (see [`Stats::compact_timeline`]). Tests, scenarios and hooks are
//! few in practice, and their histograms grow with the durations they hold (auto-resizing).
//!
//! The number of timeline seconds is bounded by time, not by messages, for what a run's
//! sources date themselves ([`Event::apply_within`](super::Event::apply_within),
//! [`Stats::merge_within`]): seconds outside the run's [`Window`] are left out of the
//! timeline (they count in the totals), and those more than [`TIMELINE_KEEP_FULL`] from now are
//! added compacted, without a histogram. So the timeline of a run that lasted `T` seconds holds
//! at most `T + 2 × `[`TIMELINE_SLACK`] seconds, of which at most `2 × TIMELINE_KEEP_FULL + 1`
//! with a histogram.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use super::latency::{LATENCY_SIGFIG, Latency, TIMELINE_SIGFIG};
pub use super::per_test::{
    Hit, HitOutcome, MAX_HOOKS, MAX_SCENARIOS, MAX_TESTS, OTHER_HOOK, OTHER_SCENARIO, OTHER_TEST,
    ProblemKind, TestCounts, TestStats,
};
use super::per_test::{bounded as per_test_bounded, entry};
pub use super::timeline::{Second, TIMELINE_KEEP_FULL, TIMELINE_SLACK, Window};

/// Direction of a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received from the system under test (the seed protocol's only direction).
    #[default]
    Received,
    /// Sent to the system under test.
    Sent,
}

impl Direction {
    pub(crate) fn is_received(&self) -> bool {
        *self == Direction::Received
    }
}

/// Distinct `(method, URL)` pairs kept; more are counted under [`OTHER_URL`].
pub const MAX_URLS: usize = 1000;
/// Distinct methods kept under [`OTHER_URL`]; more are counted under
/// `(OTHER_URL, OTHER_METHOD)`.
pub const MAX_OTHER_METHODS: usize = 16;
/// The method under which requests beyond [`MAX_OTHER_METHODS`] are counted in [`OTHER_URL`].
pub const OTHER_METHOD: &str = "(other methods)";
/// The most `(URL, method)` entries (each with a histogram) a decoded [`Stats`] may carry:
/// what a [`Stats`] can hold at all, [`MAX_URLS`] pairs plus [`OTHER_URL`]'s methods. A batch
/// with more is refused.
pub const MAX_BATCH_REQUEST_STATS: usize = MAX_URLS + MAX_OTHER_METHODS + 1;
/// The most timeline seconds a decoded [`Stats`] (a worker's batch) may carry; a batch with more
/// is refused. A worker sends a batch every second (or 5 a second), with the seconds that
/// changed since the last one: a second or two of hits and samples, plus one per distinct start
/// second of the requests that ended meanwhile (requests are dated by their start). Ten minutes
/// is more than a request timeout normally allows.
pub const MAX_BATCH_SECONDS: usize = 600;
/// Distinct failure/error messages kept; more are counted in [`Stats::problems_dropped`].
pub const MAX_PROBLEMS: usize = 100;
/// The URL under which requests beyond [`MAX_URLS`] distinct URLs are counted.
pub const OTHER_URL: &str = "(other URLs)";
/// The longest URL, test, scenario, hook, counter name or problem kind kept, in bytes; a longer
/// one is cut there (at a character boundary) and ends with `…` ([`cut`]). An external runner's
/// strings may be as long as its message (16 MiB).
pub const MAX_NAME_BYTES: usize = 2048;
/// The longest HTTP method kept, in bytes (then cut as [`MAX_NAME_BYTES`] says).
pub const MAX_METHOD_BYTES: usize = 64;
/// The longest problem message or traceback kept, in bytes (then cut as [`MAX_NAME_BYTES`]
/// says).
pub const MAX_MESSAGE_BYTES: usize = 8192;

/// `text`, or its first `max` bytes at most (at a character boundary) followed by `…` when it
/// is longer: what the maps and problems of a [`Stats`] keep of a name or message.
pub(crate) fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

/// Distinct custom counters kept; increments of more are counted under [`OTHER_COUNTER`] (an
/// external runner names its counters: one name per message must not grow the run).
pub const MAX_COUNTERS: usize = 1000;
/// The counter under which counters beyond [`MAX_COUNTERS`] are counted.
pub const OTHER_COUNTER: &str = "(other counters)";
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

/// Decoding of the [`Stats`] maps that carry histograms, refusing a map with more entries than a
/// legitimate batch has before decoding (allocating) the entry over the bound.
mod bounded {
    use super::{
        MAX_BATCH_REQUEST_STATS, MAX_BATCH_SECONDS, MAX_COUNTERS, RequestStats, Second,
        TIMELINE_SIGFIG,
    };
    use serde::Deserializer;
    use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
    use std::collections::BTreeMap;
    use std::fmt;

    type Urls = BTreeMap<String, BTreeMap<String, RequestStats>>;

    /// `urls`: at most [`MAX_BATCH_REQUEST_STATS`] `(URL, method)` entries in all.
    pub fn urls<'de, D: Deserializer<'de>>(d: D) -> Result<Urls, D::Error> {
        struct ByUrl;
        impl<'de> Visitor<'de> for ByUrl {
            type Value = Urls;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of URLs to maps of methods to request statistics")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Urls, A::Error> {
                let mut left = MAX_BATCH_REQUEST_STATS;
                let mut out = Urls::new();
                while let Some(url) = map.next_key::<String>()? {
                    let methods = map.next_value_seed(ByMethod { left: &mut left })?;
                    out.insert(url, methods);
                }
                Ok(out)
            }
        }
        struct ByMethod<'a> {
            left: &'a mut usize,
        }
        impl<'de> DeserializeSeed<'de> for ByMethod<'_> {
            type Value = BTreeMap<String, RequestStats>;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_map(self)
            }
        }
        impl<'de> Visitor<'de> for ByMethod<'_> {
            type Value = BTreeMap<String, RequestStats>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of methods to request statistics")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(method) = map.next_key::<String>()? {
                    if *self.left == 0 {
                        return Err(A::Error::custom(format!(
                            "more than {MAX_BATCH_REQUEST_STATS} (URL, method) entries"
                        )));
                    }
                    *self.left -= 1;
                    out.insert(method, map.next_value::<RequestStats>()?);
                }
                Ok(out)
            }
        }
        d.deserialize_map(ByUrl)
    }

    /// `counters`: at most [`MAX_COUNTERS`] counters and the overflow one.
    pub fn counters<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u64>, D::Error> {
        struct Counters;
        impl<'de> Visitor<'de> for Counters {
            type Value = BTreeMap<String, u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of counter names to counts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    if out.len() > MAX_COUNTERS && !out.contains_key(&name) {
                        return Err(A::Error::custom(format!(
                            "more than {} counters",
                            MAX_COUNTERS + 1
                        )));
                    }
                    out.insert(name, map.next_value::<u64>()?);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Counters)
    }

    /// `timeline`: integer keys (as strings), at most [`MAX_BATCH_SECONDS`] of them, with
    /// histograms of at most [`TIMELINE_SIGFIG`] significant figures.
    pub fn timeline<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i64, Second>, D::Error> {
        struct Seconds;
        impl<'de> Visitor<'de> for Seconds {
            type Value = BTreeMap<i64, Second>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of unix seconds to per-second figures")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                let mut seen = 0usize;
                while let Some(key) = map.next_key::<String>()? {
                    seen += 1;
                    if seen > MAX_BATCH_SECONDS {
                        return Err(A::Error::custom(format!(
                            "more than {MAX_BATCH_SECONDS} timeline seconds"
                        )));
                    }
                    let t = key.parse::<i64>().map_err(|_| {
                        A::Error::custom(format!("expected an integer key, got {key:?}"))
                    })?;
                    let second = map.next_value::<Second>()?;
                    if let Some(h) = &second.latency
                        && h.0.sigfig() > TIMELINE_SIGFIG
                    {
                        return Err(A::Error::custom(format!(
                            "a per-second histogram of {} significant figures (at most {TIMELINE_SIGFIG})",
                            h.0.sigfig()
                        )));
                    }
                    out.insert(t, second);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Seconds)
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
    pub(crate) fn record(&mut self, status: u16, micros: u64) {
        one_more(&mut self.count);
        one_more(self.statuses.entry(status).or_insert(0));
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

    pub(crate) fn reset(&mut self) {
        self.count = 0;
        self.statuses.clear();
        self.latency.reset();
    }

    /// Requests answered with a status below 400 (0, no response, is not a success).
    pub fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| (1..400).contains(*s))
            .map(|(_, n)| *n)
            .fold(0, u64::saturating_add)
    }

    /// Requests without a response (status 0) or with a status of 400 or more.
    pub fn http_errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s == 0 || **s >= 400)
            .map(|(_, n)| *n)
            .fold(0, u64::saturating_add)
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

/// The mergeable aggregate of a run (or of a part of it: a worker's batch).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Outcome counts and hit durations per test (full name; at most [`MAX_TESTS`], then
    /// [`OTHER_TEST`]).
    #[serde(default, deserialize_with = "per_test_bounded::tests")]
    pub tests: BTreeMap<String, TestStats>,
    /// The same per scenario, for hits that belong to one (at most [`MAX_SCENARIOS`], then
    /// [`OTHER_SCENARIO`]).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "per_test_bounded::scenarios"
    )]
    pub scenarios: BTreeMap<String, TestStats>,
    /// The same per lifecycle hook of the virtual users (`suite::on_start`, `suite::on_stop`;
    /// at most [`MAX_HOOKS`], then [`OTHER_HOOK`]): runs of a hook, which are not hits.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "per_test_bounded::lifecycle"
    )]
    pub lifecycle: BTreeMap<String, TestStats>,
    /// All HTTP requests together.
    #[serde(default)]
    pub requests: RequestStats,
    /// HTTP requests per URL, then per method (decoded: at most [`MAX_BATCH_REQUEST_STATS`]).
    #[serde(default, deserialize_with = "bounded::urls")]
    pub urls: BTreeMap<String, BTreeMap<String, RequestStats>>,
    /// Custom counters (at most [`MAX_COUNTERS`], then [`OTHER_COUNTER`]; decoded: at most
    /// that many entries).
    #[serde(default, deserialize_with = "bounded::counters")]
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
    /// Per-second history, keyed by unix time in seconds (decoded: at most
    /// [`MAX_BATCH_SECONDS`], with histograms of at most [`TIMELINE_SIGFIG`] figures).
    #[serde(
        default,
        serialize_with = "int_keys::serialize",
        deserialize_with = "bounded::timeline"
    )]
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
        one_more(&mut s.requests);
        s.latency_mut().record(micros);
    }

    /// Adds `t`, hits of `test` recorded apart (a shard's hot tests), to the test's entry.
    pub(crate) fn add_test_hits(&mut self, test: &str, t: &TestStats) {
        if !t.is_empty() {
            self.test_entry(test).add(t);
        }
    }

    /// Adds `rs`, requests of `(url, method)` recorded apart (a shard's hot URLs), to the
    /// totals and to the URL's entry, as [`record_request`](Self::record_request) would have
    /// one by one (their seconds are recorded already).
    pub(crate) fn add_url_requests(&mut self, method: &str, url: &str, rs: &RequestStats) {
        if rs.count > 0 {
            self.requests.add(rs);
            self.url_entry(method, url).add(rs);
        }
    }

    /// The entry of `(url, method)`: at most [`MAX_URLS`] pairs, then `(OTHER_URL, method)` for
    /// at most [`MAX_OTHER_METHODS`] methods, then `(OTHER_URL, OTHER_METHOD)`.
    fn url_entry(&mut self, method: &str, url: &str) -> &mut RequestStats {
        let (url, method) = (cut(url, MAX_NAME_BYTES), cut(method, MAX_METHOD_BYTES));
        let (url, method) = (&*url, &*method);
        let known = self.urls.get(url).is_some_and(|m| m.contains_key(method));
        if known {
            // The common case: one more lookup per level, none of the checks below.
            return self
                .urls
                .get_mut(url)
                .and_then(|m| m.get_mut(method))
                .expect("known above");
        }
        let room = || {
            url != OTHER_URL
                && self.urls.len() < MAX_URLS + 1
                && self
                    .urls
                    .iter()
                    .filter(|(u, _)| u.as_str() != OTHER_URL)
                    .map(|(_, m)| m.len())
                    .sum::<usize>()
                    < MAX_URLS
        };
        let (url, method) = if known || room() {
            (url, method)
        } else {
            let other = self.urls.get(OTHER_URL);
            if other.is_some_and(|m| m.contains_key(method))
                || other.map_or(0, BTreeMap::len) < MAX_OTHER_METHODS
            {
                (OTHER_URL, method)
            } else {
                (OTHER_URL, OTHER_METHOD)
            }
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

    /// The entry of `test`: at most [`MAX_TESTS`] tests, then [`OTHER_TEST`].
    fn test_entry(&mut self, test: &str) -> &mut TestStats {
        entry(&mut self.tests, test, MAX_TESTS, OTHER_TEST)
    }

    /// Records one ended hit: the counts and duration of its test and, when it belongs to one,
    /// of its scenario; the hit in the timeline second it ended in; its failure or error in
    /// `problems`. The one entry point for a virtual user's hit (a hit that never ran, because
    /// its user could not be made, has no duration). No allocation once the test and scenario
    /// have an entry.
    pub fn record_hit(&mut self, hit: &Hit<'_>) {
        self.test_entry(hit.test).record(&hit.outcome, hit.micros);
        self.record_hit_beside_test(hit);
        count_hit(
            self.timeline.entry(hit.second).or_default(),
            hit.outcome.problem_kind(),
        );
    }

    /// What [`record_hit`](Self::record_hit) records beside the test's own entry and its
    /// second: the scenario's and the problem (for a hit whose test and second are recorded
    /// apart).
    pub(crate) fn record_hit_beside_test(&mut self, hit: &Hit<'_>) {
        if let Some(scenario) = hit.scenario {
            entry(&mut self.scenarios, scenario, MAX_SCENARIOS, OTHER_SCENARIO)
                .record(&hit.outcome, hit.micros);
        }
        if let HitOutcome::Problem {
            outcome,
            message,
            kind,
            traceback,
        } = hit.outcome
        {
            self.add_problem(outcome, hit.test, message, kind, traceback, 1);
        }
    }

    /// Records one run of a virtual user's lifecycle hook `hook` (`suite::on_start`,
    /// `suite::on_stop`) that took `micros`: in `lifecycle`, and its failure or error in
    /// `problems` under the hook's name. A hook's run is not a hit: it counts neither in
    /// [`totals`](Self::totals) nor in the timeline.
    pub fn record_hook(&mut self, hook: &str, micros: u64, outcome: &HitOutcome<'_>) {
        entry(&mut self.lifecycle, hook, MAX_HOOKS, OTHER_HOOK).record(outcome, Some(micros));
        if let HitOutcome::Problem {
            outcome,
            message,
            kind,
            traceback,
        } = *outcome
        {
            self.add_problem(outcome, hook, message, kind, traceback, 1);
        }
    }

    fn count_hit_second(&mut self, second: i64, problem: Option<ProblemKind>) {
        count_hit(self.timeline.entry(second).or_default(), problem);
    }

    /// Adds `s`, a timeline second recorded apart (a shard's current second), to `second`.
    pub(crate) fn add_second(&mut self, second: i64, s: &Second) {
        self.timeline.entry(second).or_default().add(s);
    }

    /// Counts the start of a hit (`startTest`: events arrive one by one).
    pub fn record_start(&mut self, test: &str) {
        one_more(&mut self.test_entry(test).counts.started);
    }

    /// Counts the end of a successful hit, finished during unix second `second` (`addSuccess`).
    pub fn record_success(&mut self, test: &str, second: i64) {
        let t = self.test_entry(test);
        one_more(&mut t.counts.hits);
        one_more(&mut t.counts.successes);
        self.count_hit_second(second, None);
    }

    /// Records the whole duration of a hit of `test` whose outcome was counted apart
    /// (`stopTest` with `elapsed`).
    pub fn record_hit_duration(&mut self, test: &str, micros: u64) {
        self.test_entry(test).duration.record(micros);
    }

    /// Counts the end of a failed or errored hit and remembers its message (`addFailure`,
    /// `addError`).
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
        one_more(&mut t.counts.hits);
        match outcome {
            ProblemKind::Failure => one_more(&mut t.counts.failures),
            ProblemKind::Error => one_more(&mut t.counts.errors),
        }
        self.count_hit_second(second, Some(outcome));
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
        let test = cut(test, MAX_NAME_BYTES);
        let message = cut(message, MAX_MESSAGE_BYTES);
        let kind = cut(kind, MAX_NAME_BYTES);
        let traceback = cut(traceback, MAX_MESSAGE_BYTES);
        let (test, message, kind, traceback) = (&*test, &*message, &*kind, &*traceback);
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
        one_more(self.counter_entry(name));
    }

    /// The entry of counter `name`: at most [`MAX_COUNTERS`] counters, then [`OTHER_COUNTER`].
    fn counter_entry(&mut self, name: &str) -> &mut u64 {
        let name = cut(name, MAX_NAME_BYTES);
        let name = &*name;
        let known = self.counters.contains_key(name);
        let has_other = self.counters.contains_key(OTHER_COUNTER);
        let name = if known || self.counters.len() - usize::from(has_other) < MAX_COUNTERS {
            name
        } else {
            OTHER_COUNTER
        };
        if !self.counters.contains_key(name) {
            self.counters.insert(name.to_owned(), 0);
        }
        self.counters.get_mut(name).expect("inserted")
    }

    /// Counts an opened WebSocket.
    pub fn socket_open(&mut self) {
        one_more(&mut self.sockets.opened);
    }

    /// Counts a closed WebSocket.
    pub fn socket_close(&mut self) {
        one_more(&mut self.sockets.closed);
    }

    /// Counts a WebSocket message of `size` bytes, during unix second `second`.
    pub fn socket_message(&mut self, size: u64, direction: Direction, second: i64) {
        match direction {
            Direction::Received => {
                one_more(&mut self.sockets.messages_received);
                self.sockets.bytes_received = self.sockets.bytes_received.saturating_add(size);
            }
            Direction::Sent => {
                one_more(&mut self.sockets.messages_sent);
                self.sockets.bytes_sent = self.sockets.bytes_sent.saturating_add(size);
            }
        }
        one_more(&mut self.timeline.entry(second).or_default().socket_messages);
    }

    /// Sets the active-users sample of unix second `second`.
    pub fn sample_users(&mut self, second: i64, users: u64) {
        let s = self.timeline.entry(second).or_default();
        s.users = s.users.saturating_add(users);
    }

    /// Adds everything in `other` to `self`.
    pub fn merge(&mut self, other: &Stats) {
        self.merge_untimed(other);
        for (t, s) in &other.timeline {
            self.timeline.entry(*t).or_default().add(s);
        }
    }

    /// Adds everything in `other` to `self`, but files in the timeline only the seconds of
    /// `other` that are in `window`; of those, the seconds more than [`TIMELINE_KEEP_FULL`] from
    /// `now` are added compacted (as the next [`compact_timeline`](Self::compact_timeline)
    /// would leave them), so that no histogram is cloned for them. Returns the figures (hits,
    /// requests, socket messages, dropped starts) of the seconds left out: they still count in
    /// the totals, which `other` carries apart from its timeline.
    pub fn merge_within(&mut self, other: &Stats, now: i64, window: Window) -> u64 {
        self.merge_untimed(other);
        let mut left_out = 0u64;
        for (t, s) in &other.timeline {
            if !window.contains(*t) {
                left_out = left_out.saturating_add(s.figures());
                continue;
            }
            let mine = self.timeline.entry(*t).or_default();
            if is_recent(*t, now) {
                mine.add(s);
            } else {
                mine.add_compacted(s);
            }
        }
        left_out
    }

    /// Counts one HTTP request as [`record_request`](Self::record_request) does, but files it
    /// in the timeline only when `second` is in `window`, compacted when it is more than
    /// [`TIMELINE_KEEP_FULL`] from `now`. Returns 1 when it was left out of the timeline (it
    /// counts in the totals all the same), else 0.
    pub fn record_request_within(
        &mut self,
        request: (&str, &str, u16, u64),
        second: i64,
        now: i64,
        window: Window,
    ) -> u64 {
        let (method, url, status, micros) = request;
        if !window.contains(second) {
            self.requests.record(status, micros);
            self.url_entry(method, url).record(status, micros);
            return 1;
        }
        if is_recent(second, now) {
            self.record_request(method, url, status, micros, second);
        } else {
            self.requests.record(status, micros);
            self.url_entry(method, url).record(status, micros);
            let mut one = Second {
                requests: 1,
                ..Second::default()
            };
            one.latency_mut().record(micros);
            self.timeline.entry(second).or_default().add_compacted(&one);
        }
        0
    }

    /// Everything [`merge`](Self::merge) adds but the timeline.
    fn merge_untimed(&mut self, other: &Stats) {
        for (name, t) in &other.tests {
            if !t.is_empty() {
                self.test_entry(name).add(t);
            }
        }
        for (name, t) in &other.scenarios {
            if !t.is_empty() {
                entry(&mut self.scenarios, name, MAX_SCENARIOS, OTHER_SCENARIO).add(t);
            }
        }
        for (name, t) in &other.lifecycle {
            if !t.is_empty() {
                entry(&mut self.lifecycle, name, MAX_HOOKS, OTHER_HOOK).add(t);
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
                let c = self.counter_entry(name);
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
        if let Some(o) = &other.open {
            self.open_mut().add(o);
        }
    }

    /// Open model: counts `n` arrivals due in unix second `second` that never started.
    pub fn drop_starts(&mut self, n: u64, second: i64) {
        let o = self.open_mut();
        o.dropped = o.dropped.saturating_add(n);
        let s = self.timeline.entry(second).or_default();
        s.dropped = s.dropped.saturating_add(n);
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
            .chain(self.scenarios.values_mut())
            .chain(self.lifecycle.values_mut())
            .for_each(TestStats::reset);
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
        self.tests
            .values()
            .chain(self.scenarios.values())
            .chain(self.lifecycle.values())
            .all(TestStats::is_empty)
            && self.requests.count == 0
            && self.counters.values().all(|n| *n == 0)
            && self.sockets == SocketStats::default()
            && self.problems.is_empty()
            && self.problems_dropped == 0
            && self.timeline.is_empty()
            && self.open.as_ref().is_none_or(|o| o.is_empty())
    }

    /// Replaces the histograms of seconds older than `now - TIMELINE_KEEP_FULL`, and of seconds
    /// more than `TIMELINE_KEEP_FULL` in the future (a skewed or hostile clock), by summaries:
    /// at most `2 × TIMELINE_KEEP_FULL + 1` seconds keep a histogram.
    pub fn compact_timeline(&mut self, now: i64) {
        for (_, s) in self
            .timeline
            .range_mut(..now.saturating_sub(TIMELINE_KEEP_FULL))
        {
            s.compact();
        }
        for (_, s) in self
            .timeline
            .range_mut(now.saturating_add(TIMELINE_KEEP_FULL + 1)..)
        {
            s.compact();
        }
    }

    /// Outcome counts of all tests together: the run's hits (lifecycle hooks are not hits).
    pub fn totals(&self) -> TestCounts {
        let mut t = TestCounts::default();
        for c in self.tests.values() {
            t.add(&c.counts);
        }
        t
    }

    /// Failures and errors of the virtual users' lifecycle hooks, together.
    pub fn lifecycle_problems(&self) -> u64 {
        self.lifecycle
            .values()
            .map(|h| h.counts.failures.saturating_add(h.counts.errors))
            .fold(0, u64::saturating_add)
    }
}

/// Whether `second` keeps its histogram at a tick at `now` (see
/// [`Stats::compact_timeline`]).
fn is_recent(second: i64, now: i64) -> bool {
    second >= now.saturating_sub(TIMELINE_KEEP_FULL)
        && second <= now.saturating_add(TIMELINE_KEEP_FULL)
}

/// One more hit that ended (with `problem`, if any) in the second `s`.
pub(crate) fn count_hit(s: &mut Second, problem: Option<ProblemKind>) {
    one_more(&mut s.hits);
    match problem {
        None => one_more(&mut s.successes),
        Some(ProblemKind::Failure) => one_more(&mut s.failures),
        Some(ProblemKind::Error) => one_more(&mut s.errors),
    }
}

/// Counts one more in `n`, saturating: a runner's batch may have put any count there, and the
/// single events that follow must not overflow it (a panic of the receiver, or a wrap to 0).
pub(crate) fn one_more(n: &mut u64) {
    *n = n.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::latency::{
        HistogramError, MAX_LATENCY_MICROS, V2_DEFLATE_COOKIE, V2_MAX_VARINT_LEN, decode_histogram,
        histogram_counters,
    };
    use base64::Engine as _;
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::Serializer as _;

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
        assert_eq!(s.tests["t::x"].counts.hits, 1_000_000);
        assert_eq!(s.timeline.len(), 1);
        assert_eq!(s.requests.count, 1_000_000);
    }

    fn hit<'a>(test: &'a str, scenario: Option<&'a str>, micros: u64, ok: bool) -> Hit<'a> {
        Hit {
            test,
            scenario,
            micros: Some(micros),
            second: 9,
            outcome: if ok {
                HitOutcome::Success
            } else {
                HitOutcome::Problem {
                    outcome: ProblemKind::Failure,
                    message: "no",
                    kind: "ensure",
                    traceback: "",
                }
            },
        }
    }

    #[test]
    fn hits_are_recorded_per_test_and_scenario_with_durations() {
        let mut s = Stats::default();
        for i in 1..=100u64 {
            s.record_hit(&hit("b::browse", Some("shoppers"), i * 1_000, true));
        }
        s.record_hit(&hit("b::checkout", Some("shoppers"), 500_000, false));
        s.record_hit(&hit("b::checkout", None, 700_000, true));
        let browse = &s.tests["b::browse"];
        assert_eq!(browse.counts.hits, 100);
        assert_eq!(browse.counts.started, 100);
        let p95 = browse.duration.quantile(0.95);
        assert!((94_900..=95_100).contains(&p95), "{p95}");
        let c = &s.tests["b::checkout"].counts;
        assert_eq!((c.hits, c.successes, c.failures), (2, 1, 1));
        let sc = &s.scenarios["shoppers"];
        assert_eq!((sc.counts.hits, sc.counts.failures), (101, 1));
        assert_eq!(sc.duration.len(), 101);
        assert_eq!(s.scenarios.len(), 1);
        let t = s.totals();
        assert_eq!((t.hits, t.successes, t.failures), (102, 101, 1));
        assert_eq!(s.timeline[&9].hits, 102);
        assert_eq!(s.problems[0].test, "b::checkout");
        // A hit that never ran has no duration.
        s.record_hit(&Hit {
            micros: None,
            ..hit("b::browse", None, 0, false)
        });
        assert_eq!(s.tests["b::browse"].counts.hits, 101);
        assert_eq!(s.tests["b::browse"].duration.len(), 100);
    }

    #[test]
    fn hooks_are_reported_apart_from_hits() {
        let mut s = Stats::default();
        s.record_hook("b::on_start", 12_000, &HitOutcome::Success);
        assert!(!s.is_empty(), "a shard with only a hook must be drained");
        s.record_hook(
            "b::on_start",
            30_000,
            &HitOutcome::Problem {
                outcome: ProblemKind::Error,
                message: "login refused",
                kind: "http",
                traceback: "",
            },
        );
        s.record_hook("b::on_stop", 1_000, &HitOutcome::Success);
        assert_eq!(s.totals(), TestCounts::default());
        assert!(s.tests.is_empty() && s.timeline.is_empty());
        let h = &s.lifecycle["b::on_start"];
        assert_eq!((h.counts.hits, h.counts.errors), (2, 1));
        assert_eq!(h.duration.len(), 2);
        assert_eq!(s.lifecycle_problems(), 1);
        assert_eq!(s.problems[0].test, "b::on_start");
        let mut merged = Stats::default();
        merged.merge(&s);
        merged.merge(&s);
        assert_eq!(merged.lifecycle["b::on_start"].counts.hits, 4);
        assert_eq!(merged.lifecycle["b::on_stop"].duration.len(), 2);
        s.reset();
        assert!(s.is_empty());
    }

    #[test]
    fn per_test_figures_merge_exactly_and_round_trip() {
        let mut whole = Stats::default();
        let mut parts = [Stats::default(), Stats::default()];
        for i in 0..1_000u64 {
            let h = hit(
                ["s::a", "s::b"][(i % 2) as usize],
                Some(["x", "y"][(i % 3 == 0) as usize]),
                (i * 7919) % 2_000_000 + 1,
                i % 10 != 0,
            );
            whole.record_hit(&h);
            parts[(i % 2) as usize].record_hit(&h);
        }
        whole.record_hook("s::on_start", 5, &HitOutcome::Success);
        parts[1].record_hook("s::on_start", 5, &HitOutcome::Success);
        let mut merged = Stats::default();
        for p in &parts {
            let text = serde_json::to_string(p).expect("ser");
            let back: Stats = serde_json::from_str(&text).expect("de");
            assert_eq!(&back, p);
            merged.merge(&back);
        }
        for q in [0.5, 0.95, 0.99, 1.0] {
            assert_eq!(
                merged.scenarios["x"].duration.quantile(q),
                whole.scenarios["x"].duration.quantile(q)
            );
        }
        assert_eq!(merged.tests, whole.tests);
        assert_eq!(merged.scenarios, whole.scenarios);
        assert_eq!(merged.lifecycle, whole.lifecycle);
    }

    #[test]
    fn old_batches_without_durations_decode() {
        // A batch as workers of the previous version sent it: counts only, no scenarios.
        let old = r#"{"tests":{"s::t":{"started":3,"hits":3,"successes":2,"failures":1,"errors":0}},
            "counters":{"c":1}}"#;
        let s: Stats = serde_json::from_str(old).expect("old batch");
        assert_eq!(s.tests["s::t"].counts.hits, 3);
        assert!(s.tests["s::t"].duration.is_empty());
        assert!(s.scenarios.is_empty() && s.lifecycle.is_empty());
        let mut merged = Stats::default();
        merged.merge(&s);
        merged.record_hit(&hit("s::t", None, 1_000, true));
        assert_eq!(merged.totals().hits, 4);
        assert_eq!(merged.tests["s::t"].duration.len(), 1);
        // A new batch without scenarios or hooks writes neither field.
        let text = serde_json::to_string(&merged).expect("ser");
        assert!(
            !text.contains("scenarios") && !text.contains("lifecycle"),
            "{text}"
        );
    }

    #[test]
    fn decoded_tests_are_bounded() {
        let entries: Vec<String> = (0..=MAX_TESTS + 1)
            .map(|i| format!("\"s::t{i}\":{{\"hits\":1}}"))
            .collect();
        let text = format!("{{\"tests\":{{{}}}}}", entries.join(","));
        let e = serde_json::from_str::<Stats>(&text).expect_err("over the bound");
        assert!(e.to_string().contains("more than 101 tests"), "{e}");
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
        assert_eq!(s.tests["t"].counts.errors, (MAX_PROBLEMS + 7) as u64);
    }

    #[test]
    fn distinct_counters_are_bounded() {
        // A runner's incr_counter names are its own: one per message must not grow the run.
        let mut s = Stats::default();
        for i in 0..(MAX_COUNTERS + 50) {
            s.incr_counter(&format!("c{i}"));
        }
        s.incr_counter("c0");
        assert_eq!(s.counters.len(), MAX_COUNTERS + 1);
        assert_eq!(s.counters["c0"], 2);
        assert_eq!(s.counters[OTHER_COUNTER], 50);
        // Merging keeps the bound, and so does decoding a batch.
        let mut other = Stats::default();
        other.counters.insert("late".into(), 3);
        s.merge(&other);
        assert_eq!(s.counters.len(), MAX_COUNTERS + 1);
        assert_eq!(s.counters[OTHER_COUNTER], 53);
        let batch = |n: usize| {
            let entries: Vec<String> = (0..n).map(|i| format!("\"c{i}\":1")).collect();
            format!("{{\"counters\":{{{}}}}}", entries.join(","))
        };
        assert!(serde_json::from_str::<Stats>(&batch(MAX_COUNTERS + 1)).is_ok());
        let e = serde_json::from_str::<Stats>(&batch(MAX_COUNTERS + 2)).expect_err("over");
        assert!(e.to_string().contains("counters"), "{e}");
    }

    #[test]
    fn names_and_messages_of_any_length_are_cut() {
        // An external runner's strings may be as long as its message (16 MiB): kept whole, a
        // thousand URLs or a hundred problems of that size would hold gigabytes.
        let huge = "é".repeat(1 << 20);
        let mut s = Stats::default();
        s.record_request(&huge, &huge, 200, 10, 0);
        s.record_start(&huge);
        s.record_success(&huge, 0);
        s.incr_counter(&huge);
        s.record_problem(ProblemKind::Error, &huge, &huge, &huge, &huge, 0);
        let (url, methods) = s.urls.iter().next().expect("a URL");
        let (method, _) = methods.iter().next().expect("a method");
        let test = s.tests.keys().next().expect("a test");
        let counter = s.counters.keys().next().expect("a counter");
        let p = &s.problems[0];
        for (what, text, max) in [
            ("url", url, MAX_NAME_BYTES),
            ("method", method, MAX_METHOD_BYTES),
            ("test", test, MAX_NAME_BYTES),
            ("counter", counter, MAX_NAME_BYTES),
            ("problem test", &p.test, MAX_NAME_BYTES),
            ("message", &p.message, MAX_MESSAGE_BYTES),
            ("kind", &p.kind, MAX_NAME_BYTES),
            ("traceback", &p.traceback, MAX_MESSAGE_BYTES),
        ] {
            assert!(text.len() <= max + '…'.len_utf8(), "{what}: {}", text.len());
            assert!(text.ends_with('…'), "{what}");
        }
        // The same long name is the same entry, and a short one is kept as it is.
        s.record_start(&huge);
        s.record_problem(ProblemKind::Error, &huge, &huge, &huge, &huge, 0);
        assert_eq!(s.tests.len(), 1);
        assert_eq!(s.tests.values().next().expect("t").counts.started, 2);
        assert_eq!(s.problems.len(), 1);
        assert_eq!(s.problems[0].count, 2);
        s.record_request("GET", "/short", 200, 10, 0);
        assert!(s.urls.contains_key("/short"));
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
        // Seconds far in the future are compacted too; recent ones keep their histograms.
        for t in [
            100,
            100 + TIMELINE_KEEP_FULL,
            100 + TIMELINE_KEEP_FULL + 1,
            i64::MAX,
        ] {
            s.record_request("GET", "/a", 200, 1000, t);
        }
        s.compact_timeline(100);
        assert!(s.timeline[&100].latency.is_some());
        assert!(s.timeline[&(100 + TIMELINE_KEEP_FULL)].latency.is_some());
        assert!(
            s.timeline[&(100 + TIMELINE_KEEP_FULL + 1)]
                .latency
                .is_none()
        );
        assert!(s.timeline[&i64::MAX].latency.is_none());
        assert_eq!(s.timeline[&i64::MAX].quantiles().map(|q| q.count), Some(1));
        s.compact_timeline(i64::MIN);
    }

    #[test]
    fn seconds_outside_the_window_count_in_the_totals_only() {
        let now = 1_000_000;
        let window = Window::of_run(now - 60, now);
        let mut s = Stats::default();
        // Within the window: filed; far from now: compacted at once. Outside: totals only.
        for (second, left_out) in [(now, 0), (now - 100, 0), (0, 1), (i64::MAX, 1)] {
            let got = s.record_request_within(("GET", "/a", 200, 1000), second, now, window);
            assert_eq!(got, left_out, "{second}");
        }
        assert_eq!(s.requests.count, 4);
        assert_eq!(s.urls["/a"]["GET"].count, 4);
        assert_eq!(
            s.timeline.keys().copied().collect::<Vec<_>>(),
            [now - 100, now]
        );
        assert!(s.timeline[&now].latency.is_some());
        assert!(s.timeline[&(now - 100)].latency.is_none());
        assert_eq!(
            s.timeline[&(now - 100)].quantiles().map(|q| q.count),
            Some(1)
        );
        // A batch: its seconds outside the window are left out, and counted.
        let mut batch = Stats::default();
        for t in [now, now - 100, now - 1000, 7] {
            batch.record_request("GET", "/b", 500, 2000, t);
            batch.record_hit(&Hit {
                second: t,
                ..hit("t::x", None, 10, true)
            });
        }
        let mut merged = Stats::default();
        assert_eq!(merged.merge_within(&batch, now, window), 4);
        assert_eq!(merged.requests.count, 4);
        assert_eq!(merged.totals().hits, 4);
        assert_eq!(merged.timeline.len(), 2);
        assert!(merged.timeline[&(now - 100)].latency.is_none());
        assert_eq!(merged.timeline[&(now - 100)].hits, 1);
        assert_eq!(
            merged.timeline[&(now - 100)].quantiles().map(|q| q.count),
            Some(1)
        );
        assert_eq!(merged.timeline[&now], batch.timeline[&now]);
        // Nothing at all for a holder that keeps no timeline.
        let mut untimed = Stats::default();
        assert_eq!(untimed.merge_within(&batch, now, Window::NOTHING), 8);
        assert!(untimed.timeline.is_empty());
        assert_eq!(untimed.totals(), batch.totals());
    }

    /// `h` in the V2 encoding, with its header patched by `patch` (and the length rewritten).
    fn v2_bytes(h: &Histogram<u64>) -> Vec<u8> {
        let mut buf = Vec::new();
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(h, &mut buf)
            .expect("ser");
        buf
    }

    fn deflated(v2: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(v2).expect("deflate");
        let body = z.finish().expect("deflate");
        let mut out = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        out
    }

    fn latency_json(bytes: &[u8]) -> String {
        format!(
            "\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    #[test]
    fn counters_are_computed_as_hdrhistogram_does() {
        for (low, high, sigfig) in [
            (1, 2, 1),
            (1, 1000, 2),
            (1, MAX_LATENCY_MICROS, 2),
            (1, MAX_LATENCY_MICROS, 3),
            (1000, MAX_LATENCY_MICROS, 3),
            (7, 1 << 40, 3),
            (1, u64::MAX / 2, 5),
        ] {
            let h = Histogram::<u64>::new_with_bounds(low, high, sigfig).expect("h");
            assert_eq!(
                histogram_counters(low, high, sigfig),
                h.distinct_values(),
                "{low} {high} {sigfig}"
            );
        }
        assert_eq!(histogram_counters(1, MAX_LATENCY_MICROS, 3), 28_672);
        assert_eq!(histogram_counters(1, MAX_LATENCY_MICROS, 2), 3_968);
    }

    #[test]
    fn histograms_loads_writes_round_trip_in_both_encodings() {
        for sigfig in [LATENCY_SIGFIG, TIMELINE_SIGFIG] {
            let mut l = Latency::new(sigfig);
            for v in [1, 999, 123_456, 60_000_000, MAX_LATENCY_MICROS, u64::MAX] {
                l.record(v);
            }
            assert_eq!(l.max(), l.0.highest_equivalent(MAX_LATENCY_MICROS));
            let json = serde_json::to_string(&l).expect("ser");
            let back: Latency = serde_json::from_str(&json).expect("de");
            assert_eq!(back, l);
            let plain: Latency = serde_json::from_str(&latency_json(&v2_bytes(&l.0))).expect("v2");
            assert_eq!(plain, l);
        }
    }

    #[test]
    fn histogram_headers_are_checked_before_allocating() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("h");
        h.record(1000).expect("record");
        let good = v2_bytes(&h);
        assert!(decode_histogram(&deflated(&good)).is_ok());
        let patched = |at: usize, bytes: &[u8]| {
            let mut v = good.clone();
            v[at..at + bytes.len()].copy_from_slice(bytes);
            v
        };
        let refused = |v2: &[u8]| {
            let plain = decode_histogram(v2).expect_err("plain accepted");
            let compressed = decode_histogram(&deflated(v2)).expect_err("deflated accepted");
            assert_eq!(plain, compressed);
            plain
        };
        // A payload claim of 1 GiB, or just more than the histogram can need.
        assert!(matches!(
            refused(&patched(4, &(1u32 << 30).to_be_bytes())),
            HistogramError::PayloadLength {
                claimed: 1_073_741_824,
                ..
            }
        ));
        let need = histogram_counters(1, 3_600_000_000, 3) * V2_MAX_VARINT_LEN;
        assert!(matches!(
            refused(&patched(4, &(need as u32 + 1).to_be_bytes())),
            HistogramError::PayloadLength { .. }
        ));
        // Precision.
        for sigfig in [0u32, 4, 5, 255] {
            assert_eq!(
                refused(&patched(12, &sigfig.to_be_bytes())),
                HistogramError::SigFig(sigfig)
            );
        }
        // Range: low 0, high above a day, high below twice low.
        assert!(matches!(
            refused(&patched(16, &0u64.to_be_bytes())),
            HistogramError::Range { low: 0, .. }
        ));
        assert!(matches!(
            refused(&patched(24, &(2048u64 << 26).to_be_bytes())),
            HistogramError::Range { .. }
        ));
        // The top of the last bucket of a day is what an auto-resized histogram reports.
        assert!(decode_histogram(&patched(24, &((2048u64 << 26) - 1).to_be_bytes())).is_ok());
        assert!(matches!(
            refused(&patched(24, &(1u64 << 62).to_be_bytes())),
            HistogramError::Range { .. }
        ));
        assert!(matches!(
            refused(&patched(16, &3_000_000_000u64.to_be_bytes())),
            HistogramError::Range { .. }
        ));
        // Unsupported fields.
        assert_eq!(
            refused(&patched(8, &1u32.to_be_bytes())),
            HistogramError::Unsupported
        );
        assert_eq!(
            refused(&patched(32, &2.0f64.to_be_bytes())),
            HistogramError::Unsupported
        );
        // Cookies, truncation, a compressed length beyond the input, garbage inside.
        assert_eq!(
            decode_histogram(&patched(0, &0x1c84_9303u32.to_be_bytes())),
            Err(HistogramError::Cookie(0x1c84_9303))
        );
        assert_eq!(decode_histogram(&[0x1c]), Err(HistogramError::Truncated));
        assert_eq!(
            decode_histogram(&good[..good.len() - 1]),
            Err(HistogramError::Truncated)
        );
        let mut d = deflated(&good);
        d.truncate(d.len() - 4);
        assert!(decode_histogram(&d).is_err());
        let mut d = deflated(&good);
        d[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_histogram(&d),
            Err(HistogramError::CompressedLength { .. })
        ));
        let mut d = deflated(&good);
        let n = d.len();
        d[10..n].fill(0xAA);
        assert!(decode_histogram(&d).is_err());
        // A serde error, as any malformed field.
        let bad = latency_json(&deflated(&patched(12, &5u32.to_be_bytes())));
        let e = serde_json::from_str::<Latency>(&bad).expect_err("5 figures");
        assert!(e.to_string().contains("significant figures"), "{e}");
    }

    #[test]
    fn decoded_values_above_a_day_are_refused() {
        // A range that ends at a day but a count at the last index, far above it.
        let mut h = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("h");
        // The last bucket of 28 672 counters ends at 2048 << 26 µs (38 hours).
        let top = (2048u64 << 26) - 1;
        h.record(top).expect("record");
        assert!(matches!(
            decode_histogram(&deflated(&v2_bytes(&h))),
            Err(HistogramError::ValueAboveRange(_))
        ));
    }

    #[test]
    fn record_and_merge_stay_within_a_day() {
        let bound = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_MICROS, LATENCY_SIGFIG)
            .expect("h")
            .distinct_values();
        let mut l = Latency::new(LATENCY_SIGFIG);
        l.record(u64::MAX);
        assert_eq!(l.max(), l.0.highest_equivalent(MAX_LATENCY_MICROS));
        assert!(l.0.distinct_values() <= bound);
        // A histogram built around the checks (the field is public) with a value far above.
        let mut wide = Latency(Histogram::new_with_bounds(1, u64::MAX / 2, 3).expect("h"));
        wide.0.record(1 << 61).expect("record");
        let mut merged = Latency::new(LATENCY_SIGFIG);
        merged.add(&wide);
        assert_eq!(merged.len(), 1);
        assert_eq!(
            merged.max(),
            merged.0.highest_equivalent(MAX_LATENCY_MICROS)
        );
        assert!(merged.0.distinct_values() <= bound);
        // Different precision: value by value, same bound.
        let mut coarse = Latency::new(TIMELINE_SIGFIG);
        coarse.record(MAX_LATENCY_MICROS);
        merged.add(&coarse);
        assert_eq!(merged.len(), 2);
        assert!(merged.0.distinct_values() <= bound);
    }

    #[test]
    fn request_entries_are_bounded_by_pairs() {
        let mut s = Stats::default();
        for i in 0..MAX_URLS {
            for m in ["GET", "POST"] {
                s.record_request(m, &format!("/u{i}"), 200, 10, 0);
            }
        }
        for i in 0..40 {
            s.record_request(&format!("M{i}"), "/u0", 200, 10, 0);
        }
        let pairs: usize = s.urls.values().map(BTreeMap::len).sum();
        assert_eq!(pairs, MAX_BATCH_REQUEST_STATS);
        assert_eq!(s.urls[OTHER_URL].len(), MAX_OTHER_METHODS + 1);
        assert_eq!(s.requests.count, 2 * MAX_URLS as u64 + 40);
        let counted: u64 = s
            .urls
            .values()
            .flat_map(|m| m.values())
            .map(|r| r.count)
            .sum();
        assert_eq!(counted, s.requests.count);
        // The fullest Stats there can be still decodes as a batch.
        let back: Stats =
            serde_json::from_str(&serde_json::to_string(&s).expect("ser")).expect("de");
        assert_eq!(back, s);
    }

    #[test]
    fn batches_over_the_bounds_are_refused() {
        let h = serde_json::to_string(&Latency::new(LATENCY_SIGFIG)).expect("ser");
        let rs = format!("{{\"count\":1,\"statuses\":{{}},\"latency\":{h}}}");
        let urls = |n: usize| {
            let entries: Vec<String> = (0..n)
                .map(|i| format!("\"/u{}\":{{\"GET\":{rs},\"PUT\":{rs}}}", i))
                .collect();
            format!("{{\"urls\":{{{}}}}}", entries.join(","))
        };
        assert!(serde_json::from_str::<Stats>(&urls(MAX_BATCH_REQUEST_STATS / 2)).is_ok());
        let e = serde_json::from_str::<Stats>(&urls(MAX_BATCH_REQUEST_STATS / 2 + 1))
            .expect_err("over the bound");
        assert!(e.to_string().contains("(URL, method) entries"), "{e}");

        let t = serde_json::to_string(&Latency::new(TIMELINE_SIGFIG)).expect("ser");
        let second = format!(
            "{{\"hits\":1,\"successes\":1,\"failures\":0,\"errors\":0,\"requests\":0,\
             \"socket_messages\":0,\"users\":0,\"latency\":{t}}}"
        );
        let timeline = |n: usize| {
            let entries: Vec<String> = (0..n).map(|i| format!("\"{i}\":{second}")).collect();
            format!("{{\"timeline\":{{{}}}}}", entries.join(","))
        };
        assert!(serde_json::from_str::<Stats>(&timeline(MAX_BATCH_SECONDS)).is_ok());
        let e = serde_json::from_str::<Stats>(&timeline(MAX_BATCH_SECONDS + 1))
            .expect_err("over the bound");
        assert!(e.to_string().contains("timeline seconds"), "{e}");
        // Per-second histograms are of the timeline's precision.
        let fine = second.replace(&t, &h);
        let e = serde_json::from_str::<Stats>(&format!("{{\"timeline\":{{\"1\":{fine}}}}}"))
            .expect_err("3 figures");
        assert!(e.to_string().contains("per-second histogram"), "{e}");
    }
}
