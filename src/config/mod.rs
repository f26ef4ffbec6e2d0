//! The run's configuration, at the bottom of the layout (README, "How it is built"): what a run is
//! asked to do, before anything runs. It imports nothing of the crate, and every other floor may
//! import it.
//!
//! - [`args`]: [`RunArgs`], the serialisable arguments of a run (the object that travels to
//!   agents), and the run id;
//! - [`plan`]: the load plan those arguments describe (cycles, stages, an arrival rate);
//! - [`units`]: durations as options take them, microseconds and bytes as reports print them;
//! - [`signals`]: the process's one handler of SIGINT and SIGTERM.
//!
//! Data enters as option values (text, numbers) and leaves as checked values ([`Plan`],
//! `Duration`s) or as a [`UsageError`] that names what to fix.

pub mod args;
pub mod plan;
pub mod signals;
pub mod units;

pub use args::{
    DEFAULT_REQUEST_TIMEOUT, MAX_THREADS, OutputOptions, RunArgs, new_run_id, share_of,
};
pub use plan::Plan;

/// A bad option value or combination: the message names the option and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
