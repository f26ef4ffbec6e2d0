//! The broker's writes to its database: the pending events of the loop turn and the rows of
//! their runs, stored together in one transaction, kept and retried while the database fails
//! (bounded by [`MAX_PENDING_BYTES`](super::MAX_PENDING_BYTES)).

use super::*;

impl Broker {
    /// Stores the pending events and, in the same transaction, the rows of the runs they
    /// belong to (so that a stored row always agrees with its stored events), and the rows of
    /// ended runs the database did not take before. When the database fails, everything is
    /// kept and tried again [`STORE_RETRY`] later (`force`: now).
    pub(super) fn flush(&mut self, force: bool) {
        let retry_rows = !self.unsaved_rows.is_empty();
        if self.pending.is_empty() && !retry_rows {
            return;
        }
        if !force && self.store_failed.is_some_and(|t| t.elapsed() < STORE_RETRY) {
            return;
        }
        let mut rows: Vec<RunRow> = self.unsaved_rows.values().cloned().collect();
        for run in self.runs.values_mut().filter(|r| r.dirty) {
            run.row.hits = run.stats.totals().hits;
            // Its hits count every event received; those that were not kept for storing are
            // counted beside them, so that the row says how many its stored events lack.
            run.row.unstored = run.unstored;
            if run.going {
                run.row.duration = Some(run.started.elapsed().as_secs_f64());
            }
            rows.push(run.row.clone());
        }
        match self.db.store(&self.pending, &rows) {
            Ok(()) => {
                if self.store_failed.take().is_some() {
                    match self.pending.len() {
                        0 => eprintln!("broker: the database takes writes again"),
                        n => eprintln!(
                            "broker: the database takes writes again ({n} events kept while it failed are stored)"
                        ),
                    }
                }
                self.pending.clear();
                self.pending_bytes = 0;
                self.unsaved_rows.clear();
                for run in self.runs.values_mut() {
                    run.dirty = false;
                }
            }
            Err(e) => {
                if self.store_failed.is_none() {
                    eprintln!(
                        "broker: cannot store events: {e}; they are kept in memory (at most {} MiB) and tried again every {}s",
                        MAX_PENDING_BYTES >> 20,
                        STORE_RETRY.as_secs()
                    );
                }
                self.store_failed = Some(Instant::now());
            }
        }
    }
}
