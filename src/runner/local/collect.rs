//! The collector thread of a local run: drains the recorder's shards into a batch every
//! collect period until the virtual users are done, through the collector shared with external
//! runs ([`collect`](crate::runner::collector::collect)). Events enter from the recorder; they
//! leave into the [`EventSink`], which may ask the run to stop (`--abort-on-threshold`).

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use super::Control;
use crate::result::{EventSink, Recorder};
use crate::runner::collector::{Turn, collect};

/// The collector thread: drains the recorder into batches until the users are done.
pub(super) fn collect_local<S: EventSink>(
    mut sink: S,
    recorder: &Recorder,
    control: &Control,
    done: &mpsc::Receiver<()>,
    every: Duration,
) -> S {
    collect(
        &mut sink,
        |sink, batch| {
            let finished = !matches!(
                done.recv_timeout(every),
                Err(mpsc::RecvTimeoutError::Timeout)
            );
            // In the open model, the most hits in flight at once in the period: a sample at
            // this instant often finds none busy between two arrivals.
            let users = control.active_users.take();
            // The last turn: a change from now on would be neither made nor recorded.
            let changes = if finished {
                control.load.close()
            } else {
                control.load.take_changes()
            };
            for change in changes {
                sink.load_changed(change);
            }
            recorder.drain_raw(|e| sink.ingest(e));
            recorder.drain_into(batch);
            Turn {
                users,
                due: true,
                finished,
            }
        },
        || {
            // --abort-on-threshold: stop the users as Ctrl-C would, but the run is not
            // "interrupted": the test result says why it stopped.
            if !control.stopping.swap(true, Ordering::SeqCst) {
                control.cancel.cancel();
            }
        },
    );
    sink
}
