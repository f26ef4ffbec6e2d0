//! The notifiers that POST JSON over HTTP: `webhook` (the run's whole summary). The run's
//! [`RunSummary`] enters; one request with a bounded wait leaves, through loads' own HTTP
//! client (the one the tests use), and a [`NotifyError`] naming the notifier when the endpoint
//! cannot be reached or answers with an error.

use std::time::Duration;

use super::{NotifyError, RunSummary};
use crate::config::NotifyArgs;

/// How long a notifier's request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `webhook`: POSTs `summary` as JSON to `--notify-webhook-url`.
pub(super) fn webhook(args: &NotifyArgs, summary: &RunSummary) -> Result<(), NotifyError> {
    let url = args
        .webhook_url
        .as_deref()
        .ok_or_else(|| NotifyError::Config("no --notify-webhook-url".into()))?;
    let body = serde_json::to_vec(summary).map_err(|e| NotifyError::Webhook(e.to_string()))?;
    post_json(url, body).map_err(NotifyError::Webhook)
}

/// POSTs `body` (JSON) to `url` and waits at most [`REQUEST_TIMEOUT`] for a 2xx answer; the
/// error says what went wrong, for its notifier to name. It names the endpoint by its origin
/// only: the path of a chat's incoming webhook is its secret.
fn post_json(url: &str, body: Vec<u8>) -> Result<(), String> {
    let parsed = url::Url::parse(url)
        .map_err(|e| format!("invalid URL (it must be http:// or https://…): {e}"))?;
    let origin = parsed.origin().ascii_serialization();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let client = crate::measure::client::Client::new(REQUEST_TIMEOUT);
    let res = rt
        .block_on(client.send(
            crate::measure::client::Outgoing {
                method: http::Method::POST,
                url: std::sync::Arc::new(parsed),
                headers,
                body: Some(body.into()),
            },
            None,
        ))
        .map_err(|e| format!("{origin}: {e}"))?;
    if !res.status.is_success() {
        return Err(format!("{origin} answered {}", res.status));
    }
    Ok(())
}
