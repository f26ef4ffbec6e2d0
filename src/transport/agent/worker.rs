//! A worker: the subprocess in which an agent runs one job, `BINARY worker --job FILE`.
//!
//! A job enters as the broker's `run` message, once its blobs are in the agent's cache:
//! [`Worker::start`] hashes them again, lays out the run's test directory in the agent's work
//! directory (`RUN/` with the included files, `RUN.job.json` beside it with the job and the
//! agent's keys, readable by the agent only, and `RUN.stderr` for the worker's stderr) and starts
//! the test binary there. The worker waits for "go" on its stdin ([`Worker::go`]), then takes
//! load changes there ([`Worker::change_load`]), sends its
//! events to the broker's receiver itself, and stops on SIGTERM ([`Worker::terminate`]). What
//! leaves here is its exit ([`Worker::exit`]): its code, and the end of its stderr when it
//! failed.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Instant;

use super::super::blobs::{self, BlobError};
use super::super::{Job, modified, to_frame};
use super::{AgentOptions, KEEP_RUNS};

/// Why a job's worker did not start.
#[derive(Debug, thiserror::Error)]
pub(super) enum WorkerError {
    /// The run id cannot name a directory.
    #[error("invalid run id {0:?}")]
    RunId(String),
    /// A cached blob of the job is unreadable or changed (and was removed).
    #[error("{0}")]
    Blob(#[from] BlobError),
    /// The test directory could not be laid out.
    #[error("cannot prepare the test directory {}: {source}", dir.display())]
    Prepare {
        /// The test directory.
        dir: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The test binary could not be started.
    #[error("cannot start the worker {}: {source}", binary.display())]
    Spawn {
        /// The test binary.
        binary: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A worker subprocess, running (or stopping) one run's job.
pub(super) struct Worker {
    child: Child,
    /// The worker reads "go" here before it starts its users, and stops when it closes.
    go: Option<ChildStdin>,
    /// The go was given.
    went: bool,
    stderr: PathBuf,
    /// When it was told to stop: killed if still alive after [`STOP_GRACE`](super::STOP_GRACE).
    pub(super) stopping: Option<Instant>,
}

impl Worker {
    /// Starts the worker of `job` with the cached test `binary`; `busy` tells the runs whose
    /// test directories must stay (the running ones).
    pub(super) fn start(
        opts: &AgentOptions,
        job: &Job,
        binary: &Path,
        busy: impl Fn(&str) -> bool,
    ) -> Result<Worker, WorkerError> {
        // The run id names a directory: keep it to safe characters.
        if job.run_id.is_empty()
            || !job
                .run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(WorkerError::RunId(job.run_id.clone()));
        }
        // What runs is what was asked for: the cached binary and files are hashed again now (a
        // cache is a directory anyone with access could write to).
        let blobs = std::iter::once((binary.to_path_buf(), job.binary_sha256.as_str())).chain(
            job.files
                .iter()
                .map(|f| (opts.cache_dir.join(&f.sha256), f.sha256.as_str())),
        );
        for (path, sha) in blobs {
            if let Err(e) = blobs::verify(&path, sha) {
                let _ = std::fs::remove_file(&path);
                return Err(e.into());
            }
        }
        // Old runs' test directories go, but for the most recent ones (and the running ones).
        prune_runs(&opts.work_dir, KEEP_RUNS, busy);
        // The binary was just used: the cache keeps the most recently used ones.
        let _ = std::fs::File::options()
            .append(true)
            .open(binary)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        // The job and the worker's stderr sit beside the test directory, where included files
        // cannot overwrite them.
        let dir = opts.work_dir.join(&job.run_id);
        let job_file = opts.work_dir.join(format!("{}.job.json", job.run_id));
        let stderr = opts.work_dir.join(format!("{}.stderr", job.run_id));
        let err_file = prepare(opts, job, &dir, &job_file)
            .and_then(|_| std::fs::File::create(&stderr))
            .map_err(|source| WorkerError::Prepare {
                dir: dir.clone(),
                source,
            })?;
        let mut child = Command::new(binary)
            .arg("worker")
            .arg("--job")
            .arg(&job_file)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(err_file)
            .spawn()
            .map_err(|source| WorkerError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let go = child.stdin.take();
        Ok(Worker {
            child,
            go,
            went: false,
            stderr,
            stopping: None,
        })
    }

    /// Tells a worker waiting for the go to start its users.
    pub(super) fn go(&mut self) {
        if self.went {
            return;
        }
        self.went = true;
        // The pipe stays open after the go: the worker stops when it closes, which it does when
        // this agent ends in any way (even `kill -9`), so that no worker outlives its agent.
        if let Some(go) = self.go.as_mut() {
            use std::io::Write as _;
            let _ = go.write_all(b"go\n").and_then(|_| go.flush());
        }
    }

    /// Passes a load change on to a running worker: one line on its go pipe, the
    /// [`ToAgent::Load`](crate::transport::ToAgent::Load) message as JSON.
    pub(super) fn change_load(&mut self, message: &crate::transport::ToAgent) {
        if !self.went {
            return;
        }
        if let (Some(pipe), Ok(mut line)) = (self.go.as_mut(), serde_json::to_vec(message)) {
            use std::io::Write as _;
            line.push(b'\n');
            let _ = pipe.write_all(&line).and_then(|_| pipe.flush());
        }
    }

    /// Closing the go pipe makes a worker still waiting for the go end; SIGTERM makes a running
    /// one stop its users and flush.
    pub(super) fn terminate(&mut self) {
        self.go = None;
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// Kills the worker at once.
    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Whether the worker has exited.
    pub(super) fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the worker to exit, for at most until `deadline`, then kills it.
    pub(super) fn end_by(&mut self, deadline: Instant) {
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit code of the worker (which has exited) and, unless it is 0, what went wrong: the
    /// end of its stderr.
    pub(super) fn exit(mut self) -> (Option<i32>, Option<String>) {
        let code = self.child.wait().ok().and_then(|s| s.code());
        let error = (code != Some(0)).then(|| {
            let t = tail(&self.stderr, 2000);
            if t.is_empty() {
                format!("the worker exited with {code:?}")
            } else {
                t
            }
        });
        (code, error)
    }
}

/// Lays out the test directory `dir` of `job` and writes its job file.
fn prepare(opts: &AgentOptions, job: &Job, dir: &Path, job_file: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    {
        // The job file carries this agent's keys for the worker: readable by us only.
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut job = job.clone();
        job.curve = super::super::security::client_keys().cloned();
        // A new file, created private (an old one may have other permissions).
        let _ = std::fs::remove_file(job_file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(job_file)?;
        f.write_all(&to_frame(&job).unwrap_or_default())?;
    }
    // Included files: plain relative paths (checked on receipt), copied from the cache.
    for f in &job.files {
        let dest = dir.join(&f.path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let src = opts.cache_dir.join(&f.sha256);
        std::fs::copy(&src, &dest)?;
    }
    Ok(())
}

/// The last `n` bytes of a file, as text (only those are read).
fn tail(path: &Path, n: usize) -> String {
    use std::io::{Seek as _, SeekFrom};
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(n as u64)));
        let _ = f.take(n as u64).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Removes the test directories of all but the `keep` most recent runs in `work_dir` (and their
/// `RUN.job.json` and `RUN.stderr`), never those of runs for which `busy` is true.
fn prune_runs(work_dir: &Path, keep: usize, busy: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    let mut runs: Vec<(std::time::SystemTime, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| !busy(id))
        .map(|id| (modified(&work_dir.join(&id)), id))
        .collect();
    runs.sort_by(|a, b| b.cmp(a));
    for (_, id) in runs.into_iter().skip(keep) {
        let _ = std::fs::remove_dir_all(work_dir.join(&id));
        let _ = std::fs::remove_file(work_dir.join(format!("{id}.job.json")));
        let _ = std::fs::remove_file(work_dir.join(format!("{id}.stderr")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn old_runs_are_pruned_but_not_busy_ones() {
        let work = std::env::temp_dir().join(format!("loads-agent-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("dir");
        for i in 0..5 {
            std::fs::create_dir_all(work.join(format!("run{i}"))).expect("dir");
            std::fs::write(work.join(format!("run{i}.stderr")), "").expect("file");
            let when = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000 + i);
            let f = std::fs::File::open(work.join(format!("run{i}"))).expect("open");
            f.set_modified(when).expect("mtime");
        }
        prune_runs(&work, 2, |id| id == "run0");
        let mut left: Vec<String> = std::fs::read_dir(&work)
            .expect("read")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "run0",
                "run0.stderr",
                "run3",
                "run3.stderr",
                "run4",
                "run4.stderr"
            ]
        );
        let _ = std::fs::remove_dir_all(&work);
    }
}
