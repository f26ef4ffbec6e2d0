//! The collector's delivery, shared by local and external runs: what a collector does with the
//! events it gathered in one period. A local run's collector thread (which drains the recorder)
//! and an external run's receiver (which merges its runner processes' messages) both hand their
//! batch to [`deliver`], which samples the active users once per second passed, gives the batch
//! to the run's [`EventSink`] and ticks it; what leaves is whether the sink asks the run to stop.

use std::time::Duration;

use crate::result::{Event, EventSink, Stats, unix_now};

/// How often the collector drains the recorder.
pub(crate) const COLLECT_EVERY: Duration = Duration::from_millis(200);

/// Hands a collected `batch` to `sink` with the active `users` sampled once for every second
/// that has fully passed since `sampled_until` (and, when `finished`, for the last partial
/// second), then ticks the sink; returns whether the sink asks the run to stop. Every collector
/// (native and external runs) delivers this way.
pub(crate) fn deliver<S: EventSink>(
    sink: &mut S,
    mut batch: Stats,
    users: u64,
    sampled_until: &mut i64,
    finished: bool,
) -> bool {
    let now = unix_now();
    let upto = if finished { now } else { now - 1 };
    while *sampled_until < upto {
        *sampled_until += 1;
        batch.sample_users(*sampled_until, users);
    }
    if !batch.is_empty() {
        sink.ingest(Event::Batch(Box::new(batch)));
    }
    sink.tick(users);
    sink.should_stop()
}
