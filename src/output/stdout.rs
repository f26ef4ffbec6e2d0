//! The `stdout` output: a live progress bar on a terminal (plain progress lines otherwise) and
//! the summary at the end of the run, on standard output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::VecDeque;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use super::format::render_summary;
use crate::result::{Observer, OutputError, TestResult, unix_now};

/// How often progress lines are printed when standard error is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The terminal output.
pub struct StdoutOutput {
    bar: Option<ProgressBar>,
    tty: bool,
    last_plain: Instant,
    /// The warning that no request got an answer was given.
    warned_unreachable: bool,
    /// The run's totals of hits and requests at its recent ticks, oldest first (one at least
    /// [`WINDOW`] old at most): the live line's rates are their growth.
    recent: VecDeque<(Instant, u64, u64)>,
}

impl Default for StdoutOutput {
    fn default() -> Self {
        Self::new()
    }
}

impl StdoutOutput {
    /// A progress bar when standard error is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        StdoutOutput {
            bar: None,
            tty: std::io::stderr().is_terminal(),
            last_plain: Instant::now(),
            warned_unreachable: false,
            recent: VecDeque::new(),
        }
    }

    /// Notes the run's totals now, for the rates of [`live`](Self::live), and forgets those
    /// older than the one that opens the window.
    fn note_totals(&mut self, result: &TestResult) {
        let now = Instant::now();
        let hits = result.totals().hits;
        let requests = result.stats().requests.count;
        self.recent.push_back((now, hits, requests));
        while self
            .recent
            .get(1)
            .is_some_and(|(at, ..)| now.duration_since(*at) >= Duration::from_secs(WINDOW))
        {
            self.recent.pop_front();
        }
    }

    /// The live line: the users of the last second ([`users_shown`]), totals so far, the rates
    /// of hits and of requests over the last
    /// [`WINDOW`] seconds, and the p95 request time of the requests started in its complete
    /// seconds. Both rates are the growth of the totals, which count a hit and its requests
    /// when they end: a window of the timeline's seconds (dated by their start) left out every
    /// hit still in flight, 20 % of them with one-second responses and all of them with
    /// responses longer than the window.
    fn live(&self, result: &TestResult) -> String {
        if let Some(w) = result.waiting() {
            return w.to_owned();
        }
        let stats = result.stats();
        let t = result.totals();
        let (mut hits, mut requests, mut seconds) = (0, 0, 1.0);
        if let (Some(first), Some(last)) = (self.recent.front(), self.recent.back()) {
            hits = last.1.saturating_sub(first.1);
            requests = last.2.saturating_sub(first.2);
            seconds = last.0.duration_since(first.0).as_secs_f64().max(1.0);
        }
        let now = unix_now();
        let started = result.started().timestamp();
        // Complete seconds only, and not before the run started.
        let from = (now - WINDOW as i64).max(started);
        let mut latency: Option<crate::result::Latency> = None;
        for (_, s) in stats.timeline.range(from..now) {
            if let Some(l) = &s.latency {
                match &mut latency {
                    Some(all) => all.add(l),
                    None => latency = Some(l.clone()),
                }
            }
        }
        let p95 = latency
            .filter(|l| !l.is_empty())
            .map_or("–".to_owned(), |l| {
                crate::config::units::format_micros(l.quantile(0.95) as f64)
            });
        format!(
            "{} · {} hits · {} failures · {} errors · last {WINDOW} s: {:.0} hits/s · {:.0} req/s · p95 {p95}",
            users_shown(result),
            t.hits,
            t.failures,
            t.errors,
            hits as f64 / seconds,
            requests as f64 / seconds,
        )
    }
}

/// The live line's users, what the timeline's `users` says of the last second: the users
/// alive; in the open model, where a user is active only while busy with a hit, the most in
/// flight at once in the last collect period (about a second), said so: a sample at one
/// instant would find none between two quick hits.
fn users_shown(result: &TestResult) -> String {
    let n = result.active_users();
    let users = if n == 1 { "user" } else { "users" };
    if result.stats().open.is_some() {
        format!("{n} {users} in flight (1 s peak)")
    } else {
        format!("{n} {users}")
    }
}

impl StdoutOutput {
    /// Says once, early, when no request of the run has had an answer for [`UNREACHABLE_AFTER`]
    /// (a server that is down or a wrong URL), instead of letting the whole plan run in silence.
    fn warn_if_unreachable(&mut self, result: &TestResult) {
        if self.warned_unreachable || result.duration() < UNREACHABLE_AFTER {
            return;
        }
        let requests = &result.stats().requests;
        let unanswered = requests.statuses.get(&0).copied().unwrap_or(0);
        if requests.count == 0 || unanswered < requests.count {
            return;
        }
        self.warned_unreachable = true;
        let example = result
            .stats()
            .problems
            .iter()
            .max_by_key(|p| p.count)
            .map(|p| format!(" (e.g. {})", super::format::clean(&p.message)))
            .unwrap_or_default();
        let line = format!(
            "warning: none of the {} requests so far got an answer{example}: is the server up and the URL right? Ctrl-C stops the run",
            requests.count
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

/// How long a run may go without one answered request before the terminal says so.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(3);

/// Seconds of the live line's rates.
const WINDOW: u64 = 5;

impl Observer for StdoutOutput {
    fn on_start(&mut self, result: &TestResult) -> Result<(), OutputError> {
        let meta = result.meta();
        if result.ended().is_some() {
            // A stored run shown again (`loads report`): nothing is running.
            return Ok(());
        }
        let target = meta
            .server_url
            .as_deref()
            .map(|u| format!(" against {u}"))
            .unwrap_or_default();
        eprintln!("Running {} ({}){target}", meta.test, meta.plan);
        self.recent.clear();
        self.recent.push_back((Instant::now(), 0, 0));
        if self.tty {
            let (len, template) = match (meta.planned_hits, meta.planned_duration) {
                (Some(h), _) => (
                    h,
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} hits  {msg}",
                ),
                (None, Some(d)) => (
                    (d * 1000.0) as u64,
                    "{spinner} [{elapsed_precise}] {wide_bar} {percent}% of the duration  {msg}",
                ),
                (None, None) => (0, "{spinner} [{elapsed_precise}] {msg}"),
            };
            let bar =
                ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(5));
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(bar);
        }
        Ok(())
    }

    fn on_tick(&mut self, result: &TestResult) {
        self.warn_if_unreachable(result);
        self.note_totals(result);
        let meta = result.meta();
        let position = match (meta.planned_hits, meta.planned_duration) {
            (Some(_), _) => result.totals().hits,
            (None, Some(d)) => (result.duration().as_secs_f64().min(d) * 1000.0) as u64,
            _ => 0,
        };
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(self.live(result));
        } else if self.last_plain.elapsed() >= PLAIN_EVERY {
            self.last_plain = Instant::now();
            let planned = match meta.planned_hits {
                Some(h) => format!(" (of {h} planned hits)"),
                None => String::new(),
            };
            eprintln!(
                "[{:>5.0}s] {}{planned}",
                result.duration().as_secs_f64(),
                self.live(result)
            );
        }
    }

    fn on_finish(&mut self, result: &TestResult) -> Result<(), OutputError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let text = render_summary(result);
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| OutputError {
                output: "stdout".into(),
                message: e.to_string(),
            })
    }
}
