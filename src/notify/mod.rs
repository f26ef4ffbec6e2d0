//! End-of-run observers: notifiers the broker calls once when a run ends (`--observer NAME`).
//! `webhook` POSTs the run's summary as JSON to `--observer-webhook-url`; `email` sends it as a
//! plain-text mail to `--observer-email-to` through the SMTP server `--observer-email-smtp`.
//! They run on a thread of their own so that a slow endpoint never holds the broker up.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::config::RunArgs;
use crate::result::Stats;

/// The observers that exist.
pub const OBSERVERS: &[&str] = &["webhook", "email"];

/// What an observer reports about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Why an observer failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    /// The option an observer needs is missing.
    #[error("{0}")]
    Config(String),
    /// The webhook could not be called or answered with an error.
    #[error("webhook: {0}")]
    Webhook(String),
    /// The mail could not be sent.
    #[error("email: {0}")]
    Email(String),
}

/// Checks the observer options of `args`: known names and the options each needs.
pub fn check(args: &RunArgs) -> Result<(), ObserverError> {
    for o in &args.observers {
        match o.as_str() {
            "webhook" if args.observer_webhook_url.is_none() => {
                return Err(ObserverError::Config(
                    "--observer webhook needs --observer-webhook-url URL".into(),
                ));
            }
            "email" if args.observer_email_to.is_none() || args.observer_email_smtp.is_none() => {
                return Err(ObserverError::Config(
                    "--observer email needs --observer-email-to ADDRESS and --observer-email-smtp HOST:PORT".into(),
                ));
            }
            "webhook" | "email" => {}
            other => {
                return Err(ObserverError::Config(format!(
                    "unknown observer {other:?}; available observers: {}",
                    OBSERVERS.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Calls every observer of `args` with `summary`; returns the errors (one per failed observer).
pub fn notify_all(args: &RunArgs, summary: &RunSummary) -> Vec<ObserverError> {
    let mut errors = Vec::new();
    for o in &args.observers {
        let r = match o.as_str() {
            "webhook" => webhook(args, summary),
            "email" => email(args, summary),
            other => Err(ObserverError::Config(format!("unknown observer {other:?}"))),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    errors
}

fn webhook(args: &RunArgs, summary: &RunSummary) -> Result<(), ObserverError> {
    let url = args
        .observer_webhook_url
        .as_deref()
        .ok_or_else(|| ObserverError::Config("no --observer-webhook-url".into()))?;
    let url = url::Url::parse(url)
        .map_err(|e| ObserverError::Webhook(format!("invalid URL {url:?}: {e}")))?;
    let body = serde_json::to_vec(summary).map_err(|e| ObserverError::Webhook(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ObserverError::Webhook(e.to_string()))?;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let client = crate::measure::client::Client::new(Duration::from_secs(10));
    let res = rt
        .block_on(client.send(
            crate::measure::client::Outgoing {
                method: http::Method::POST,
                url: std::sync::Arc::new(url),
                headers,
                body: Some(body.into()),
            },
            None,
        ))
        .map_err(|e| ObserverError::Webhook(e.to_string()))?;
    if !res.status.is_success() {
        return Err(ObserverError::Webhook(format!(
            "the endpoint answered {}",
            res.status
        )));
    }
    Ok(())
}

fn email(args: &RunArgs, summary: &RunSummary) -> Result<(), ObserverError> {
    use lettre::Transport as _;
    let to = args.observer_email_to.as_deref().unwrap_or_default();
    let smtp = args.observer_email_smtp.as_deref().unwrap_or_default();
    let (host, port) = smtp
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            ObserverError::Email(format!(
                "--observer-email-smtp {smtp:?}: expected HOST:PORT"
            ))
        })?;
    let from = args
        .observer_email_from
        .clone()
        .unwrap_or_else(|| "loads@localhost".into());
    let message = lettre::Message::builder()
        .from(
            from.parse()
                .map_err(|e| ObserverError::Email(format!("sender {from:?}: {e}")))?,
        )
        .to(to
            .parse()
            .map_err(|e| ObserverError::Email(format!("recipient {to:?}: {e}")))?)
        .subject(format!(
            "loads: run {} of {} {}",
            summary.run_id, summary.test, summary.status
        ))
        .body(summary.text())
        .map_err(|e| ObserverError::Email(e.to_string()))?;
    // Plain SMTP: the mail relays that load-test clusters use sit on their own network.
    let transport = lettre::SmtpTransport::builder_dangerous(host)
        .port(port)
        .timeout(Some(Duration::from_secs(10)))
        .build();
    transport
        .send(&message)
        .map_err(|e| ObserverError::Email(e.to_string()))?;
    Ok(())
}
