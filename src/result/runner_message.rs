//! What an external runner sends, read tolerantly: the protocol of docs/external-runners.md
//! plus the forms that v1 producers (the seed system's Python relay, `loads.js`) send, so that
//! nothing they report is lost. Bytes enter ([`read_runner_message`]); a [`RunnerMessage`]
//! leaves, with the run id it claims and, one by one, the [`Event`]s it carries (or why a part
//! of it was ignored or malformed).
//!
//! Only this input is lenient: the [`Event`] and [`Envelope`](super::Envelope) decoders that
//! loads' own workers, agents and brokers use stay as strict as they are. The v1 forms read here
//! (docs/external-runners.md, "v1 producers"):
//!
//! - `run_id`, `agent_id`, `hostname` may be `null` (a `null` run id is no run id);
//! - `loads_status` may be a string `"H,U,h,u"` (loads.js) or an array of decimal strings;
//! - `add_hit.started` without a time zone (Python's `datetime.utcnow().isoformat()`) is UTC;
//!   `add_hit.elapsed` may be `[seconds, microseconds]` (an early v1 encoding of a timedelta);
//! - `exc_info` in the relay's order `[type, value, traceback]` (`"<class 'AssertionError'>"`)
//!   or loads.js' `["JSError", message, ""]` is put in loads' order ([`exc_info_from_producer`]);
//! - a `batch` of v1's shape (`{"counts": {DATA_TYPE: [MESSAGE, ...]}}`) is replayed message
//!   by message; a `batch` with no field loads knows is malformed, never silently empty;
//! - an unknown `data_type` (among them v1's counter form, whose `data_type` is the counter's
//!   name) is [ignored](Item::Ignored), not malformed.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::event::{Event, ExcInfo};

/// The top-level fields of loads' own batch (`Stats`): a batch must have at least one of them
/// (or v1's `counts`).
pub const BATCH_FIELDS: [&str; 11] = [
    "tests",
    "scenarios",
    "lifecycle",
    "requests",
    "urls",
    "counters",
    "sockets",
    "problems",
    "problems_dropped",
    "timeline",
    "open",
];

/// Longest `data_type` kept when a message is ignored (the rest is cut).
const MAX_SHOWN_TYPE: usize = 60;

/// One part of a runner's message.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An event of the protocol.
    Event(Event),
    /// A message of a `data_type` loads does not know (v1's counter form among them): its type,
    /// cut to 60 characters.
    Ignored(String),
    /// A message of a v1 batch that is not an event: why.
    Malformed(String),
}

/// A well-formed message of a runner: the run it claims and what it carries.
#[derive(Debug)]
pub struct RunnerMessage {
    run_id: Option<String>,
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// One message, already read (a malformed one was refused as a whole).
    One(Item),
    /// A v1 batch: `counts`, replayed when asked.
    Counts(Map<String, Value>),
}

impl RunnerMessage {
    /// The `run_id` of the message; `None` when it is absent or `null`.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// Every part of the message, in order: one for a single message, one per message of a v1
    /// batch's `counts`.
    pub fn for_each(self, mut f: impl FnMut(Item)) {
        match self.body {
            Body::One(item) => f(item),
            Body::Counts(counts) => {
                for (data_type, messages) in counts {
                    let Value::Array(messages) = messages else {
                        f(Item::Malformed(format!(
                            "counts.{}: expected an array of messages",
                            shown(&data_type)
                        )));
                        continue;
                    };
                    for message in messages {
                        f(replayed(&data_type, message));
                    }
                }
            }
        }
    }
}

/// Reads one message of a runner. `Err` is why it is malformed: not JSON, not an object, no
/// `data_type`, a field of the wrong type, a `batch` with no known field...
pub fn read_runner_message(msg: &[u8]) -> Result<RunnerMessage, String> {
    let value: Value = serde_json::from_slice(msg).map_err(|e| e.to_string())?;
    let Value::Object(mut obj) = value else {
        return Err("not a JSON object".into());
    };
    let run_id = match obj.remove("run_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("run_id: expected a string".into()),
    };
    for field in ["agent_id", "hostname"] {
        if !matches!(obj.get(field), None | Some(Value::Null | Value::String(_))) {
            return Err(format!("{field}: expected a string"));
        }
    }
    let data_type = match obj.get("data_type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err("data_type: expected a string".into()),
        None => return Err("no data_type".into()),
    };
    if data_type == "batch"
        && let Some(counts) = obj.remove("counts")
    {
        let Value::Object(counts) = counts else {
            return Err("counts: expected an object of arrays of messages".into());
        };
        return Ok(RunnerMessage {
            run_id,
            body: Body::Counts(counts),
        });
    }
    let item = event_of(&data_type, obj)?;
    Ok(RunnerMessage {
        run_id,
        body: Body::One(item),
    })
}

/// A message of a v1 batch's `counts`, whose `data_type` is its key.
fn replayed(data_type: &str, message: Value) -> Item {
    let Value::Object(mut obj) = message else {
        return Item::Malformed(format!(
            "counts.{}: a message that is not an object",
            shown(data_type)
        ));
    };
    if data_type == "batch" {
        return Item::Malformed("counts.batch: a batch inside a batch".into());
    }
    obj.insert("data_type".into(), Value::String(data_type.to_owned()));
    event_of(data_type, obj).unwrap_or_else(Item::Malformed)
}

/// The event of one message (its `data_type` already read), in loads' forms.
fn event_of(data_type: &str, mut obj: Map<String, Value>) -> Result<Item, String> {
    if !Event::DATA_TYPES.contains(&data_type) {
        return Ok(Item::Ignored(shown(data_type)));
    }
    if data_type == "batch" && !BATCH_FIELDS.iter().any(|f| obj.contains_key(*f)) {
        return Err(format!(
            "a batch with none of the fields loads knows ({}, or v1's counts): nothing to add",
            BATCH_FIELDS.join(", ")
        ));
    }
    if let Some(status) = obj.get_mut("loads_status") {
        v1_loads_status(status);
    }
    if data_type == "add_hit" {
        if let Some(started) = obj.get_mut("started") {
            v1_started(started);
        }
        if let Some(elapsed) = obj.get_mut("elapsed") {
            v1_elapsed(elapsed);
        }
    }
    let event: Event = serde_json::from_value(Value::Object(obj)).map_err(|e| e.to_string())?;
    Ok(Item::Event(match event {
        Event::AddFailure {
            test,
            exc_info,
            loads_status,
        } => Event::AddFailure {
            test,
            exc_info: exc_info_from_producer(exc_info),
            loads_status,
        },
        Event::AddError {
            test,
            exc_info,
            loads_status,
        } => Event::AddError {
            test,
            exc_info: exc_info_from_producer(exc_info),
            loads_status,
        },
        e => e,
    }))
}

/// `"H,U,h,u"` (loads.js) and `["H", "U", "h", "u"]` (an earlier loads.js) as numbers; any
/// other value is left for the event's decoder to judge.
fn v1_loads_status(status: &mut Value) {
    let parts: Vec<&str> = match &*status {
        Value::String(s) => s.split(',').take(5).collect(),
        Value::Array(a) if a.iter().any(Value::is_string) => a
            .iter()
            .take(5)
            .map(|v| v.as_str().unwrap_or("-"))
            .collect(),
        _ => return,
    };
    let numbers: Option<Vec<Value>> = parts
        .iter()
        .map(|p| p.trim().parse::<u64>().ok().map(Value::from))
        .collect();
    if let Some(numbers) = numbers.filter(|n| n.len() == 4) {
        *status = Value::Array(numbers);
    }
}

/// A `started` without a time zone (`2014-01-01T12:00:00.123456`, what v1's relay sends from
/// `datetime.utcnow()`; a space instead of the `T` too) as the same time in UTC.
fn v1_started(started: &mut Value) {
    let Value::String(s) = &*started else {
        return;
    };
    if DateTime::parse_from_rfc3339(s).is_ok() {
        return;
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"));
    if let Ok(naive) = naive {
        let utc: DateTime<Utc> = naive.and_utc();
        *started = Value::String(utc.to_rfc3339());
    }
}

/// `[seconds, microseconds]` (an early v1 encoding of a `timedelta`) as seconds.
fn v1_elapsed(elapsed: &mut Value) {
    if let Value::Array(a) = &*elapsed
        && let [Value::Number(s), Value::Number(us)] = a.as_slice()
        && let (Some(s), Some(us)) = (s.as_f64(), us.as_f64())
    {
        *elapsed = serde_json::Number::from_f64(s + us / 1e6).map_or(Value::Null, Value::Number);
    }
}

/// `exc_info` in loads' order, `[message, kind, traceback]`, whichever order its producer used.
/// Decided by shape, on the first two elements `a` and `b`:
///
/// 1. `a` is a Python type's text, `<class 'NAME'>` or `<type 'NAME'>` (v1's relay sends
///    `[str(type), str(value), traceback]`): the kind is NAME (without Python 2's
///    `exceptions.`), the message is `b`.
/// 2. `a` is `JSError` (loads.js sends `["JSError", JSON.stringify(err), ""]`): the kind is
///    `JSError`, the message `b`, without its JSON quotes when it is a JSON string.
/// 3. `a` is a type name (identifiers joined by `.` or `::`) and `b` is not (free text such as
///    `404 != 200`), or both are type names and only `a` ends with `Error` or `Exception`
///    (`["AssertionError", "False", ""]`): the kind is `a`, the message `b`.
/// 4. Otherwise the document's order: `a` is the message and `b` the kind (a kind written
///    `<class 'NAME'>` is read as NAME).
pub fn exc_info_from_producer(e: ExcInfo) -> ExcInfo {
    let ExcInfo(a, b, traceback) = e;
    if let Some(kind) = python_type(&a) {
        return ExcInfo(b, kind, traceback);
    }
    if a == "JSError" {
        let message = match serde_json::from_str::<String>(&b) {
            Ok(unquoted) if b.starts_with('"') => unquoted,
            _ => b,
        };
        return ExcInfo(message, a, traceback);
    }
    let type_first = match (is_type_name(&a), is_type_name(&b)) {
        (true, false) => true,
        (true, true) => is_exception_name(&a) && !is_exception_name(&b),
        _ => false,
    };
    if type_first {
        return ExcInfo(b, a, traceback);
    }
    match python_type(&b) {
        Some(kind) => ExcInfo(a, kind, traceback),
        None => ExcInfo(a, b, traceback),
    }
}

/// NAME of `<class 'NAME'>` or `<type 'NAME'>` (Python 2's builtins without `exceptions.`).
fn python_type(s: &str) -> Option<String> {
    let inner = s
        .strip_prefix("<class '")
        .or_else(|| s.strip_prefix("<type '"))?
        .strip_suffix("'>")?;
    let inner = inner.strip_prefix("exceptions.").unwrap_or(inner);
    is_type_name(inner).then(|| inner.to_owned())
}

/// Identifiers joined by `.` or `::`: `AssertionError`, `requests.exceptions.ConnectionError`,
/// `std::io::Error`.
fn is_type_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.split("::").all(|part| {
            part.split('.').all(|id| {
                let mut chars = id.chars();
                chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
            })
        })
}

/// A type name that says it is an exception: its last part ends with `Error` or `Exception`.
fn is_exception_name(s: &str) -> bool {
    let last = s.rsplit(['.', ':']).next().unwrap_or(s);
    last.len() > 5 && (last.ends_with("Error") || last.ends_with("Exception"))
}

/// `data_type` as shown in counts and logs: at most [`MAX_SHOWN_TYPE`] characters.
fn shown(data_type: &str) -> String {
    data_type.chars().take(MAX_SHOWN_TYPE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{LoadsStatus, Stats};
    use serde_json::json;

    fn items(msg: &Value) -> (Option<String>, Vec<Item>) {
        let m = read_runner_message(msg.to_string().as_bytes()).expect("well-formed");
        let run = m.run_id().map(str::to_owned);
        let mut out = Vec::new();
        m.for_each(|i| out.push(i));
        (run, out)
    }

    fn one(msg: Value) -> Event {
        match items(&msg).1.as_slice() {
            [Item::Event(e)] => e.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn exc(a: &str, b: &str, c: &str) -> (String, String, String) {
        let e = exc_info_from_producer(ExcInfo(a.into(), b.into(), c.into()));
        (e.0, e.1, e.2)
    }

    fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    #[test]
    fn started_without_a_time_zone_is_utc() {
        let e = one(
            json!({"data_type": "add_hit", "run_id": "r", "agent_id": null,
            "url": "http://x/", "method": "GET", "status": 200,
            "started": "2026-11-26T05:00:00.250000", "elapsed": 0.25,
            "loads_status": [1, 1, 1, 1]}),
        );
        let Event::AddHit { started, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(started.timestamp_millis(), 1_795_669_200_250);
        for (text, millis) in [
            ("2026-11-26 05:00:00", 1_795_669_200_000),
            ("2026-11-26T05:00:00", 1_795_669_200_000),
            ("2026-11-26T06:00:00+01:00", 1_795_669_200_000),
            ("2026-11-26T05:00:00.5Z", 1_795_669_200_500),
        ] {
            let e = one(json!({"data_type": "add_hit", "run_id": "r", "url": "u",
                "method": "GET", "status": 200, "started": text, "elapsed": [0, 1500],
                "loads_status": [1, 1, 1, 1]}));
            let Event::AddHit {
                started, elapsed, ..
            } = e
            else {
                panic!("{e:?}")
            };
            assert_eq!(started.timestamp_millis(), millis, "{text}");
            assert!((elapsed - 0.0015).abs() < 1e-9, "{elapsed}");
        }
        // Not a date at all: still malformed.
        let bad = json!({"data_type": "add_hit", "run_id": "r", "url": "u", "method": "GET",
            "status": 200, "started": "2026-13-40T99:00:00", "elapsed": 0.1,
            "loads_status": [1, 1, 1, 1]});
        assert!(read_runner_message(bad.to_string().as_bytes()).is_err());
    }

    #[test]
    fn exc_info_in_every_producer_order() {
        // The document's order (and loads' own events): unchanged.
        assert_eq!(
            exc("404 != 200", "AssertionError", "tb"),
            s("404 != 200", "AssertionError", "tb")
        );
        assert_eq!(
            exc("boom", "ensure", "x.rs:1"),
            s("boom", "ensure", "x.rs:1")
        );
        assert_eq!(
            exc("io", "std::io::Error", ""),
            s("io", "std::io::Error", "")
        );
        assert_eq!(
            exc("timeout", "TimeoutError", ""),
            s("timeout", "TimeoutError", "")
        );
        assert_eq!(
            exc("Connection refused", "<class 'ConnectionRefusedError'>", ""),
            s("Connection refused", "ConnectionRefusedError", "")
        );
        // v1's relay: [str(type), str(value), traceback], Python 3 and Python 2.
        assert_eq!(
            exc("<class 'AssertionError'>", "404 != 200", "  File \"t.py\""),
            s("404 != 200", "AssertionError", "  File \"t.py\"")
        );
        assert_eq!(
            exc("<type 'exceptions.ValueError'>", "invalid literal", ""),
            s("invalid literal", "ValueError", "")
        );
        assert_eq!(
            exc(
                "<class 'requests.exceptions.ConnectionError'>",
                "refused",
                ""
            ),
            s("refused", "requests.exceptions.ConnectionError", "")
        );
        // A value that looks like a type name still is the message.
        assert_eq!(
            exc("<class 'AssertionError'>", "False", ""),
            s("False", "AssertionError", "")
        );
        // loads.js: ["JSError", JSON.stringify(err), ""].
        assert_eq!(
            exc("JSError", "\"status 404\"", ""),
            s("status 404", "JSError", "")
        );
        assert_eq!(exc("JSError", "{}", ""), s("{}", "JSError", ""));
        assert_eq!(exc("JSError", "x", ""), s("x", "JSError", ""));
        // A type name first, free text second.
        assert_eq!(
            exc("AssertionError", "404 != 200", ""),
            s("404 != 200", "AssertionError", "")
        );
        assert_eq!(
            exc("AssertionError", "False", ""),
            s("False", "AssertionError", "")
        );
    }

    #[test]
    fn loads_status_of_loads_js_and_null_ids() {
        let e = one(
            json!({"data_type": "addSuccess", "run_id": "r", "agent_id": null,
            "hostname": null, "test": "t", "loads_status": "5,2,3,1"}),
        );
        let st = LoadsStatus {
            hits: 5,
            users: 2,
            current_hit: 3,
            current_user: 1,
        };
        assert_eq!(
            e,
            Event::AddSuccess {
                test: "t".into(),
                loads_status: st
            }
        );
        let e = one(
            json!({"data_type": "addSuccess", "run_id": "r", "test": "t",
            "loads_status": ["5", "2", "3", "1"]}),
        );
        assert!(matches!(e, Event::AddSuccess { loads_status, .. } if loads_status == st));
        let (run, _) = items(&json!({"data_type": "socket_open", "run_id": null}));
        assert_eq!(run, None);
        for bad in [
            json!({"data_type": "addSuccess", "test": "t", "loads_status": "x"}),
            json!({"data_type": "addSuccess", "test": "t", "loads_status": "1,2,3"}),
            json!({"data_type": "addSuccess", "test": "t", "loads_status": "1,2,3,-4"}),
            json!({"data_type": "addSuccess", "test": 5, "loads_status": [1, 1, 1, 1]}),
            json!({"data_type": "socket_open", "run_id": 5}),
            json!({"data_type": "socket_open", "agent_id": 5}),
            json!({"data_type": 5}),
            json!({"run_id": "r"}),
            json!([1, 2]),
        ] {
            assert!(
                read_runner_message(bad.to_string().as_bytes()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_types_and_v1_counters_are_ignored() {
        let (_, got) = items(&json!({"data_type": "logins", "run_id": "r", "test": "t",
            "loads_status": [1, 1, 1, 1], "agent_id": "None"}));
        assert_eq!(got, vec![Item::Ignored("logins".into())]);
        let long = "x".repeat(500);
        let (_, got) = items(&json!({"data_type": long, "run_id": "r"}));
        assert_eq!(got, vec![Item::Ignored("x".repeat(60))]);
    }

    #[test]
    fn v1_batches_are_replayed_and_empty_ones_are_malformed() {
        let st = json!([2, 1, 1, 1]);
        let msg = json!({"data_type": "batch", "run_id": "r", "agent_id": null, "counts": {
            "startTest": [{"test": "t", "loads_status": st}],
            "add_hit": [{"url": "http://x/", "method": "GET", "status": 200,
                         "started": "2026-11-26T05:00:00.250000", "elapsed": 0.25,
                         "loads_status": st}],
            "addFailure": [{"test": "t", "loads_status": st,
                            "exc_info": ["<class 'AssertionError'>", "no", ""]}],
            "logins": [{"test": "t", "loads_status": st}],
            "addSuccess": [{"test": 5}],
            "batch": [{"tests": {}}],
            "stopTest": "nope",
        }});
        let (run, got) = items(&msg);
        assert_eq!(run.as_deref(), Some("r"));
        let mut stats = Stats::default();
        let (mut events, mut ignored, mut malformed) = (0, 0, 0);
        for i in got {
            match i {
                Item::Event(e) => {
                    events += 1;
                    e.apply_to(&mut stats, 7);
                }
                Item::Ignored(_) => ignored += 1,
                Item::Malformed(_) => malformed += 1,
            }
        }
        assert_eq!((events, ignored, malformed), (3, 1, 3));
        assert_eq!(stats.tests["t"].counts.started, 1);
        assert_eq!(stats.tests["t"].counts.failures, 1);
        assert_eq!(stats.requests.count, 1);
        assert_eq!(stats.problems[0].kind, "AssertionError");
        assert!(stats.timeline.contains_key(&1_795_669_200));

        for bad in [
            json!({"data_type": "batch", "run_id": "r"}),
            json!({"data_type": "batch", "run_id": "r", "stats": {}}),
            json!({"data_type": "batch", "run_id": "r", "counts": []}),
        ] {
            assert!(
                read_runner_message(bad.to_string().as_bytes()).is_err(),
                "{bad}"
            );
        }
        // loads' own batch still reads.
        let e = one(json!({"data_type": "batch", "run_id": "r", "counters": {"c": 2}}));
        assert!(matches!(e, Event::Batch(b) if b.counters["c"] == 2));
    }

    #[test]
    fn counts_at_their_maximum_saturate_instead_of_panicking() {
        // A runner's batch may claim any count; the single events that follow it must not
        // overflow them (a panic of the receiver thread ended the run).
        const MAX: u64 = u64::MAX;
        let now = 1_795_669_200;
        let empty = serde_json::to_value(crate::result::stats::RequestStats::default())
            .expect("ser")["latency"]
            .clone();
        let batch = json!({"data_type": "batch", "run_id": "r",
            "tests": {"t": {"started": MAX, "hits": MAX, "successes": MAX, "failures": MAX,
                            "errors": MAX}},
            "requests": {"count": MAX, "statuses": {"200": MAX, "201": MAX, "0": MAX, "500": MAX},
                         "latency": empty},
            "urls": {"http://x/": {"GET": {"count": MAX, "statuses": {"200": MAX},
                                           "latency": empty}}},
            "counters": {"c": MAX},
            "sockets": {"opened": MAX, "closed": MAX, "messages_received": MAX,
                        "bytes_received": MAX, "messages_sent": MAX, "bytes_sent": MAX},
            "timeline": {now.to_string(): {"hits": MAX, "successes": MAX, "failures": MAX,
                          "errors": MAX, "requests": MAX, "socket_messages": MAX,
                          "users": MAX}}});
        let st = json!([1, 1, 1, 1]);
        let mut stats = Stats::default();
        one(batch).apply_to(&mut stats, now);
        for msg in [
            json!({"data_type": "startTest", "test": "t", "loads_status": st}),
            json!({"data_type": "addSuccess", "test": "t", "loads_status": st}),
            json!({"data_type": "addFailure", "test": "t", "loads_status": st,
                   "exc_info": ["no", "AssertionError", ""]}),
            json!({"data_type": "addError", "test": "t", "loads_status": st,
                   "exc_info": ["boom", "ValueError", ""]}),
            json!({"data_type": "add_hit", "url": "http://x/", "method": "GET", "status": 200,
                   "started": "2026-11-26T05:00:00", "elapsed": 0.1, "loads_status": st}),
            json!({"data_type": "incr_counter", "test": "t", "name": "c", "loads_status": st}),
            json!({"data_type": "socket_open"}),
            json!({"data_type": "socket_close"}),
            json!({"data_type": "socket_message", "size": 1}),
            json!({"data_type": "socket_message", "size": 1, "direction": "sent"}),
        ] {
            let mut msg = msg;
            msg["run_id"] = json!("r");
            one(msg).apply_to(&mut stats, now);
        }
        let t = &stats.tests["t"].counts;
        assert_eq!(
            (t.started, t.hits, t.successes, t.failures, t.errors),
            (MAX, MAX, MAX, MAX, MAX)
        );
        assert_eq!(stats.requests.count, MAX);
        assert_eq!(stats.requests.statuses[&200], MAX);
        assert_eq!(stats.requests.successes(), MAX);
        assert_eq!(stats.requests.http_errors(), MAX);
        assert_eq!(stats.urls["http://x/"]["GET"].count, MAX);
        assert_eq!(stats.counters["c"], MAX);
        let s = &stats.sockets;
        assert_eq!((s.opened, s.closed), (MAX, MAX));
        assert_eq!((s.messages_received, s.messages_sent), (MAX, MAX));
        let second = &stats.timeline[&now];
        assert_eq!(
            (
                second.hits,
                second.successes,
                second.failures,
                second.errors
            ),
            (MAX, MAX, MAX, MAX)
        );
        assert_eq!((second.requests, second.socket_messages), (MAX, MAX));
    }

    #[test]
    fn batch_fields_are_the_fields_of_stats() {
        let stats = Stats {
            open: Some(Box::default()),
            ..Stats::default()
        };
        let Value::Object(fields) = serde_json::to_value(&stats).expect("ser") else {
            panic!("not an object")
        };
        for f in fields.keys() {
            assert!(BATCH_FIELDS.contains(&f.as_str()), "{f}");
        }
        for f in ["scenarios", "lifecycle"] {
            assert!(BATCH_FIELDS.contains(&f));
        }
    }
}
