//! Test data (feeders): the rows a test asks for with `t.data("NAME")`, read from the files a
//! run declares (`--data NAME=FILE[:STRATEGY]`, `[[data]]` in the config file; the specs live
//! in `config`) and handed out by strategy: `circular`, `random`, `queue`, `queue-stop`,
//! `per-user`.
//!
//! Files: `load` (a CSV, JSON array or JSON lines file into rows, bounded), `row` ([`Row`], what
//! a test gets), `set` ([`DataSet`], a run's sources and their strategies; [`Lease`], how a
//! cluster's worker gets unique rows from the broker).
//!
//! Data enters as specs and files (and, in a cluster, leases of row numbers); rows leave to
//! tests through the test context, or a [`DataError`] that becomes the hit's error.

mod load;
mod row;
mod set;

pub use load::MAX_FILE_BYTES;
pub use row::Row;
pub use set::{DataError, DataSet, LEASE_BLOCK, Lease};
