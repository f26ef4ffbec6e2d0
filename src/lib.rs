//! # loads
//!
//! A load-testing framework and tool for HTTP and WebSocket services. Tests are written like
//! unit tests — async methods of a suite, marked with [`macro@suite`] — and also run under
//! `cargo test`. A runner executes them with many concurrent virtual users; every request,
//! WebSocket message, outcome and custom counter flows as an event into a test result that keeps
//! the statistics and feeds the outputs.
//!
//! ```no_run
//! use loads::prelude::*;
//!
//! /// Per-virtual-user state: created once per user, kept across that user's hits.
//! #[derive(Default)]
//! struct Blog { visits: u32 }
//!
//! #[loads::suite]
//! impl Blog {
//!     /// Reads the home page.
//!     async fn home(&mut self, t: &mut TestCase) -> Outcome {
//!         let res = t.app.get("/").send().await?;
//!         ensure_eq!(res.status(), 200);
//!         self.visits += 1;
//!         t.incr_counter("home-visits");
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode { loads::main() }
//! ```
//!
//! Modules, bottom floor first (each imports only those before it; `tests/layers.rs` keeps it
//! so): [`config`] (run arguments, load plan, units, signals), [`result`] (events, statistics,
//! the test result), [`measure`] (instrumented HTTP and WebSocket clients), [`case`] (what a test
//! sees), [`output`] (reports), [`notify`] (end-of-run notifiers), [`db`] (the broker's SQLite
//! storage), [`transport`] (the cluster over ZeroMQ: broker, agent, relay), [`runner`]
//! (execution: local, distributed, worker, external), [`cli`] (the command line),
//! [`functional`] (running tests under `cargo test`); [`demo`] (the embedded target server)
//! stands apart.

#![warn(missing_docs)]

extern crate self as loads;

/// mimalloc as the global allocator of every binary built on loads (the default `mimalloc`
/// feature): a hit allocates a few short-lived objects of a few hundred bytes to a few KiB, where
/// glibc's allocator leaves its fast path. Measured: 13.4k → 12.5k user-space instructions per
/// request. Build with `default-features = false` to keep your own allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod case;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod functional;
pub mod measure;
pub mod notify;
pub mod output;
pub mod result;
pub mod runner;
pub mod transport;

pub use case::{Outcome, Suite, TestCase, TestError};
pub use cli::main;
/// Marks an `impl` block as a suite: its `async fn(&mut self, t: &mut TestCase) -> Outcome`
/// methods are tests, `setup` and `teardown` run around each hit. Options:
/// `#[loads::suite(name = "blog", server = path::to::fn)]` — the suite's name (default: the
/// type's name in snake case) and a `fn() -> String` giving the server URL for `cargo test`
/// (`LOADS_SERVER_URL` overrides it).
pub use loads_macros::suite;

/// What the `#[loads::suite]` attribute's expansion names (not an API: it may change with any
/// release).
#[doc(hidden)]
pub mod __private {
    pub use crate::case::{BoxFuture, SuiteEntry, TestInfo};
    pub use crate::functional::{Expect, run_test};
    pub use inventory;
}

/// What a test file needs: `use loads::prelude::*;`.
pub mod prelude {
    pub use crate::case::{Outcome, TestCase, TestError};
    pub use crate::measure::{Message, StatusCode};
    pub use crate::{ensure, ensure_eq, ensure_ne, fail};
    pub use serde_json::json;
}
