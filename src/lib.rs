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
//! The public surface is what a test needs: [`macro@suite`], [`TestCase`], [`Outcome`] and
//! [`TestError`] (with the [`prelude`]'s assertion macros), the instrumented clients in
//! [`measure`] ([`Session`](measure::Session), [`Response`](measure::Response),
//! [`WebSocket`](measure::WebSocket)...), the run's arguments in [`config`] (what
//! [`TestCase::config`] returns), the embedded [`demo`] server to try tests against, and
//! [`main`] for a binary of one's own. The rest — the test result and its outputs, the runners,
//! the cluster, the command line — is the crate's own; the README's "How it is built" maps it.

#![warn(missing_docs)]

extern crate self as loads;

#[cfg(feature = "mimalloc")]
pub mod alloc;

/// mimalloc as the global allocator of every binary built on loads (the default `mimalloc`
/// feature): a hit allocates a few short-lived objects of a few hundred bytes to a few KiB, where
/// glibc's allocator leaves its fast path. Measured: 13.4k → 12.5k user-space instructions per
/// request. Build with `default-features = false` to keep your own allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: alloc::Allocator = alloc::Allocator;

mod case;
mod cli;
pub mod config;
mod data;
mod db;
pub mod demo;
mod functional;
pub mod measure;
mod notify;
mod output;
mod result;
mod runner;
mod transport;
mod web;

pub use case::{Outcome, Suite, TestCase, TestError};
pub use cli::main;
/// Test data: a row of a data source ([`TestCase::data`]) and why a test got none.
pub use data::{DataError, Row};
/// Marks an `impl` block as a suite: its `async fn(&mut self, t: &mut TestCase) -> Outcome`
/// methods are tests, `setup` and `teardown` run around each hit, `on_start` and `on_stop` once
/// per virtual user (when it starts, when it ends); `#[loads(weight = N)]` on a
/// test sets its weight when the whole suite runs as a mix (`loads run SUITE`). Options:
/// `#[loads::suite(name = "blog", server_url = "http://127.0.0.1:8080", server = path::to::fn,
/// data = "accounts=FILE")]` — the suite's name (default: the type's name in snake case), its
/// default server URL (for runs without `--server-url`, and for `cargo test`), a `fn() -> String`
/// giving the server URL for `cargo test` only (it wins over `server_url` there), and test data
/// for `cargo test`; `LOADS_SERVER_URL` overrides both under `cargo test`.
pub use loads_macros::suite;
/// A hit's status as a test sees it ([`TestCase::status`]).
pub use result::LoadsStatus;

/// What the `#[loads::suite]` attribute's expansion names, and what the project's own
/// integration tests and fuzz targets reach inside the crate (not an API: it may change with
/// any release).
#[doc(hidden)]
pub mod __private {
    pub use crate::case::{FutureSlot, Placed, SuiteEntry, TestInfo};
    pub use crate::functional::{Expect, run_test, try_run_test};
    pub use inventory;

    /// For `tests/` and `fuzz/`: the decoders and wire types they exercise.
    pub mod internals {
        pub use crate::measure::decode_responses;
        pub use crate::notify::{NotifyError, RunSummary, notify_all};
        pub use crate::result::{Envelope, Latency};
        pub use crate::transport::{Job, decode_any};
    }
}

/// What a test file needs: `use loads::prelude::*;`.
pub mod prelude {
    pub use crate::case::{Outcome, TestCase, TestError};
    pub use crate::data::Row;
    pub use crate::measure::{Message, StatusCode};
    pub use crate::{ensure, ensure_eq, ensure_ne, fail};
    pub use serde_json::json;
}
