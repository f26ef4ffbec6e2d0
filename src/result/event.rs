//! The event model: every request, WebSocket message, test outcome and custom counter is an
//! [`Event`]. Events are produced by virtual users (aggregated per worker into
//! [`Event::Batch`]es) or by external programs, and consumed by an [`EventSink`](super::EventSink)
//! such as the [`TestResult`](super::TestResult).
//!
//! The JSON form of an event is also the wire format: a `data_type` tag plus the fields of
//! the seed system's published external-runner protocol (docs/external-runners.md). Over the wire an
//! event travels in an [`Envelope`] that adds `run_id`, `agent_id` and `hostname`.

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

pub use super::stats::Direction;
use super::stats::{ProblemKind, Stats, Window};

/// `[hits, users, current_hit, current_user]`: the hits and users of the current cycle step, and
/// which hit and which user an event belongs to (both 1-based). Serialised as a JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadsStatus {
    /// Hits per user in the current cycle step (0 in a duration run).
    pub hits: u64,
    /// Virtual users in the current cycle step.
    pub users: u64,
    /// The hit this event belongs to, counted from 1 for each user.
    pub current_hit: u64,
    /// The virtual user this event belongs to, counted from 1.
    pub current_user: u64,
}

impl Serialize for LoadsStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&self.hits)?;
        t.serialize_element(&self.users)?;
        t.serialize_element(&self.current_hit)?;
        t.serialize_element(&self.current_user)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for LoadsStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LoadsStatus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array [hits, users, current_hit, current_user]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LoadsStatus, A::Error> {
                // The seed protocol sends numbers, but some runners send null for "unknown".
                let mut next = |i: usize| -> Result<u64, A::Error> {
                    let v: Option<Option<f64>> = seq.next_element()?;
                    match v {
                        None => Err(de::Error::invalid_length(i, &self)),
                        Some(None) => Ok(0),
                        Some(Some(n)) if n >= 0.0 && n.is_finite() => Ok(n as u64),
                        Some(Some(n)) => Err(de::Error::custom(format!(
                            "loads_status values must be non-negative, got {n}"
                        ))),
                    }
                };
                Ok(LoadsStatus {
                    hits: next(0)?,
                    users: next(1)?,
                    current_hit: next(2)?,
                    current_user: next(3)?,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// `exc_info` of a failure or error: `[message, kind, traceback]`, as the seed protocol sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExcInfo(pub String, pub String, pub String);

impl ExcInfo {
    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.0
    }
    /// The kind of failure or error (an assertion macro, `panic`, an error type name...).
    pub fn kind(&self) -> &str {
        &self.1
    }
    /// Where it happened: a source location, a panic backtrace or an error's source chain.
    pub fn traceback(&self) -> &str {
        &self.2
    }
}

/// One event, as recorded by a virtual user or reported by an external runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "data_type")]
pub enum Event {
    /// The run started.
    #[serde(rename = "startTestRun")]
    StartTestRun,
    /// The run ended.
    #[serde(rename = "stopTestRun")]
    StopTestRun,
    /// A hit of `test` started.
    #[serde(rename = "startTest")]
    StartTest {
        /// Full test name, `suite::test`.
        test: String,
        /// Which hit of which user.
        loads_status: LoadsStatus,
    },
    /// A hit of `test` ended (whatever its outcome).
    #[serde(rename = "stopTest")]
    StopTest {
        /// Full test name.
        test: String,
        /// Which hit of which user.
        loads_status: LoadsStatus,
        /// The hit's whole duration in seconds, as its producer measured it: from just before
        /// its set-up to just after its tear-down (an addition to the seed protocol; producers
        /// that leave it out give hits without a duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        elapsed: Option<f64>,
    },
    /// A hit succeeded.
    #[serde(rename = "addSuccess")]
    AddSuccess {
        /// Full test name.
        test: String,
        /// Which hit of which user.
        loads_status: LoadsStatus,
    },
    /// A hit failed: an assertion did not hold.
    #[serde(rename = "addFailure")]
    AddFailure {
        /// Full test name.
        test: String,
        /// `[message, kind, traceback]`.
        exc_info: ExcInfo,
        /// Which hit of which user.
        loads_status: LoadsStatus,
    },
    /// A hit errored: anything other than an assertion (I/O, HTTP, timeout...).
    #[serde(rename = "addError")]
    AddError {
        /// Full test name.
        test: String,
        /// `[message, kind, traceback]`.
        exc_info: ExcInfo,
        /// Which hit of which user.
        loads_status: LoadsStatus,
    },
    /// One HTTP request and its response.
    #[serde(rename = "add_hit")]
    AddHit {
        /// The request URL.
        url: String,
        /// The request method (`GET`, `POST`...).
        method: String,
        /// The response status; 0 when no response arrived (connection error, timeout).
        status: u16,
        /// When the request started (ISO 8601).
        started: DateTime<Utc>,
        /// Seconds from sending the request to the end of the response body.
        elapsed: f64,
        /// Which hit of which user.
        loads_status: LoadsStatus,
    },
    /// A WebSocket was opened.
    #[serde(rename = "socket_open")]
    SocketOpen,
    /// A WebSocket was closed.
    #[serde(rename = "socket_close")]
    SocketClose,
    /// A WebSocket message of `size` bytes.
    #[serde(rename = "socket_message")]
    SocketMessage {
        /// Payload size in bytes.
        size: u64,
        /// `received` (the default, as in the seed protocol) or `sent`.
        #[serde(default, skip_serializing_if = "Direction::is_received")]
        direction: Direction,
    },
    /// A custom counter was incremented by one.
    #[serde(rename = "incr_counter")]
    IncrCounter {
        /// Full test name.
        test: String,
        /// Counter name.
        name: String,
        /// Which hit of which user.
        loads_status: LoadsStatus,
    },
    /// A periodic, mergeable summary of many events (see [`Stats`]).
    #[serde(rename = "batch")]
    Batch(Box<Stats>),
}

impl Event {
    /// Applies this event to `stats`. `now` (unix seconds) dates the events that carry no time of their own.
    /// Run-level events (`startTestRun`, `stopTestRun`) change nothing here. The seconds an
    /// event carries (`add_hit`'s `started`, a batch's timeline) are taken as they are: for
    /// events of sources a run does not control, [`apply_within`](Self::apply_within).
    pub fn apply_to(&self, stats: &mut Stats, now: i64) {
        self.apply(stats, now, None);
    }

    /// Applies this event to `stats` as [`apply_to`](Self::apply_to) does, but files the
    /// seconds it carries in the timeline only within `window` (the run's, see
    /// [`Window`]); what is dated outside it counts in the totals only. Returns the figures
    /// left out of the timeline (requests, hits, socket messages, dropped starts).
    pub fn apply_within(&self, stats: &mut Stats, now: i64, window: Window) -> u64 {
        self.apply(stats, now, Some(window))
    }

    /// The figures [`apply_within`](Self::apply_within) would leave out of the timeline with
    /// `window`, without applying anything (for events handed on as they are).
    pub fn untimed_in(&self, window: Window) -> u64 {
        match self {
            Event::AddHit { started, .. } => u64::from(!window.contains(started.timestamp())),
            Event::Batch(b) => b
                .timeline
                .iter()
                .filter(|(t, _)| !window.contains(**t))
                .map(|(_, s)| s.figures())
                .fold(0, u64::saturating_add),
            _ => 0,
        }
    }

    fn apply(&self, stats: &mut Stats, now: i64, window: Option<Window>) -> u64 {
        match self {
            Event::StartTestRun | Event::StopTestRun => {}
            Event::StopTest { test, elapsed, .. } => {
                // A duration that is not a number of seconds is left out, not made up.
                if let Some(e) = elapsed.filter(|e| e.is_finite() && *e >= 0.0) {
                    stats.record_hit_duration(test, seconds_to_micros(e));
                }
            }
            Event::StartTest { test, .. } => stats.record_start(test),
            Event::AddSuccess { test, .. } => stats.record_success(test, now),
            Event::AddFailure { test, exc_info, .. } => stats.record_problem(
                ProblemKind::Failure,
                test,
                exc_info.message(),
                exc_info.kind(),
                exc_info.traceback(),
                now,
            ),
            Event::AddError { test, exc_info, .. } => stats.record_problem(
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
                let micros = seconds_to_micros(*elapsed);
                let second = started.timestamp();
                match window {
                    None => stats.record_request(method, url, *status, micros, second),
                    Some(w) => {
                        let request = (method.as_str(), url.as_str(), *status, micros);
                        return stats.record_request_within(request, second, now, w);
                    }
                }
            }
            Event::SocketOpen => stats.socket_open(),
            Event::SocketClose => stats.socket_close(),
            Event::SocketMessage { size, direction } => {
                stats.socket_message(*size, *direction, now)
            }
            Event::IncrCounter { name, .. } => stats.incr_counter(name),
            Event::Batch(b) => match window {
                None => stats.merge(b),
                Some(w) => return stats.merge_within(b, now, w),
            },
        }
        0
    }

    /// Every `data_type` tag, one per variant (what [`Event::data_type`] returns).
    pub const DATA_TYPES: [&'static str; 13] = [
        "startTestRun",
        "stopTestRun",
        "startTest",
        "stopTest",
        "addSuccess",
        "addFailure",
        "addError",
        "add_hit",
        "socket_open",
        "socket_close",
        "socket_message",
        "incr_counter",
        "batch",
    ];

    /// The `data_type` tag of this event.
    pub fn data_type(&self) -> &'static str {
        match self {
            Event::StartTestRun => "startTestRun",
            Event::StopTestRun => "stopTestRun",
            Event::StartTest { .. } => "startTest",
            Event::StopTest { .. } => "stopTest",
            Event::AddSuccess { .. } => "addSuccess",
            Event::AddFailure { .. } => "addFailure",
            Event::AddError { .. } => "addError",
            Event::AddHit { .. } => "add_hit",
            Event::SocketOpen => "socket_open",
            Event::SocketClose => "socket_close",
            Event::SocketMessage { .. } => "socket_message",
            Event::IncrCounter { .. } => "incr_counter",
            Event::Batch(_) => "batch",
        }
    }
}

/// A producer's `elapsed` (seconds) in µs: 0 when it is not a positive number (the cast
/// saturates above).
fn seconds_to_micros(elapsed: f64) -> u64 {
    if elapsed.is_finite() && elapsed > 0.0 {
        (elapsed * 1e6).round() as u64
    } else {
        0
    }
}

/// An event as it travels between processes: the event plus where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The run this event belongs to.
    #[serde(default)]
    pub run_id: String,
    /// The agent that produced it (empty for a local run).
    #[serde(default)]
    pub agent_id: String,
    /// The host that produced it.
    #[serde(default)]
    pub hostname: String,
    /// The event itself; its fields sit beside the three above.
    #[serde(flatten)]
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn st() -> LoadsStatus {
        LoadsStatus {
            hits: 10,
            users: 2,
            current_hit: 3,
            current_user: 1,
        }
    }

    fn round_trip(ev: Event, expected: serde_json::Value) {
        assert!(Event::DATA_TYPES.contains(&ev.data_type()));
        let v = serde_json::to_value(&ev).expect("serialise");
        assert_eq!(v, expected);
        let back: Event = serde_json::from_value(v).expect("deserialise");
        assert_eq!(back, ev);
    }

    #[test]
    fn field_names_follow_the_seed_protocol() {
        round_trip(Event::StartTestRun, json!({"data_type": "startTestRun"}));
        round_trip(Event::StopTestRun, json!({"data_type": "stopTestRun"}));
        round_trip(
            Event::StartTest {
                test: "a::b".into(),
                loads_status: st(),
            },
            json!({"data_type": "startTest", "test": "a::b", "loads_status": [10, 2, 3, 1]}),
        );
        round_trip(
            Event::AddSuccess {
                test: "a::b".into(),
                loads_status: st(),
            },
            json!({"data_type": "addSuccess", "test": "a::b", "loads_status": [10, 2, 3, 1]}),
        );
        round_trip(
            Event::AddFailure {
                test: "a::b".into(),
                exc_info: ExcInfo("boom".into(), "ensure".into(), "x.rs:1".into()),
                loads_status: st(),
            },
            json!({"data_type": "addFailure", "test": "a::b",
                   "exc_info": ["boom", "ensure", "x.rs:1"], "loads_status": [10, 2, 3, 1]}),
        );
        round_trip(
            Event::AddError {
                test: "a::b".into(),
                exc_info: ExcInfo("io".into(), "std::io::Error".into(), String::new()),
                loads_status: st(),
            },
            json!({"data_type": "addError", "test": "a::b",
                   "exc_info": ["io", "std::io::Error", ""], "loads_status": [10, 2, 3, 1]}),
        );
        let started = DateTime::parse_from_rfc3339("2026-11-26T05:00:00.250Z")
            .expect("date")
            .with_timezone(&Utc);
        round_trip(
            Event::AddHit {
                url: "http://127.0.0.1/".into(),
                method: "GET".into(),
                status: 200,
                started,
                elapsed: 0.25,
                loads_status: st(),
            },
            json!({"data_type": "add_hit", "url": "http://127.0.0.1/", "method": "GET",
                   "status": 200, "started": "2026-11-26T05:00:00.250Z", "elapsed": 0.25,
                   "loads_status": [10, 2, 3, 1]}),
        );
        round_trip(
            Event::StopTest {
                test: "a::b".into(),
                loads_status: st(),
                elapsed: None,
            },
            json!({"data_type": "stopTest", "test": "a::b", "loads_status": [10, 2, 3, 1]}),
        );
        round_trip(
            Event::StopTest {
                test: "a::b".into(),
                loads_status: st(),
                elapsed: Some(0.125),
            },
            json!({"data_type": "stopTest", "test": "a::b", "loads_status": [10, 2, 3, 1],
                   "elapsed": 0.125}),
        );
        round_trip(Event::SocketOpen, json!({"data_type": "socket_open"}));
        round_trip(Event::SocketClose, json!({"data_type": "socket_close"}));
        round_trip(
            Event::SocketMessage {
                size: 12,
                direction: Direction::Received,
            },
            json!({"data_type": "socket_message", "size": 12}),
        );
        round_trip(
            Event::SocketMessage {
                size: 5,
                direction: Direction::Sent,
            },
            json!({"data_type": "socket_message", "size": 5, "direction": "sent"}),
        );
        round_trip(
            Event::IncrCounter {
                test: "a::b".into(),
                name: "logins".into(),
                loads_status: st(),
            },
            json!({"data_type": "incr_counter", "test": "a::b", "name": "logins",
                   "loads_status": [10, 2, 3, 1]}),
        );
    }

    #[test]
    fn envelope_flattens_and_ignores_unknown_fields() {
        let text = r#"{"data_type":"add_hit","run_id":"r1","agent_id":"a","hostname":"h",
            "url":"/x","method":"GET","status":404,"started":"2026-01-01T00:00:00Z",
            "elapsed":0.001,"loads_status":[1,1,1,1],"extra":"ignored"}"#;
        let env: Envelope = serde_json::from_str(text).expect("parse");
        assert_eq!(env.run_id, "r1");
        assert!(matches!(env.event, Event::AddHit { status: 404, .. }));
        let again: Envelope =
            serde_json::from_str(&serde_json::to_string(&env).expect("ser")).expect("de");
        assert_eq!(again, env);
    }

    #[test]
    fn batch_round_trips_through_json() {
        let mut stats = Stats::default();
        stats.record_request("GET", "http://127.0.0.1/", 200, 1500, 1_700_000_000);
        stats.record_request("GET", "http://127.0.0.1/", 500, 2500, 1_700_000_001);
        stats.incr_counter("c");
        let ev = Event::Batch(Box::new(stats));
        let text = serde_json::to_string(&ev).expect("ser");
        assert!(text.starts_with(r#"{"data_type":"batch""#), "{text}");
        let back: Event = serde_json::from_str(&text).expect("de");
        assert_eq!(back, ev);
    }

    #[test]
    fn stop_test_durations_go_to_the_test() {
        let mut stats = Stats::default();
        let stop = |elapsed| Event::StopTest {
            test: "a::b".into(),
            loads_status: st(),
            elapsed,
        };
        for e in [
            Event::StartTest {
                test: "a::b".into(),
                loads_status: st(),
            },
            Event::AddSuccess {
                test: "a::b".into(),
                loads_status: st(),
            },
            stop(Some(0.25)),
            stop(None),
            stop(Some(f64::NAN)),
            stop(Some(-1.0)),
        ] {
            e.apply_to(&mut stats, 7);
        }
        let t = &stats.tests["a::b"];
        assert_eq!((t.counts.started, t.counts.hits), (1, 1));
        assert_eq!(t.duration.len(), 1);
        assert!(
            (249_000..=251_000).contains(&t.duration.max()),
            "{}",
            t.duration.max()
        );
    }

    #[test]
    fn malformed_status_is_rejected() {
        let bad = json!({"data_type": "addSuccess", "test": "t", "loads_status": [1, 2]});
        assert!(serde_json::from_value::<Event>(bad).is_err());
        let neg = json!({"data_type": "addSuccess", "test": "t", "loads_status": [1, 2, -1, 0]});
        assert!(serde_json::from_value::<Event>(neg).is_err());
    }
}
