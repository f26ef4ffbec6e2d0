//! The collector, shared by local and external runs: the loop that turns what a run's sources
//! produce into batches for the run's [`EventSink`]. A local run's collector thread drains the
//! recorder's shards; an external run's receiver reads its runner processes' messages. Each
//! gives [`collect`] a `gather` step that adds what arrived to the period's batch (or hands raw
//! events to the sink) and says whether the period is due and whether the run is finished;
//! [`collect`] samples the active users once per second passed, hands the batch to the sink,
//! ticks it, and calls `on_stop` once when the sink asks the run to stop
//! (`--abort-on-threshold`). Events leave into the sink between `StartTestRun` and
//! `StopTestRun`.

use std::time::Duration;

use crate::result::{Event, EventSink, Stats, unix_now};

/// How often the collector drains the recorder: once a second, as the per-second timeline,
/// the live line and the dashboard need (a drain merges and resets every shard's histograms,
/// a cost per drain, not per request: five a second cost loads about 600 instructions per
/// request under callgrind, at the rate valgrind lets through). The last batch is drained at
/// once when the users are done.
pub(crate) const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// What one `gather` step of a collector says.
pub(crate) struct Turn {
    /// Virtual users active (in a local run's open model, the most hits in flight at once since
    /// the last step), what the timeline and the live line show.
    pub(crate) users: u64,
    /// The period is over: hand the batch to the sink now.
    pub(crate) due: bool,
    /// The run is over (this step gathered its last events).
    pub(crate) finished: bool,
}

/// Runs a collector: `gather` until it says the run is finished, delivering a batch each
/// period (see the module doc). `on_stop` is called once, when the sink first asks to stop.
pub(crate) fn collect<S: EventSink>(
    sink: &mut S,
    mut gather: impl FnMut(&mut S, &mut Stats) -> Turn,
    mut on_stop: impl FnMut(),
) {
    sink.ingest(Event::StartTestRun);
    let mut sampled_until = unix_now() - 1;
    let mut batch = Stats::default();
    let mut stopped = false;
    loop {
        let turn = gather(sink, &mut batch);
        if turn.due || turn.finished {
            let batch = std::mem::take(&mut batch);
            let stop = deliver(sink, batch, turn.users, &mut sampled_until, turn.finished);
            if stop && !stopped {
                stopped = true;
                on_stop();
            }
        }
        if turn.finished {
            break;
        }
    }
    sink.ingest(Event::StopTestRun);
}

/// Hands a collected `batch` to `sink` with the active `users` sampled once for every second
/// that has fully passed since `sampled_until` (and, when `finished`, for the last partial
/// second), then ticks the sink; returns whether the sink asks the run to stop.
fn deliver<S: EventSink>(
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
