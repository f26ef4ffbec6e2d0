//! The instrumented WebSocket client: records `socket_open`, `socket_close` and the size of every
//! message sent and received.

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, protocol::CloseFrame};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::result::{Direction, UserRecorder, unix_now};

/// A WebSocket message: text or binary (pings and pongs are answered for you).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An error of the WebSocket client. In a test, `?` turns it into an *error* outcome.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// A relative URL was given but the run has no server URL.
    #[error(
        "no server URL is set, so the WebSocket URL {0:?} cannot be resolved: pass --server-url URL \
         (or set server-url in the config file, or #[loads::suite(server_url = \"http://…\")]; \
         under cargo test, set LOADS_SERVER_URL), or give an absolute ws:// URL"
    )]
    NoServerUrl(String),
    /// The URL could not be parsed or is not ws://, wss://, http:// or https://.
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The connection or handshake failed.
    #[error("WebSocket connection to {url} failed: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// What went wrong.
        #[source]
        source: tungstenite::Error,
    },
    /// Sending or receiving failed.
    #[error("WebSocket error: {0}")]
    Protocol(#[source] tungstenite::Error),
    /// The peer closed the socket.
    #[error("WebSocket closed by the server{}", .0.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    /// Nothing arrived in time.
    #[error("no WebSocket message within {0:?}")]
    Timeout(Duration),
    /// A binary message arrived where text was expected.
    #[error("expected a text WebSocket message, got {0} binary bytes")]
    NotText(usize),
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Callback = Box<dyn FnMut(&Message) + Send>;

/// An open WebSocket whose traffic is recorded. Dropping it counts it as closed.
pub struct WebSocket {
    stream: Stream,
    recorder: UserRecorder,
    timeout: Duration,
    on_message: Option<Callback>,
    open: bool,
}

/// Resolves `url` against `base`, turning http(s) into ws(s).
fn resolve(url: &str, base: Option<&Url>) -> Result<Url, WsError> {
    let invalid = |reason: String| WsError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let mut u = match (Url::parse(url), base) {
        (Ok(u), _) => u,
        (Err(url::ParseError::RelativeUrlWithoutBase), Some(b)) => {
            super::session::join_base(b, url).map_err(|e| invalid(e.to_string()))?
        }
        (Err(url::ParseError::RelativeUrlWithoutBase), None) => {
            return Err(WsError::NoServerUrl(url.to_owned()));
        }
        (Err(e), _) => return Err(invalid(e.to_string())),
    };
    let scheme = match u.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(invalid(format!(
                "scheme {other:?} is not ws, wss, http or https"
            )));
        }
    };
    u.set_scheme(scheme)
        .map_err(|_| invalid("cannot change the scheme".into()))?;
    Ok(u)
}

impl WebSocket {
    /// Opens a WebSocket to `url` (absolute, or relative to `base`), recording into `recorder`;
    /// `timeout` bounds the handshake and each [`recv`](Self::recv). `cookies` gives the
    /// `Cookie` header for the handshake (the user's HTTP cookie jar).
    pub async fn connect(
        url: &str,
        base: Option<&Url>,
        recorder: UserRecorder,
        timeout: Duration,
        cookies: impl FnOnce(&Url) -> Option<String>,
    ) -> Result<WebSocket, WsError> {
        let u = resolve(url, base)?;
        let mut request = u
            .as_str()
            .into_client_request()
            .map_err(|source| WsError::Connect {
                url: u.to_string(),
                source,
            })?;
        let http_url = {
            let mut h = u.clone();
            let _ = h.set_scheme(if u.scheme() == "wss" { "https" } else { "http" });
            h
        };
        if let Some(c) = cookies(&http_url)
            && let Ok(v) = http::HeaderValue::from_str(&c)
        {
            request.headers_mut().insert(http::header::COOKIE, v);
        }
        let connector =
            (u.scheme() == "wss").then(|| Connector::Rustls(super::tls::client_config()));
        // Small buffers (tungstenite's default is 128 KiB each way): thousands of sockets are
        // held open by one process, and messages in load tests are small. Buffers grow for
        // larger messages.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            connector,
        );
        let (stream, _) = match tokio::time::timeout(timeout, connect).await {
            Err(_) => return Err(WsError::Timeout(timeout)),
            Ok(Err(source)) => {
                return Err(WsError::Connect {
                    url: u.to_string(),
                    source,
                });
            }
            Ok(Ok(s)) => s,
        };
        if !recorder.send_raw(|_| crate::result::Event::SocketOpen) {
            recorder.record(|s| s.socket_open());
        }
        Ok(WebSocket {
            stream,
            recorder,
            timeout,
            on_message: None,
            open: true,
        })
    }

    /// Calls `f` with every message received from now on (before [`recv`](Self::recv) returns it).
    pub fn on_message(&mut self, f: impl FnMut(&Message) + Send + 'static) {
        self.on_message = Some(Box::new(f));
    }

    /// Sends a text message.
    pub async fn send(&mut self, text: impl Into<String>) -> Result<(), WsError> {
        let text: String = text.into();
        let size = text.len() as u64;
        self.stream
            .send(tungstenite::Message::text(text))
            .await
            .map_err(WsError::Protocol)?;
        self.message(size, Direction::Sent);
        Ok(())
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: impl Into<Vec<u8>>) -> Result<(), WsError> {
        let data: Vec<u8> = data.into();
        let size = data.len() as u64;
        self.stream
            .send(tungstenite::Message::binary(data))
            .await
            .map_err(WsError::Protocol)?;
        self.message(size, Direction::Sent);
        Ok(())
    }

    /// Waits for the next text or binary message (at most the run's request timeout).
    pub async fn recv(&mut self) -> Result<Message, WsError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.recv_inner()).await {
            Ok(r) => r,
            Err(_) => Err(WsError::Timeout(timeout)),
        }
    }

    async fn recv_inner(&mut self) -> Result<Message, WsError> {
        loop {
            let msg = match self.stream.next().await {
                None => return Err(self.closed(None)),
                Some(Err(e)) => return Err(WsError::Protocol(e)),
                Some(Ok(m)) => m,
            };
            let msg = match msg {
                tungstenite::Message::Text(t) => Message::Text(t.as_str().to_owned()),
                tungstenite::Message::Binary(b) => Message::Binary(b.to_vec()),
                tungstenite::Message::Close(frame) => return Err(self.closed(frame)),
                // Pings are answered by tungstenite on the next read or write.
                _ => continue,
            };
            let size = msg.len() as u64;
            self.message(size, Direction::Received);
            if let Some(f) = self.on_message.as_mut() {
                f(&msg);
            }
            return Ok(msg);
        }
    }

    fn message(&self, size: u64, direction: Direction) {
        if !self
            .recorder
            .send_raw(|_| crate::result::Event::SocketMessage { size, direction })
        {
            self.recorder
                .record(|s| s.socket_message(size, direction, unix_now()));
        }
    }

    fn closed(&mut self, frame: Option<CloseFrame>) -> WsError {
        self.mark_closed();
        WsError::Closed(frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)))
    }

    fn mark_closed(&mut self) {
        if self.open {
            self.open = false;
            if !self
                .recorder
                .send_raw(|_| crate::result::Event::SocketClose)
            {
                self.recorder.record(|s| s.socket_close());
            }
        }
    }

    /// Waits for the next message and expects text.
    pub async fn recv_text(&mut self) -> Result<String, WsError> {
        match self.recv().await? {
            Message::Text(t) => Ok(t),
            Message::Binary(b) => Err(WsError::NotText(b.len())),
        }
    }

    /// Closes the socket politely (close handshake, bounded by the request timeout).
    pub async fn close(mut self) -> Result<(), WsError> {
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, self.stream.close(None)).await;
        self.mark_closed();
        match result {
            Ok(Ok(())) | Ok(Err(tungstenite::Error::ConnectionClosed)) => Ok(()),
            Ok(Err(e)) => Err(WsError::Protocol(e)),
            Err(_) => Err(WsError::Timeout(timeout)),
        }
    }
}

impl Drop for WebSocket {
    fn drop(&mut self) {
        self.mark_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_to_ws_schemes() {
        let base = Url::parse("http://127.0.0.1:9000/").expect("url");
        assert_eq!(
            resolve("/ws", Some(&base)).expect("ok").as_str(),
            "ws://127.0.0.1:9000/ws"
        );
        assert_eq!(
            resolve("https://h/x", None).expect("ok").as_str(),
            "wss://h/x"
        );
        assert!(matches!(resolve("/ws", None), Err(WsError::NoServerUrl(_))));
        assert!(matches!(
            resolve("ftp://h/", None),
            Err(WsError::InvalidUrl { .. })
        ));
    }
}
