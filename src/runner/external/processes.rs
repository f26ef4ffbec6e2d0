//! The test runners' processes of an external run: one per virtual user and cycle step, each
//! leading a process group of its own, with the plan in its environment. A step's processes
//! are started together, waited for, and terminated (SIGTERM, then SIGKILL) when the run stops,
//! when they outlive a duration step by [`GRACE`], or when a hits step's processes run longer
//! than `--external-process-timeout`; a process that fails becomes a problem of
//! the run with the tail of its stderr. The command line enters as text ([`split_command`]);
//! problems leave as strings.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::ExternalRunner;
use crate::case::draw;
use crate::config::UsageError;
use crate::runner::{RunError, Stop};

/// How long a runner may outlive its duration step before it is terminated.
pub const GRACE: Duration = Duration::from_secs(10);
/// How long a terminated runner has to exit before it is killed (shorter than the 5 s an agent
/// gives its worker, so that the worker is done with its runners before the agent kills it).
const KILL_AFTER: Duration = Duration::from_secs(3);
/// Bytes of a failed runner's stderr shown in its problem.
const STDERR_TAIL: usize = 2000;

impl ExternalRunner {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_step(
        &self,
        step: usize,
        n_users: u64,
        hits: Option<u64>,
        (endpoint, data_endpoint): (&str, Option<&str>),
        tmp: &Path,
        stop: &AtomicBool,
        problems: &mut Vec<String>,
    ) -> Result<(), RunError> {
        let mut children: Vec<(u64, Child, PathBuf)> = Vec::new();
        let started = Instant::now();
        for user in 1..=n_users {
            let err_path = tmp.join(format!("step{step}-user{user}.stderr"));
            let err_file = std::fs::File::create(&err_path)?;
            // Each user's test is drawn by weight (one name: always it), per step and user.
            let part = self.args.plan.share.map_or(0, |(index, _)| index);
            let test = self.mix.pick(draw(part, user, step as u64));
            let command = split_command(&self.command, test)?;
            let mut c = Command::new(&command[0]);
            // Each runner leads a process group of its own: a runner started through a shell
            // is stopped with everything it started, and Ctrl-C on the terminal reaches loads
            // only, which then stops the runners itself.
            c.process_group(0);
            c.args(&command[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err_file)
                .env("LOADS_ZMQ_RECEIVER", endpoint)
                .env("LOADS_RUN_ID", &self.args.run_id)
                .env("LOADS_AGENT_ID", &self.agent_id)
                .env("LOADS_TOTAL_USERS", n_users.to_string())
                .env("LOADS_CURRENT_USER", user.to_string())
                .env("LOADS_TEST", test)
                .env_remove("LOADS_TOTAL_HITS")
                .env_remove("LOADS_DURATION")
                .env_remove("LOADS_SERVER_URL")
                .env_remove("LOADS_DATA_ENDPOINT")
                .env_remove("LOADS_DATA_USER");
            if let Some(data) = data_endpoint {
                c.env("LOADS_DATA_ENDPOINT", data)
                    .env("LOADS_DATA_USER", super::data::user_key(step, user));
            }
            match (hits, &self.plan.stop) {
                (Some(h), _) => c.env("LOADS_TOTAL_HITS", h.to_string()),
                (None, Stop::Duration(d)) => c.env("LOADS_DURATION", d.as_secs_f64().to_string()),
                (None, Stop::Hits(_)) => c.env("LOADS_TOTAL_HITS", "1"),
            };
            if let Some(url) = &self.args.plan.server_url {
                c.env("LOADS_SERVER_URL", url);
            }
            match c.spawn() {
                Ok(child) => children.push((user, child, err_path)),
                Err(e) => {
                    // Nothing of this step can run: stop the ones started and say why.
                    signal_groups("-TERM", children.iter().map(|(_, c, _)| c.id()));
                    for (_, mut c, _) in children {
                        let _ = c.wait();
                    }
                    let what = if e.kind() == std::io::ErrorKind::NotFound {
                        format!(
                            "cannot start the test runner {:?}: no such program (check --test-runner and PATH)",
                            command[0]
                        )
                    } else {
                        format!("cannot start the test runner {:?}: {e}", command[0])
                    };
                    return Err(RunError::Usage(UsageError::new("--test-runner", what)));
                }
            }
        }
        let timeout = self.args.plan.external_process_timeout();
        let deadline = match &self.plan.stop {
            Stop::Duration(d) => Some(started + *d + GRACE),
            Stop::Hits(_) => timeout.map(|t| started + t),
        };
        let mut terminated_at: Option<Instant> = None;
        while !children.is_empty() {
            let mut i = 0;
            while i < children.len() {
                match children[i].1.try_wait() {
                    Ok(Some(status)) => {
                        let (user, _, err_path) = children.swap_remove(i);
                        // Runners that loads stopped (Ctrl-C, a stop, an abort) exit as told.
                        let stopped = terminated_at.is_some() || stop.load(Ordering::SeqCst);
                        if !status.success() && !stopped {
                            problems.push(format!(
                                "test runner of user {user}/{n_users} (step {}) exited with {status}{}",
                                step + 1,
                                stderr_tail(&err_path)
                            ));
                        }
                    }
                    Ok(None) => i += 1,
                    Err(e) => {
                        let (user, _, _) = children.swap_remove(i);
                        problems.push(format!("cannot wait for the runner of user {user}: {e}"));
                    }
                }
            }
            if children.is_empty() {
                break;
            }
            let now = Instant::now();
            match terminated_at {
                None => {
                    let stopping = stop.load(Ordering::SeqCst);
                    let late = deadline.is_some_and(|d| now >= d);
                    if stopping || late {
                        if late && !stopping {
                            problems.push(match timeout.filter(|_| hits.is_some()) {
                                Some(t) => format!(
                                    "{} test runner(s) of step {} still ran after --external-process-timeout ({}): terminated",
                                    children.len(),
                                    step + 1,
                                    humantime::format_duration(t)
                                ),
                                None => format!(
                                    "{} test runner(s) of step {} still ran {}s after the end of the step: terminated",
                                    children.len(),
                                    step + 1,
                                    GRACE.as_secs()
                                ),
                            });
                        }
                        signal_groups("-TERM", children.iter().map(|(_, c, _)| c.id()));
                        terminated_at = Some(now);
                    }
                }
                Some(t) if now - t >= KILL_AFTER => {
                    signal_groups("-KILL", children.iter().map(|(_, c, _)| c.id()));
                    for (_, c, _) in children.iter_mut() {
                        let _ = c.kill();
                    }
                }
                Some(_) => {}
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Splits the `--test-runner` command line like a POSIX shell (no shell runs it) and puts the
/// test name in place of every `{test}`.
pub fn split_command(line: &str, test: &str) -> Result<Vec<String>, RunError> {
    let words = shlex::split(line).ok_or_else(|| {
        RunError::Usage(UsageError::new(
            "--test-runner",
            format!("invalid --test-runner {line:?}: unbalanced quotes or a trailing backslash"),
        ))
    })?;
    if words.is_empty() {
        return Err(RunError::Usage(UsageError::new(
            "--test-runner",
            "empty --test-runner: give the command that runs one virtual user, e.g. \"python3 -m loads_client {test}\"",
        )));
    }
    Ok(words
        .into_iter()
        .map(|w| w.replace("{test}", test))
        .collect())
}

/// Sends `signal` (`-TERM`, `-KILL`) to the process groups led by `pids`.
fn signal_groups(signal: &str, pids: impl Iterator<Item = u32>) {
    let groups: Vec<String> = pids.map(|p| format!("-{p}")).collect();
    if !groups.is_empty() {
        let _ = Command::new("kill")
            .arg(signal)
            .arg("--")
            .args(&groups)
            .stderr(Stdio::null())
            .status();
    }
}

/// `: <last lines of stderr>` or nothing.
fn stderr_tail(path: &Path) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; stderr ends with:\n    {}", text.replace('\n', "\n    "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell_and_take_the_test_name() {
        let c = split_command(
            "python3 -m loads_client '{test}' --tag \"a b\"",
            "t.Site.test_home",
        )
        .expect("split");
        assert_eq!(
            c,
            vec![
                "python3",
                "-m",
                "loads_client",
                "t.Site.test_home",
                "--tag",
                "a b"
            ]
        );
        assert!(split_command("python3 'oops", "t").is_err());
        assert!(split_command("   ", "t").is_err());
    }
}
