//! The collector thread of a local run: drains the recorder's shards into batches every
//! collect period until the virtual users are done, and hands them to the run's sink through
//! the collector's delivery shared with external runs ([`deliver`]). Events enter from the
//! recorder; they leave into the [`EventSink`], which may ask the run to stop
//! (`--abort-on-threshold`).

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use super::Control;
use crate::result::{Event, EventSink, Recorder, Stats, unix_now};
use crate::runner::collector::deliver;

/// The collector thread: drains the recorder into batches until the users are done.
pub(super) fn collect<S: EventSink>(
    mut sink: S,
    recorder: &Recorder,
    control: &Control,
    done: &mpsc::Receiver<()>,
    every: Duration,
) -> S {
    sink.ingest(Event::StartTestRun);
    let mut sampled_until = unix_now() - 1;
    loop {
        let finished = !matches!(
            done.recv_timeout(every),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let users = control.active_users.load(Ordering::Relaxed);
        recorder.drain_raw(|e| sink.ingest(e));
        let mut batch = Stats::default();
        recorder.drain_into(&mut batch);
        let stop = deliver(&mut sink, batch, users, &mut sampled_until, finished);
        if stop && !control.stopping.swap(true, Ordering::SeqCst) {
            // --abort-on-threshold: stop the users as Ctrl-C would, but the run is not
            // "interrupted": the test result says why it stopped.
            control.cancel.cancel();
        }
        if finished {
            break;
        }
    }
    sink.ingest(Event::StopTestRun);
    sink
}
