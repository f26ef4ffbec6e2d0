//! [`DataSet`]: the data sources of a run, loaded once per process and shared by its virtual
//! users, each handing out its rows by its [`Strategy`]:
//!
//! - `circular`: the next row, round and round (each process of a cluster starts at its own
//!   part of the file);
//! - `random`: a row drawn uniformly for every request;
//! - `queue`, `queue-stop`, `per-user`: each row once in the whole run. In one process a counter
//!   hands them out; in a cluster's worker they come from blocks of row numbers that the broker
//!   leases to each worker ([`Lease`]), so that no two users anywhere get the same row.
//!
//! Data enters as [`DataSpec`]s (files read by `load`) and a [`Lease`] in a cluster; rows leave
//! through [`DataSet::take`], or a [`DataError`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::load::{LoadError, load};
use super::row::Row;
use crate::config::{DataSpec, Strategy};

/// Why a test got no row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The run declares no source of that name.
    #[error(
        "data '{0}' is not declared: add --data {0}=FILE[:STRATEGY] to the run (or a [[data]] table with name = \"{0}\" to its config file)"
    )]
    Undeclared(String),
    /// Every row of a `queue`, `queue-stop` or `per-user` source was handed out.
    #[error("data '{name}' exhausted: each of its {rows} rows was used once (strategy {strategy})")]
    Exhausted {
        /// The source.
        name: String,
        /// Its rows.
        rows: u64,
        /// Its strategy.
        strategy: Strategy,
    },
    /// The broker did not lease rows (a cluster run).
    #[error("data '{name}': no rows from the broker: {reason}")]
    Lease {
        /// The source.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// Where a cluster's worker gets the row numbers of its `queue` and `per-user` sources: the
/// broker, which hands each worker blocks that no other worker gets.
pub trait Lease: Send + Sync {
    /// Leases a block of row numbers of source `name`, at most `want`: an empty range when
    /// every row is taken.
    fn lease(&self, name: &str, want: u64) -> Result<Range<u64>, String>;
    /// Gives back rows leased to this worker that it did not use (when it ends), so that the
    /// broker can lease them to others.
    fn release(&self, name: &str, unused: Range<u64>);
}

/// Most rows a worker asks the broker for at a time (the broker may give fewer).
pub const LEASE_BLOCK: u64 = 100;
/// After an empty lease, how long a worker answers "exhausted" without asking again (rows
/// given back by workers that ended are then leased again).
const EXHAUSTED_RETRY: Duration = Duration::from_millis(250);

/// A block of leased rows: the ones not handed out yet.
#[derive(Default)]
struct Leased {
    block: Range<u64>,
    /// Since an empty lease: exhausted until then.
    empty_until: Option<Instant>,
}

/// One source: its rows and how they are handed out.
struct Source {
    spec: DataSpec,
    rows: Vec<Row>,
    /// Requests so far (circular, random: their position; queue: the next row).
    next: AtomicU64,
    /// Where a circular source starts, and the random draws' stream.
    offset: u64,
    leased: Mutex<Leased>,
}

/// The data sources of a run in this process.
#[derive(Default)]
pub struct DataSet {
    sources: BTreeMap<String, Source>,
    /// In a cluster's worker: the broker's leases of unique rows.
    lease: OnceLock<Arc<dyn Lease>>,
}

impl std::fmt::Debug for DataSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.sources
                    .iter()
                    .map(|(n, s)| (n, (s.rows.len(), s.spec.strategy))),
            )
            .finish()
    }
}

/// splitmix64: a cheap, well-spread draw.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl DataSet {
    /// Reads the files of `specs`, relative to `dir`. `part` is this process's share of a
    /// cluster run `(index, count)`: circular sources start at their part of the file and
    /// random ones draw their own sequence.
    pub fn load(specs: &[DataSpec], dir: &Path, part: (u64, u64)) -> Result<DataSet, LoadError> {
        let mut sources = BTreeMap::new();
        for spec in specs {
            // Shown as given when relative to the current directory.
            let path = if dir == Path::new(".") {
                Path::new(&spec.file).to_path_buf()
            } else {
                dir.join(&spec.file)
            };
            // A shipped file is checked against what the caller had.
            let rows = load(&spec.name, &path, spec.sha256.as_deref())?;
            if let Some(n) = spec.rows
                && n != rows.len() as u64
            {
                return Err(LoadError(format!(
                    "data '{}': {} has {} rows, the run declared {n}",
                    spec.name,
                    path.display(),
                    rows.len()
                )));
            }
            let (index, count) = part;
            let offset = (rows.len() as u64).saturating_mul(index) / count.max(1);
            sources.insert(
                spec.name.clone(),
                Source {
                    spec: spec.clone(),
                    // Random sources draw a new sequence every run (and on every agent).
                    offset: if spec.strategy == Strategy::Random {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos() as u64);
                        mix(index ^ 0x5eed ^ mix(now ^ u64::from(std::process::id())))
                    } else {
                        offset
                    },
                    rows,
                    next: AtomicU64::new(0),
                    leased: Mutex::new(Leased::default()),
                },
            );
        }
        Ok(DataSet {
            sources,
            lease: OnceLock::new(),
        })
    }

    /// Whether no source is declared.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The spec of source `name` (with its number of rows).
    pub fn spec(&self, name: &str) -> Option<DataSpec> {
        self.sources.get(name).map(|s| DataSpec {
            rows: Some(s.rows.len() as u64),
            ..s.spec.clone()
        })
    }

    /// Makes the unique rows (`queue`, `queue-stop`, `per-user`) come from `lease`, the broker's
    /// leases: set by a cluster's worker before its users start (only the first call counts).
    pub fn use_lease(&self, lease: Arc<dyn Lease>) {
        let _ = self.lease.set(lease);
    }

    /// The strategy of source `name`.
    pub fn strategy(&self, name: &str) -> Option<Strategy> {
        self.sources.get(name).map(|s| s.spec.strategy)
    }

    /// A row of source `name`, by its strategy (for `per-user`, the caller keeps the row for
    /// its user: every call here takes a new one).
    pub fn take(&self, name: &str) -> Result<Row, DataError> {
        let Some(s) = self.sources.get(name) else {
            return Err(DataError::Undeclared(name.to_owned()));
        };
        let len = s.rows.len() as u64;
        let n = match s.spec.strategy {
            Strategy::Circular => {
                (s.next
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_add(s.offset))
                    % len
            }
            Strategy::Random => {
                mix(s.next.fetch_add(1, Ordering::Relaxed) ^ s.offset.rotate_left(17)) % len
            }
            Strategy::Queue | Strategy::QueueStop | Strategy::PerUser => match self.lease.get() {
                Some(lease) => self.leased(s, &**lease)?,
                None => {
                    // `fetch_update` instead of `fetch_add`: past the end the counter stays put.
                    s.next
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                            (n < len).then_some(n + 1)
                        })
                        .map_err(|_| exhausted(s))?
                }
            },
        };
        s.rows
            .get(n as usize)
            .cloned()
            .ok_or_else(|| DataError::Lease {
                name: name.to_owned(),
                reason: format!("row {n} leased, but the file has {len} rows"),
            })
    }

    /// The next row number of a leased source, leasing a new block when this one is used up.
    fn leased(&self, s: &Source, lease: &dyn Lease) -> Result<u64, DataError> {
        // Users of every worker thread wait here while one of them asks the broker.
        let mut l = s
            .leased
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = l.block.next() {
            return Ok(n);
        }
        if l.empty_until.is_some_and(|t| Instant::now() < t) {
            return Err(exhausted(s));
        }
        let block = lease
            .lease(&s.spec.name, LEASE_BLOCK)
            .map_err(|reason| DataError::Lease {
                name: s.spec.name.clone(),
                reason,
            })?;
        l.block = block;
        match l.block.next() {
            Some(n) => {
                l.empty_until = None;
                Ok(n)
            }
            None => {
                l.empty_until = Some(Instant::now() + EXHAUSTED_RETRY);
                Err(exhausted(s))
            }
        }
    }

    /// Gives the rows leased and not handed out back to the broker (a worker whose users are
    /// done).
    pub fn release_unused(&self) {
        let Some(lease) = self.lease.get() else {
            return;
        };
        for s in self.sources.values() {
            let mut l = s
                .leased
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let unused = std::mem::take(&mut l.block);
            if !unused.is_empty() {
                lease.release(&s.spec.name, unused);
            }
        }
    }
}

fn exhausted(s: &Source) -> DataError {
    DataError::Exhausted {
        name: s.spec.name.clone(),
        rows: s.rows.len() as u64,
        strategy: s.spec.strategy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn set(strategy: &str, rows: usize, part: (u64, u64)) -> DataSet {
        let dir = std::env::temp_dir().join(format!("loads-data-set-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut text = String::from("id\n");
        for i in 0..rows {
            text.push_str(&format!("{i}\n"));
        }
        std::fs::write(dir.join(format!("r{rows}.csv")), text).expect("write");
        let spec: DataSpec = format!("r=r{rows}.csv:{strategy}").parse().expect("spec");
        DataSet::load(&[spec], &dir, part).expect("load")
    }

    #[test]
    fn a_queue_hands_out_each_row_once_then_is_exhausted() {
        let d = set("queue", 5, (0, 1));
        let got: Vec<u64> = (0..5).map(|_| d.take("r").expect("row").index()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        let e = d.take("r").expect_err("exhausted");
        assert_eq!(
            e.to_string(),
            "data 'r' exhausted: each of its 5 rows was used once (strategy queue)"
        );
        assert!(matches!(d.take("nope"), Err(DataError::Undeclared(_))));
    }

    #[test]
    fn circular_and_random_never_run_out() {
        let d = set("circular", 3, (1, 3));
        let got: Vec<u64> = (0..6).map(|_| d.take("r").expect("row").index()).collect();
        assert_eq!(got, [1, 2, 0, 1, 2, 0]);
        let d = set("random", 10, (0, 1));
        let seen: BTreeSet<u64> = (0..500)
            .map(|_| d.take("r").expect("row").index())
            .collect();
        assert_eq!(seen.len(), 10, "every row is drawn over 500 draws");
    }

    /// A broker of one process: blocks of 3.
    struct Blocks(Mutex<(u64, u64, Vec<Range<u64>>)>);
    impl Lease for Blocks {
        fn lease(&self, _: &str, want: u64) -> Result<Range<u64>, String> {
            let mut g = self.0.lock().expect("lock");
            if let Some(r) = g.2.pop() {
                return Ok(r);
            }
            let start = g.0.min(g.1);
            let end = (start + want.min(3)).min(g.1);
            g.0 = end;
            Ok(start..end)
        }
        fn release(&self, _: &str, unused: Range<u64>) {
            self.0.lock().expect("lock").2.push(unused);
        }
    }

    #[test]
    fn leased_rows_come_in_blocks_and_go_back_when_unused() {
        let broker = Arc::new(Blocks(Mutex::new((0, 8, Vec::new()))));
        let a = set("queue", 8, (0, 2));
        let b = set("queue", 8, (1, 2));
        a.use_lease(broker.clone());
        b.use_lease(broker.clone());
        let mut seen = vec![
            a.take("r").expect("a").index(),
            b.take("r").expect("b").index(),
        ];
        // `a` holds 1..3, `b` 4..6: `a` ends and gives back what it did not use.
        a.release_unused();
        for _ in 0..6 {
            seen.push(b.take("r").expect("b").index());
        }
        seen.sort();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert!(matches!(b.take("r"), Err(DataError::Exhausted { .. })));
    }
}
