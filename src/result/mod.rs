//! Results: the event model, the mergeable statistics, per-worker recording and the
//! [`TestResult`] collector that notifies its [`Observer`]s.
//!
//! Data flow: virtual users record into a [`Recorder`]; the runner's collector drains it into
//! [`Event::Batch`] events and hands every event to an [`EventSink`] — the [`TestResult`] in a
//! local run (which aggregates and notifies the outputs), a relay in a worker. Events from
//! external programs enter the same way, one by one, read tolerantly by `runner_message`.

pub mod event;
pub mod latency;
pub mod per_test;
pub mod recorder;
pub mod runner_message;
pub mod stats;
pub mod summary;
mod test_result;
pub mod threshold;
pub mod timeline;

pub use event::{Direction, Envelope, Event, ExcInfo, LoadsStatus};
pub use per_test::{Hit, HitOutcome, TestStats};
pub use recorder::{Recorder, UserRecorder, unix_now, unix_second_at};
pub use runner_message::{Item, read_runner_message};
pub use stats::{Latency, ProblemKind, RequestStats, Stats};
pub use summary::Summary;
pub use test_result::{EventSink, MAX_CHANGES, Observer, OutputError, RunMeta, TestResult};
