//! The instrumented WebSocket client: records `socket_open`, `socket_close` and the size of every
//! message sent and received.

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, protocol::CloseFrame};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::deadline::{Timer, deadline_after};
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
    /// Boxed: with its TLS state and buffers the stream is about 1.4 KB, which every test
    /// future holding the socket would carry (and copy when it moves) inline.
    stream: Box<Stream>,
    recorder: UserRecorder,
    timeout: Duration,
    /// The timer that bounds each [`recv`](Self::recv), kept between messages (`deadline.rs`);
    /// `None` before the first receive or while one has it.
    timer: Option<Timer>,
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
        // Boxed: the handshake's future (TCP connect, TLS, HTTP upgrade) is kilobytes, and
        // inline it made every test future that opens a socket that much larger, copied
        // when the hit starts and again into the timeout (about 550 instructions a message
        // in an echo test of 100 messages a socket).
        let connect = Box::pin(tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            connector,
        ));
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
            stream: Box::new(stream),
            recorder,
            timeout,
            timer: None,
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
        let deadline = deadline_after(tokio::time::Instant::now(), timeout);
        let mut timer = Timer::reuse(self.timer.take(), deadline);
        let result = {
            let inner = std::pin::pin!(self.recv_inner());
            timer.within(deadline, inner).await
        };
        self.timer = Some(timer);
        result.unwrap_or(Err(WsError::Timeout(timeout)))
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
        let result = tokio::time::timeout(timeout, (*self.stream).close(None)).await;
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

    /// A WebSocket server on loopback that sends `script`'s messages after their delays, then
    /// stays silent until the client goes.
    async fn silent_server(script: Vec<(Duration, &'static str)>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            for (delay, text) in script {
                tokio::time::sleep(delay).await;
                if ws.send(tungstenite::Message::text(text)).await.is_err() {
                    return;
                }
            }
            // Silent: read until the client closes.
            while let Some(Ok(_)) = ws.next().await {}
        });
        addr
    }

    #[tokio::test]
    async fn each_receive_is_bounded_by_the_timeout_from_its_own_start() {
        let addr = silent_server(vec![
            (Duration::from_millis(10), "one"),
            // Later than one timeout after the socket opened, within one of the receive.
            (Duration::from_millis(250), "two"),
        ])
        .await;
        let recorder = UserRecorder::new(std::sync::Arc::new(crate::result::Recorder::new(1)), 0);
        let timeout = Duration::from_millis(400);
        let mut ws =
            WebSocket::connect(&format!("ws://{addr}/"), None, recorder, timeout, |_| None)
                .await
                .expect("connect");
        assert_eq!(ws.recv_text().await.expect("first message"), "one");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The kept timer was armed for the first receive (it would fire about 190 ms from
        // now); this receive's own deadline is 400 ms from now, and "two" comes at 60 ms.
        assert_eq!(ws.recv_text().await.expect("second message"), "two");
        let start = std::time::Instant::now();
        match ws.recv().await {
            Err(WsError::Timeout(t)) => assert_eq!(t, timeout),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let waited = start.elapsed();
        assert!(waited >= timeout, "timed out early: {waited:?}");
        assert!(waited < timeout * 5, "timed out late: {waited:?}");
        // And again, with the timer that fired.
        let start = std::time::Instant::now();
        assert!(matches!(ws.recv().await, Err(WsError::Timeout(_))));
        assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
    }

    #[test]
    fn a_websocket_stays_small() {
        // What a test's future holds while a socket is open.
        assert!(
            std::mem::size_of::<WebSocket>() <= 128,
            "{}",
            std::mem::size_of::<WebSocket>()
        );
    }

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
