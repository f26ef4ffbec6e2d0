//! End-of-run notifiers: what the broker calls once when a run ends (`--notify NAME`; the
//! earlier `--observer` spelling still works). `webhook` POSTs the run's summary as JSON to
//! `--notify-webhook-url` and `chat` a few lines of it as `{"text": …}` to `--notify-chat-url`
//! (a Slack or Matrix hookshot incoming webhook) (`http`); `email` sends it as a plain-text mail to
//! `--notify-email-to` through the SMTP server `--notify-email-smtp`, with a login, TLS and a
//! subject of the run's choosing (`email`). Their options enter as [`NotifyArgs`], checked by
//! [`check`] on the caller before the run starts and again where they are used; the run's
//! [`RunSummary`] enters at the end, and what leaves is a request, a mail, or a [`NotifyError`]
//! naming the notifier. They run on a thread of their own so that a slow endpoint never holds
//! the broker up.

mod email;
mod http;

use serde::{Deserialize, Serialize};

use crate::config::NotifyArgs;
use crate::result::Stats;

/// The notifiers that exist.
pub const NOTIFIERS: &[&str] = &["webhook", "email", "chat"];

/// What a notifier reports about a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run.
    pub run_id: String,
    /// Its test.
    pub test: String,
    /// `finished`, `stopped` or `failed`.
    pub status: String,
    /// Seconds it lasted.
    pub duration: f64,
    /// Hits (test runs).
    pub hits: u64,
    /// Successful hits.
    pub successes: u64,
    /// Failed hits.
    pub failures: u64,
    /// Errored hits.
    pub errors: u64,
    /// HTTP requests.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median request time, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Agents the run had.
    pub agents: u64,
    /// Agents lost during the run.
    pub lost_agents: Vec<String>,
    /// Problems of the run itself.
    pub problems: Vec<String>,
}

impl RunSummary {
    /// The summary of a run from its merged statistics.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: &str,
        test: &str,
        status: &str,
        duration: f64,
        stats: &Stats,
        agents: u64,
        lost_agents: Vec<String>,
        problems: Vec<String>,
    ) -> Self {
        let t = stats.totals();
        let l = &stats.requests.latency;
        let ms = |q: f64| {
            if l.is_empty() {
                0.0
            } else {
                l.quantile(q) as f64 / 1000.0
            }
        };
        RunSummary {
            run_id: run_id.to_owned(),
            test: test.to_owned(),
            status: status.to_owned(),
            duration,
            hits: t.hits,
            successes: t.successes,
            failures: t.failures,
            errors: t.errors,
            requests: stats.requests.count,
            rps: if duration > 0.0 {
                stats.requests.count as f64 / duration
            } else {
                0.0
            },
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            agents,
            lost_agents,
            problems,
        }
    }

    /// The summary as a few lines of text (the mail's body).
    pub fn text(&self) -> String {
        let mut s = format!(
            "Run {} of {}: {}\nDuration: {:.1} s\nHits: {} ({} successes, {} failures, {} errors)\nRequests: {} ({:.1}/s)\nRequest time: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms\nAgents: {}\n",
            self.run_id,
            self.test,
            self.status,
            self.duration,
            self.hits,
            self.successes,
            self.failures,
            self.errors,
            self.requests,
            self.rps,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.agents
        );
        for a in &self.lost_agents {
            s.push_str(&format!("Lost agent: {a}\n"));
        }
        for p in &self.problems {
            s.push_str(&format!("Problem: {p}\n"));
        }
        s
    }
}

impl RunSummary {
    /// The summary as a chat message: the run, its verdict, then its main figures.
    pub fn chat_text(&self) -> String {
        let mut s = format!(
            "loads: run {} of {} {}\nHits: {} ({} failures, {} errors) · p95 {:.2} ms · {:.1} s",
            self.run_id,
            self.test,
            self.status,
            self.hits,
            self.failures,
            self.errors,
            self.p95_ms,
            self.duration
        );
        if !self.lost_agents.is_empty() {
            s.push_str(&format!("\nLost agents: {}", self.lost_agents.join(", ")));
        }
        if !self.problems.is_empty() {
            s.push_str(&format!(
                "\n{} problem(s), the first: {}",
                self.problems.len(),
                self.problems[0]
            ));
        }
        s
    }
}

/// Why a notifier failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The option a notifier needs is missing.
    #[error("{0}")]
    Config(String),
    /// The webhook could not be called or answered with an error.
    #[error("webhook: {0}")]
    Webhook(String),
    /// The mail could not be sent.
    #[error("email: {0}")]
    Email(String),
    /// The chat's webhook could not be called or answered with an error.
    #[error("chat: {0}")]
    Chat(String),
}

/// Checks the notifier options of `args`: known names and the options each needs.
pub fn check(args: &NotifyArgs) -> Result<(), NotifyError> {
    for o in &args.notifiers {
        match o.as_str() {
            "webhook" if args.webhook_url.is_none() => {
                return Err(NotifyError::Config(
                    "--notify webhook needs --notify-webhook-url URL".into(),
                ));
            }
            "email" => {
                email::Settings::of(args)?;
            }
            "chat" if args.chat_url.is_none() => {
                return Err(NotifyError::Config(
                    "--notify chat needs --notify-chat-url URL (a Slack or Matrix incoming webhook)"
                        .into(),
                ));
            }
            "webhook" | "chat" => {}
            other => {
                return Err(NotifyError::Config(format!(
                    "unknown notifier {other:?}; available notifiers: {}",
                    NOTIFIERS.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Calls every notifier of `args` with `summary`; returns the errors (one per failed notifier).
pub fn notify_all(args: &NotifyArgs, summary: &RunSummary) -> Vec<NotifyError> {
    let mut errors = Vec::new();
    for o in &args.notifiers {
        let r = match o.as_str() {
            "webhook" => http::webhook(args, summary),
            "email" => email::send(args, summary),
            "chat" => http::chat(args, summary),
            other => Err(NotifyError::Config(format!("unknown notifier {other:?}"))),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    errors
}
