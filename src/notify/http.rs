//! The notifiers that POST JSON over HTTP: `webhook` (the run's whole summary) and `chat`
//! (`{"text": …}`, what Slack's and Matrix hookshot's incoming webhooks take). The run's
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

/// `chat`: POSTs `{"text": …}`, a few lines of `summary`, to `--notify-chat-url`.
pub(super) fn chat(args: &NotifyArgs, summary: &RunSummary) -> Result<(), NotifyError> {
    let url = args
        .chat_url
        .as_deref()
        .ok_or_else(|| NotifyError::Config("no --notify-chat-url".into()))?;
    let body = serde_json::to_vec(&serde_json::json!({ "text": summary.chat_text() }))
        .map_err(|e| NotifyError::Chat(e.to_string()))?;
    post_json(url, body).map_err(NotifyError::Chat)
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
                headers: headers.into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    /// A one-request HTTP server on 127.0.0.1 that answers `status`: returns the request's
    /// head and body.
    fn listener(status: &'static str) -> (String, std::thread::JoinHandle<(String, String)>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/hooks/T0/B0/secret-part",
            l.local_addr().expect("addr")
        );
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = s.read(&mut buf).unwrap_or(0);
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .and_then(|v| v.trim().parse::<usize>().ok())
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len || n == 0 {
                        break (text[..end].to_owned(), text[end + 4..].to_owned());
                    }
                }
                if n == 0 || got.len() > 1 << 20 {
                    break (text, String::new());
                }
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
            (head, body)
        });
        (url, h)
    }

    fn summary() -> RunSummary {
        RunSummary {
            run_id: "r7".into(),
            test: "example::get_root".into(),
            status: "finished".into(),
            duration: 4.25,
            hits: 1200,
            failures: 3,
            errors: 1,
            p95_ms: 12.5,
            ..RunSummary::default()
        }
    }

    #[test]
    fn chat_posts_a_text_with_the_runs_main_figures() {
        let (url, got) = listener("200 OK");
        let args = NotifyArgs {
            notifiers: vec!["chat".into()],
            chat_url: Some(url),
            ..Default::default()
        };
        super::super::check(&args).expect("chat with its URL");
        chat(&args, &summary()).expect("posted");
        let (head, body) = got.join().expect("listener");
        assert!(
            head.starts_with("POST /hooks/T0/B0/secret-part HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 1, "only `text`: {body}");
        let text = v["text"].as_str().expect("text");
        for part in [
            "run r7",
            "example::get_root",
            "finished",
            "Hits: 1200",
            "3 failures",
            "1 errors",
            "p95 12.50 ms",
            "4.2 s",
        ] {
            assert!(text.contains(part), "{part:?} not in {text:?}");
        }
    }

    #[test]
    fn chat_errors_are_named_and_keep_the_webhooks_secret_path() {
        let (url, got) = listener("403 Forbidden");
        let args = NotifyArgs {
            chat_url: Some(url),
            ..Default::default()
        };
        let e = chat(&args, &summary()).expect_err("403").to_string();
        let _ = got.join();
        assert!(
            e.starts_with("chat: http://127.0.0.1:") && e.contains("403"),
            "{e}"
        );
        assert!(!e.contains("secret-part"), "{e}");
        // Nobody listening: a named error within the bound, not a hang.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/x", closed.local_addr().expect("addr"));
        drop(closed);
        let started = std::time::Instant::now();
        let e = chat(
            &NotifyArgs {
                chat_url: Some(url),
                ..Default::default()
            },
            &summary(),
        )
        .expect_err("refused")
        .to_string();
        assert!(e.starts_with("chat: "), "{e}");
        assert!(started.elapsed() <= REQUEST_TIMEOUT + Duration::from_secs(2));
        let e = super::super::check(&NotifyArgs {
            notifiers: vec!["chat".into()],
            ..Default::default()
        })
        .expect_err("no URL");
        assert!(e.to_string().contains("--notify-chat-url"), "{e}");
    }
}
