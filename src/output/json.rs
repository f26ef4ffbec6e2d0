//! The `json` output: the run's [`Summary`] as one pretty-printed JSON document, written when
//! the run ends. `--baseline` reads it back.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;

use super::write_error;
use crate::result::{Observer, OutputError, TestResult};

/// Writes the JSON summary.
pub struct JsonOutput {
    file: Option<File>,
    path: PathBuf,
}

impl JsonOutput {
    /// An output writing to `file`, opened at `path`.
    pub fn new(file: File, path: PathBuf) -> Self {
        JsonOutput {
            file: Some(file),
            path,
        }
    }
}

impl Observer for JsonOutput {
    fn on_finish(&mut self, result: &TestResult) -> Result<(), OutputError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &result.summary())
            .map_err(|e| write_error("json", &self.path, e))?;
        writeln!(w)
            .and_then(|_| w.flush())
            .map_err(|e| write_error("json", &self.path, e))
    }
}
