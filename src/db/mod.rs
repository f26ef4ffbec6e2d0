//! The broker's storage: one SQLite file (WAL) with every run's metadata and every event its
//! workers sent. Written by the broker's loop (events in one transaction per loop turn), read
//! back for `loads runs`, `loads report` and re-attaching, also after a broker restart. It owns
//! the types of what it stores ([`RunRow`], [`StoredRun`]), which the broker's protocol sends as
//! they are.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::result::{Envelope, RunMeta};

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused or failed (a full disk, a locked or corrupt file).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be read or written as JSON.
    #[error("database: bad stored data: {0}")]
    Data(String),
    /// The database's directory could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// One row of `loads runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    /// The run.
    pub run_id: String,
    /// Its test.
    pub test: String,
    /// When it started (ISO 8601).
    pub started: String,
    /// How long it ran, when it ended.
    pub duration: Option<f64>,
    /// Hits so far.
    pub hits: u64,
    /// `running`, `finished`, `failed`.
    pub status: String,
    /// Agents the run had.
    pub agents: u64,
    /// Agents lost during the run.
    pub lost_agents: Vec<String>,
    /// Events the broker received and published but could not store (a full disk, a failing
    /// database): a report of the run shows fewer than its callers saw.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unstored: u64,
    /// The problems of the run the broker saw, as its caller was told when it ended: a worker
    /// stopped by the user, not ready in time, failed, or not exiting when stopped. A few per
    /// agent at most; kept to [`MAX_RUN_PROBLEMS`] of at most [`MAX_PROBLEM_BYTES`] each, and a
    /// line that counts the others ([`RunProblems`]). Empty while the run goes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Most problems kept with a run ([`RunRow::problems`]): a run has a few per agent at most,
/// but an agent's messages say how many; a last line counts those after.
pub const MAX_RUN_PROBLEMS: usize = 100;
/// Longest problem kept, in bytes (a worker's error comes from the agent): a longer one is cut
/// at a character boundary and ends with "…".
pub const MAX_PROBLEM_BYTES: usize = 2048;

/// The problems of a run while it goes on, bounded as they come: the first
/// [`MAX_RUN_PROBLEMS`], each cut to [`MAX_PROBLEM_BYTES`], and how many came after them. An
/// agent's messages say how many problems a run has (a `worker_exited` of up to 1 MiB, again
/// and again): the memory they take never grows past the bound. What the run keeps (stores,
/// publishes at its end, notifies) is [`kept`](Self::kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunProblems {
    kept: Vec<String>,
    more: u64,
}

impl RunProblems {
    /// Adds `problem`: kept (cut) while fewer than [`MAX_RUN_PROBLEMS`] are, else only counted.
    pub fn push(&mut self, problem: &str) {
        if self.kept.len() >= MAX_RUN_PROBLEMS {
            self.more = self.more.saturating_add(1);
            return;
        }
        self.kept.push(if problem.len() <= MAX_PROBLEM_BYTES {
            problem.to_owned()
        } else {
            format!(
                "{}…",
                &problem[..problem.floor_char_boundary(MAX_PROBLEM_BYTES)]
            )
        });
    }

    /// Whether the run has had no problem.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The problems as the run keeps them: the first [`MAX_RUN_PROBLEMS`] (cut), and a line
    /// that counts the others.
    pub fn kept(&self) -> Vec<String> {
        let mut kept = self.kept.clone();
        if self.more > 0 {
            kept.push(format!(
                "{} more problems of this run were not kept (at most {MAX_RUN_PROBLEMS} are)",
                self.more
            ));
        }
        kept
    }
}

/// Everything stored about a run, for `loads report` and re-attaching.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRun {
    /// The run's row.
    pub row: RunRow,
    /// What outputs show.
    pub meta: RunMeta,
    /// Every stored event, in arrival order (numbered 1, 2, ... in the run).
    pub events: Vec<Envelope>,
}

/// Most events in one page of [`CallerRequest::GetRun`](crate::transport::CallerRequest::GetRun).
pub const RUN_PAGE_EVENTS: usize = 20_000;
/// Most bytes of stored events in one page of [`CallerRequest::GetRun`](crate::transport::CallerRequest::GetRun) (a page has at least one
/// event).
pub const RUN_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// The broker's database.
pub struct Db {
    conn: Connection,
}

/// The default database path: `$XDG_DATA_HOME/loads/broker.sqlite`, else
/// `~/.local/share/loads/broker.sqlite`.
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("loads").join("broker.sqlite")
}

impl Db {
    /// Opens (creating it and its directory on first use) the database at `path`. Runs left
    /// `running` by a broker that died are marked `interrupted`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::Io {
                what: format!("cannot create {}", dir.display()),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY,
                test TEXT NOT NULL,
                meta TEXT NOT NULL,
                agents INTEGER NOT NULL,
                started TEXT NOT NULL,
                duration REAL,
                hits INTEGER NOT NULL DEFAULT 0,
                status TEXT NOT NULL,
                lost TEXT NOT NULL DEFAULT '[]'
            );
            CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                run_id TEXT NOT NULL,
                data TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);",
        )?;
        // Columns added since the first version: who started a run, how many of its events
        // could not be stored, and its problems (JSON, as `lost`).
        for (column, decl) in [
            ("owner", "TEXT NOT NULL DEFAULT ''"),
            ("unstored", "INTEGER NOT NULL DEFAULT 0"),
            ("problems", "TEXT NOT NULL DEFAULT '[]'"),
        ] {
            let present: bool = conn
                .prepare("SELECT 1 FROM pragma_table_info('runs') WHERE name = ?1")?
                .exists(params![column])?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {column} {decl}"))?;
            }
        }
        // The row of a run is stored with its events, in one transaction: a run left
        // `running` by a broker that died has the hits and the duration of its stored events.
        // On a full disk this fails: the broker still starts (and serves what is stored), and
        // says so; such runs show `running` until the database takes writes.
        if let Err(e) =
            conn.execute_batch("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
        {
            eprintln!(
                "broker: cannot mark the runs of a previous broker as interrupted ({e}); is the disk full?"
            );
        }
        Ok(Db { conn })
    }

    /// Records a new run, started by the caller whose key is `owner` (empty without CURVE).
    pub fn insert_run(&self, row: &RunRow, meta: &RunMeta, owner: &str) -> Result<(), DbError> {
        let meta = serde_json::to_string(meta).map_err(|e| DbError::Data(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO runs (run_id, test, meta, agents, started, status, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![row.run_id, row.test, meta, row.agents as i64, row.started, row.status, owner],
        )?;
        Ok(())
    }

    /// Stores events (`(run_id, envelope JSON)`) in one transaction (the broker stores them
    /// with their rows: [`Db::store`]).
    #[cfg(test)]
    pub fn add_events(&mut self, events: &[(String, String)]) -> Result<(), DbError> {
        self.store(events, &[])
    }

    /// Stores events (`(run_id, envelope JSON)`) and updates run rows, in one transaction:
    /// all of it is stored, or none.
    pub fn store(&mut self, events: &[(String, String)], rows: &[RunRow]) -> Result<(), DbError> {
        if events.is_empty() && rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO events (run_id, data) VALUES (?1, ?2)")?;
            for (run, data) in events {
                stmt.execute(params![run, data])?;
            }
            for row in rows {
                Self::update_in(&tx, row)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn update_in(conn: &Connection, row: &RunRow) -> Result<(), DbError> {
        let lost = serde_json::to_string(&row.lost_agents).unwrap_or_else(|_| "[]".into());
        let problems = serde_json::to_string(&row.problems).unwrap_or_else(|_| "[]".into());
        conn.prepare_cached(
            "UPDATE runs SET hits = ?2, status = ?3, duration = ?4, lost = ?5, started = ?6, unstored = ?7, problems = ?8 WHERE run_id = ?1",
        )?
        .execute(params![
            row.run_id,
            row.hits as i64,
            row.status,
            row.duration,
            lost,
            row.started,
            row.unstored as i64,
            problems
        ])?;
        Ok(())
    }

    const COLUMNS: &str = "run_id, test, agents, started, duration, hits, status, lost, meta, owner, unstored, problems";

    /// A row of `runs` (selected with [`Self::COLUMNS`]): the run's row, its metadata (JSON) and
    /// its owner.
    fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<(RunRow, String, String)> {
        let lost: String = r.get(7)?;
        let problems: String = r.get(11)?;
        Ok((
            RunRow {
                run_id: r.get(0)?,
                test: r.get(1)?,
                agents: r.get::<_, i64>(2)? as u64,
                started: r.get(3)?,
                duration: r.get(4)?,
                hits: r.get::<_, i64>(5)? as u64,
                status: r.get(6)?,
                lost_agents: serde_json::from_str(&lost).unwrap_or_default(),
                unstored: r.get::<_, i64>(10)?.max(0) as u64,
                problems: serde_json::from_str(&problems).unwrap_or_default(),
            },
            r.get(8)?,
            r.get(9)?,
        ))
    }

    /// Every run with its owner, newest first.
    pub fn runs(&self) -> Result<Vec<(RunRow, String)>, DbError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {} FROM runs ORDER BY started DESC",
            Self::COLUMNS
        ))?;
        let rows = stmt.query_map([], Self::row_of)?;
        Ok(rows
            .filter_map(Result::ok)
            .map(|(r, _, owner)| (r, owner))
            .collect())
    }

    /// A run's row, without its events.
    pub fn get_run_row(&self, run_id: &str) -> Result<Option<RunRow>, DbError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {} FROM runs WHERE run_id = ?1", Self::COLUMNS),
                params![run_id],
                Self::row_of,
            )
            .optional()?
            .map(|(r, _, _)| r))
    }

    /// A run with one page of its events, those after the cursor `after` (see
    /// [`CallerRequest::GetRun`](crate::transport::CallerRequest::GetRun)), the cursor of the
    /// next page when there is one, and the run's owner.
    pub fn get_run(
        &self,
        run_id: &str,
        after: Option<i64>,
    ) -> Result<Option<(StoredRun, Option<i64>, String)>, DbError> {
        let found = self
            .conn
            .query_row(
                &format!("SELECT {} FROM runs WHERE run_id = ?1", Self::COLUMNS),
                params![run_id],
                Self::row_of,
            )
            .optional()?;
        let Some((row, meta, owner)) = found else {
            return Ok(None);
        };
        let meta: RunMeta =
            serde_json::from_str(&meta).map_err(|e| DbError::Data(e.to_string()))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, data FROM events WHERE run_id = ?1 AND id > ?2 ORDER BY id",
        )?;
        let mut rows = stmt.query(params![run_id, after.unwrap_or(0)])?;
        let (mut events, mut bytes, mut next) = (Vec::new(), 0usize, None);
        while let Some(r) = rows.next()? {
            if events.len() >= RUN_PAGE_EVENTS || (bytes >= RUN_PAGE_BYTES && !events.is_empty()) {
                break;
            }
            let id: i64 = r.get(0)?;
            let data: String = r.get(1)?;
            bytes += data.len();
            next = Some(id);
            // Stored events were valid when stored; a row that no longer parses is skipped
            // but still moves the cursor.
            if let Ok(e) = serde_json::from_str::<Envelope>(&data) {
                events.push(e);
            }
        }
        // `next` only when another row follows.
        let more = match next {
            Some(last) => self
                .conn
                .query_row(
                    "SELECT 1 FROM events WHERE run_id = ?1 AND id > ?2 LIMIT 1",
                    params![run_id, last],
                    |_| Ok(()),
                )
                .optional()?
                .is_some(),
            None => false,
        };
        Ok(Some((
            StoredRun { row, meta, events },
            if more { next } else { None },
            owner,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Event;

    #[test]
    fn runs_and_events_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("loads-db-{}", std::process::id()));
        let path = dir.join("b.sqlite");
        let row = RunRow {
            run_id: "r1".into(),
            test: "s::t".into(),
            started: "2026-11-26T00:00:00Z".into(),
            duration: None,
            hits: 0,
            status: "running".into(),
            agents: 2,
            lost_agents: vec![],
            unstored: 0,
            problems: vec![],
        };
        {
            let mut db = Db::open(&path).expect("open");
            db.insert_run(&row, &RunMeta::default(), "")
                .expect("insert");
            let ev = Envelope {
                run_id: "r1".into(),
                agent_id: "a".into(),
                hostname: "h".into(),
                event: Event::SocketOpen,
            };
            db.add_events(&[("r1".into(), serde_json::to_string(&ev).expect("json"))])
                .expect("add");
        }
        let db = Db::open(&path).expect("reopen");
        let runs = db.runs().expect("runs");
        assert_eq!(runs.len(), 1);
        assert_eq!(
            runs[0].0.status, "interrupted",
            "a run left running by a dead broker"
        );
        let (stored, next, _) = db.get_run("r1", None).expect("get").expect("some");
        assert_eq!(stored.events.len(), 1);
        assert_eq!(next, None);
        assert!(db.get_run("nope", None).expect("get").is_none());
        drop(db);

        // Pages: never more than RUN_PAGE_EVENTS, the cursor walks every event once.
        let mut db = Db::open(&path).expect("reopen");
        let ev = Envelope {
            run_id: "r1".into(),
            agent_id: "a".into(),
            hostname: "h".into(),
            event: Event::SocketClose,
        };
        let data = serde_json::to_string(&ev).expect("json");
        let many: Vec<(String, String)> = (0..RUN_PAGE_EVENTS + 5)
            .map(|_| ("r1".to_owned(), data.clone()))
            .collect();
        db.add_events(&many).expect("add");
        let (first, next, _) = db.get_run("r1", None).expect("get").expect("some");
        assert_eq!(first.events.len(), RUN_PAGE_EVENTS);
        let (second, last, _) = db.get_run("r1", next).expect("get").expect("some");
        assert_eq!(second.events.len(), 6);
        assert_eq!(last, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_database_without_the_newer_columns_opens_and_keeps_problems_from_then_on() {
        let dir = std::env::temp_dir().join(format!("loads-db-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("old.sqlite");
        {
            // The table of the first version: no owner, unstored or problems.
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(
                "CREATE TABLE runs (
                    run_id TEXT PRIMARY KEY,
                    test TEXT NOT NULL,
                    meta TEXT NOT NULL,
                    agents INTEGER NOT NULL,
                    started TEXT NOT NULL,
                    duration REAL,
                    hits INTEGER NOT NULL DEFAULT 0,
                    status TEXT NOT NULL,
                    lost TEXT NOT NULL DEFAULT '[]'
                );
                INSERT INTO runs (run_id, test, meta, agents, started, duration, hits, status, lost)
                    VALUES ('old', 's::t', '{}', 2, '2026-01-01T00:00:00Z', 3.0, 7, 'failed', '[\"a1\"]');",
            )
            .expect("old table");
        }
        let mut db = Db::open(&path).expect("open an old database");
        let old = db.get_run_row("old").expect("get").expect("the old run");
        assert_eq!((old.hits, old.status.as_str()), (7, "failed"));
        assert_eq!(old.lost_agents, ["a1"]);
        assert!(old.problems.is_empty() && old.unstored == 0, "{old:?}");
        // A run ended with problems keeps them.
        let mut row = RunRow {
            run_id: "new".into(),
            status: "running".into(),
            ..old.clone()
        };
        db.insert_run(&row, &RunMeta::default(), "")
            .expect("insert");
        row.status = "failed".into();
        row.problems = vec!["agent a2: its worker was stopped by the user".into()];
        db.store(&[], std::slice::from_ref(&row)).expect("store");
        drop(db);
        let db = Db::open(&path).expect("reopen");
        let stored = db.get_run_row("new").expect("get").expect("new");
        assert_eq!(stored.problems, row.problems);
        let (listed, _) = db
            .runs()
            .expect("runs")
            .into_iter()
            .find(|(r, _)| r.run_id == "new")
            .expect("listed");
        assert_eq!(listed.problems, row.problems);
        // Opening it again changes nothing (the columns are there).
        drop(db);
        assert!(Db::open(&path).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn problems_are_kept_to_a_bounded_number_and_length() {
        let bounded = |problems: &[String]| {
            let mut run = RunProblems::default();
            for p in problems {
                run.push(p);
            }
            run
        };
        let few = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(bounded(&few).kept(), few);
        assert!(bounded(&[]).is_empty() && !bounded(&few).is_empty());
        let long = "é".repeat(MAX_PROBLEM_BYTES);
        let many = vec![long; MAX_RUN_PROBLEMS + 3];
        let run = bounded(&many);
        // Bounded as they come: no more than the bound is ever held.
        assert_eq!(run.kept.len(), MAX_RUN_PROBLEMS);
        let kept = run.kept();
        assert_eq!(kept.len(), MAX_RUN_PROBLEMS + 1);
        assert!(
            kept[..MAX_RUN_PROBLEMS]
                .iter()
                .all(|p| p.len() <= MAX_PROBLEM_BYTES + '…'.len_utf8() && p.ends_with('…'))
        );
        assert!(
            kept[MAX_RUN_PROBLEMS].starts_with("3 more problems"),
            "{kept:?}"
        );
    }
}
