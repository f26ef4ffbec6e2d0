//! The `file` output: every event the test result takes, as one JSON line (the wire form of
//! [`Event`](crate::result::Event), with `data_type`), streamed to disk as it happens through a
//! buffered writer flushed on every tick, so its memory stays bounded however long the run.
//! In a batched run the events are the per-second `batch` summaries; with `--raw-events`, every
//! request and outcome.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;

use super::write_error;
use crate::result::{Event, Observer, OutputError, TestResult};

/// Streams events to a JSON-lines file.
pub struct FileOutput {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    error: Option<String>,
}

impl FileOutput {
    /// An output writing to `file`, opened at `path`.
    pub fn new(file: File, path: PathBuf) -> Self {
        FileOutput {
            out: Some(BufWriter::with_capacity(64 * 1024, file)),
            path,
            error: None,
        }
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        // Keep the first error for the end of the run; stop writing.
        if self.error.is_none() {
            self.error = Some(e.to_string());
        }
        self.out = None;
    }
}

impl Observer for FileOutput {
    fn on_event(&mut self, event: &Event, _: &TestResult) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let r = serde_json::to_writer(&mut *out, event)
            .map_err(|e| e.to_string())
            .and_then(|_| out.write_all(b"\n").map_err(|e| e.to_string()));
        if let Err(e) = r {
            self.fail(e);
        }
    }

    fn on_tick(&mut self, _: &TestResult) {
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.flush()
        {
            self.fail(e);
        }
    }

    fn on_finish(&mut self, _: &TestResult) -> Result<(), OutputError> {
        if let Some(mut out) = self.out.take()
            && let Err(e) = out.flush()
        {
            self.fail(e);
        }
        match &self.error {
            Some(e) => Err(write_error("file", &self.path, e)),
            None => Ok(()),
        }
    }
}
