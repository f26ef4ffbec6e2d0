//! Outputs: observers of the [`TestResult`](crate::result::TestResult) that report a run. Each is
//! chosen by name with `--output NAME`; [`create`] builds one from its name and the run's
//! arguments. Outputs only read the test result, so they work the same for every runner.

mod format;
mod stdout;

pub use format::{format_bytes, format_micros, render_summary};
pub use stdout::StdoutOutput;

use crate::result::Observer;
use crate::runner::{RunArgs, RunError};

/// The outputs this build knows, with a line of help each.
pub const OUTPUTS: &[(&str, &str)] = &[
    (
        "stdout",
        "live progress on the terminal and a summary at the end (the default)",
    ),
    (
        "null",
        "nothing: for runs whose results are read another way",
    ),
];

/// Builds the output called `name` for a run with `args`.
pub fn create(name: &str, args: &RunArgs) -> Result<Box<dyn Observer>, RunError> {
    let _ = args;
    match name {
        "stdout" => Ok(Box::new(StdoutOutput::new())),
        "null" => Ok(Box::new(NullOutput)),
        other => Err(RunError::Usage(format!(
            "unknown output {other:?}; available outputs: {}",
            OUTPUTS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The `null` output: reports nothing.
pub struct NullOutput;

impl Observer for NullOutput {
    fn name(&self) -> &str {
        "null"
    }
}
