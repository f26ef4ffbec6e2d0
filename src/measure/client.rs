//! A lean HTTP/1.1 client: what each virtual user owns. It keeps the user's idle keep-alive
//! connections (a small pool per origin) and cookie jar; the TLS configuration and the DNS cache
//! are shared by every user.
//!
//! Requests enter through [`Client::send`] (from the [`Session`](super::Session)); the response
//! leaves with its whole body read, after redirects, with its cookies stored and within the
//! timeout. The bytes are the codec's (`codec.rs`: request writing, head parsing with `httparse`
//! without copying, body framing) and the sockets the connection's (`connection.rs`: one write
//! per request, reads only when the socket has data); this file holds the pool, redirects,
//! cookies and timeouts. The header map is built only when a test asks for it, so that a plain
//! GET costs little more than its two syscalls.

use bytes::Bytes;
use cookie_store::CookieStore;
use http::Method;
use http::StatusCode;
use http::header::{self, HeaderMap};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

use super::codec::{self, CodecError, Head};
use super::connection::{self, Connection, ConnectionError};
use super::deadline::{Timer, deadline_after};

pub use super::codec::Outgoing;

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 10;
/// Idle connections kept per user.
const MAX_IDLE: usize = 8;

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// DNS resolution failed.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The TCP connection failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried last.
        addr: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        /// The host.
        host: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("connection error: {0}")]
    Io(#[source] io::Error),
    /// The server closed the connection before answering.
    #[error("the server closed the connection without answering")]
    Closed,
    /// The response is not valid HTTP/1.x.
    #[error("invalid HTTP response: {0}")]
    Protocol(CodecError),
    /// No complete response within the timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    /// The URL is not http:// or https://, or has no host.
    #[error("unsupported URL {0:?}: only http:// and https:// URLs with a host are supported")]
    Url(String),
}

impl From<ConnectionError> for ClientError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Resolve { host, source } => ClientError::Resolve { host, source },
            ConnectionError::Connect { addr, source } => ClientError::Connect { addr, source },
            ConnectionError::Tls { host, source } => ClientError::Tls { host, source },
            ConnectionError::Io(e) => ClientError::Io(e),
            ConnectionError::Closed => ClientError::Closed,
            ConnectionError::Protocol(e) => ClientError::Protocol(e),
        }
    }
}

/// A response with its body read. Headers are parsed from the raw head on first use.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status.
    pub status: StatusCode,
    /// The final URL (after redirects).
    pub url: Arc<Url>,
    /// The body.
    pub body: Bytes,
    head: Bytes,
    /// Boxed: parsed on demand only, and a response is moved a few times on every request.
    headers: OnceLock<Box<HeaderMap>>,
}

impl RawResponse {
    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
            .get_or_init(|| Box::new(codec::header_map(&self.head)))
    }
}

/// The HTTP client of one virtual user.
pub struct Client {
    /// Idle keep-alive connections, boxed: a connection moves in and out of the pool on every
    /// request, and the request's future holds it while it is in flight (a pointer, not the
    /// connection's 200 bytes, in every future above it).
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<Connection>>>,
    cookies: Mutex<CookieStore>,
    /// Whether the jar was ever given a cookie: an empty jar is not locked nor searched.
    has_cookies: AtomicBool,
    /// The timer that bounds this user's requests (`deadline.rs`); `None` while a request has
    /// it, or before the first request.
    timer: Mutex<Option<Timer>>,
    timeout: Duration,
}

impl Client {
    /// A client whose requests time out after `timeout` (each, redirects included).
    pub fn new(timeout: Duration) -> Self {
        Client {
            idle: Mutex::new(Vec::new()),
            cookies: Mutex::new(CookieStore::default()),
            has_cookies: AtomicBool::new(false),
            timer: Mutex::new(None),
            timeout,
        }
    }

    /// The `Cookie` header value this user's jar holds for `url`, if any.
    pub fn cookie_header(&self, url: &Url) -> Option<String> {
        if !self.has_cookies.load(Ordering::Relaxed) {
            return None;
        }
        let jar = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
        let mut it = jar.get_request_values(url).peekable();
        it.peek()?;
        Some(
            it.map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// The default per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `req`, follows redirects, stores cookies, and returns the final response.
    pub async fn send(
        &self,
        req: Outgoing,
        timeout: Option<Duration>,
    ) -> Result<RawResponse, ClientError> {
        self.send_at(std::time::Instant::now(), &req, timeout).await
    }

    /// [`send`](Self::send), with the timeout counted from `start` (the caller's own reading
    /// of the clock: one reading less per request). The request is borrowed, not moved: the
    /// future of every request holds a reference, not a copy (a redirect makes its own).
    pub async fn send_at(
        &self,
        start: std::time::Instant,
        req: &Outgoing,
        timeout: Option<Duration>,
    ) -> Result<RawResponse, ClientError> {
        let timeout = timeout.unwrap_or(self.timeout);
        // One exchange future in this future's state, not one per branch (it is most of the
        // size of a virtual user's hit future, which is held while the request is in flight):
        // a timeout beyond what the clock can express waits a year.
        let deadline = deadline_after(Instant::from_std(start), timeout);
        let kept = self
            .timer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut timer = Timer::reuse(kept, deadline);
        let exchange = std::pin::pin!(self.send_inner(req));
        let result = timer.within(deadline, exchange).await;
        *self.timer.lock().unwrap_or_else(PoisonError::into_inner) = Some(timer);
        result.unwrap_or(Err(ClientError::Timeout(timeout)))
    }

    async fn send_inner(&self, first: &Outgoing) -> Result<RawResponse, ClientError> {
        // The request a redirect leads to, boxed (redirects are rare; the future stays small).
        let mut redirected: Option<Box<Outgoing>> = None;
        for _ in 0..=MAX_REDIRECTS {
            let req = redirected.as_deref().unwrap_or(first);
            let (head, body) = self.exchange(req).await?;
            if head.sets_cookies {
                let mut jar = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
                for c in codec::set_cookies(&head.raw) {
                    if jar.parse(&c, &req.url).is_ok() {
                        self.has_cookies.store(true, Ordering::Relaxed);
                    }
                }
            }
            let location = match head.status.as_u16() {
                301 | 302 | 303 | 307 | 308 => {
                    let headers = codec::header_map(&head.raw);
                    headers
                        .get(header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .and_then(|l| req.url.join(l).ok())
                }
                _ => None,
            };
            let Some(next) = location else {
                return Ok(RawResponse {
                    status: head.status,
                    url: req.url.clone(),
                    body,
                    head: head.raw,
                    headers: OnceLock::new(),
                });
            };
            let mut req = match redirected.take() {
                Some(r) => r,
                None => Box::new(Outgoing {
                    method: first.method.clone(),
                    url: first.url.clone(),
                    headers: first.headers.clone(),
                    body: first.body.clone(),
                }),
            };
            if matches!(head.status.as_u16(), 301..=303) && req.method != Method::HEAD {
                req.method = Method::GET;
                req.body = None;
                req.headers.remove(header::CONTENT_TYPE);
                req.headers.remove(header::CONTENT_LENGTH);
            }
            if next.origin() != req.url.origin() {
                req.headers.remove(header::AUTHORIZATION);
                req.headers.remove(header::COOKIE);
            }
            req.url = Arc::new(next);
            redirected = Some(req);
        }
        Err(ClientError::TooManyRedirects)
    }

    fn take_idle(&self, tls: bool, host: &str, port: u16) -> Option<Box<Connection>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let i = idle.iter().rposition(|c| c.serves(tls, host, port))?;
        Some(idle.swap_remove(i))
    }

    fn put_idle(&self, c: Box<Connection>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            // Most users keep one connection: room for one (a first push would make room for
            // four, about 700 bytes per user).
            if idle.capacity() == 0 {
                idle.reserve_exact(1);
            }
            idle.push(c);
        }
    }

    /// One request and its response on one connection (a reused one first, and a new one when
    /// the reused one turns out to be closed).
    async fn exchange(&self, req: &Outgoing) -> Result<(Head, Bytes), ClientError> {
        let url = &req.url;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(ClientError::Url(url.to_string())),
        };
        let host = url
            .host_str()
            .ok_or_else(|| ClientError::Url(url.to_string()))?;
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let cookie = self.cookie_header(url);
        // Connecting is rare next to reusing: its future is boxed so that the common path's
        // future stays small.
        let (mut conn, mut reused) = match self.take_idle(tls, host, port) {
            Some(c) => (c, true),
            None => (
                Box::new(Box::pin(connection::connect(tls, host, port)).await?),
                false,
            ),
        };
        loop {
            match conn.round_trip(req, cookie.as_deref()).await {
                Ok((head, body)) => {
                    if head.keep_alive {
                        self.put_idle(conn);
                    }
                    return Ok((head, body));
                }
                Err(e) if reused && e.stale_connection() => {
                    conn = Box::new(Box::pin(connection::connect(tls, host, port)).await?);
                    reused = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    /// Serves the given raw responses, one per request, on a loopback port.
    async fn raw_server(
        responses: Vec<&'static [u8]>,
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut seen = Vec::new();
            for r in responses {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.expect("read");
                    if n == 0 {
                        return seen;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                seen.push(String::from_utf8_lossy(&got).into_owned());
                s.write_all(r).await.expect("write");
            }
            seen
        });
        (url, h)
    }

    fn get(url: &str) -> Outgoing {
        Outgoing {
            method: Method::GET,
            url: Arc::new(Url::parse(url).expect("url")),
            headers: super::codec::Headers::new(),
            body: None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_timer_wakes_whichever_task_waits_and_after_each_reset() {
        // A server that answers the first requests at once, then never again.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", l.local_addr().expect("addr"));
        let _server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            for _ in 0..3 {
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let c = std::sync::Arc::new(Client::new(Duration::from_secs(1)));
        // Task A registers the timer's waker on its requests (the second with an earlier
        // deadline, which resets the timer).
        let a = c.clone();
        let u = url.clone();
        tokio::spawn(async move {
            assert_eq!(a.send(get(&u), None).await.expect("one").status, 200);
            let short = Some(Duration::from_millis(600));
            assert_eq!(a.send(get(&u), short).await.expect("two").status, 200);
        })
        .await
        .expect("task a");
        // Task B waits on the same timer with later deadlines (no reset): the timer must wake
        // B, not A, which has ended, and B's request must time out at its deadline.
        let b = c.clone();
        let u = url.clone();
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::spawn(async move {
                assert_eq!(b.send(get(&u), None).await.expect("three").status, 200);
                b.send(get(&u), None).await
            }),
        )
        .await
        .expect("task b was never woken")
        .expect("task b");
        assert!(matches!(r, Err(ClientError::Timeout(_))), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// Responses larger than a connection's first read buffer (2 KiB): a head of 3 KiB, a
    /// body of 20 KiB by length and one of 10 KiB in chunks, on one keep-alive connection.
    #[tokio::test]
    async fn heads_and_bodies_larger_than_the_read_buffer() {
        let long_header = "x".repeat(3000);
        let body = "b".repeat(20_000);
        let chunk = "c".repeat(5_000);
        let r1 = format!("HTTP/1.1 200 OK\r\nX-Long: {long_header}\r\nContent-Length: 2\r\n\r\nok");
        let r2 = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r3 = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len(),
            chunk.len()
        );
        let leak = |s: String| -> &'static [u8] { Box::leak(s.into_bytes().into_boxed_slice()) };
        let (url, _server) = raw_server(vec![leak(r1), leak(r2), leak(r3)]).await;
        let url = format!("{url}/");
        let c = Client::new(Duration::from_secs(5));
        let a = c.send(get(&url), None).await.expect("long head");
        assert_eq!(&a.body[..], b"ok");
        let b = c.send(get(&url), None).await.expect("long body");
        assert_eq!(b.body.len(), 20_000);
        assert!(b.body.iter().all(|&x| x == b'b'));
        let ch = c.send(get(&url), None).await.expect("chunked body");
        assert_eq!(ch.body.len(), 10_000);
        assert!(ch.body.iter().all(|&x| x == b'c'));
    }

    #[tokio::test]
    async fn body_to_end_of_connection_and_timeouts() {
        let (url, _server) = raw_server(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil close"]).await;
        let c = Client::new(Duration::from_secs(5));
        let handle = tokio::spawn(async move { c.send(get(&url), None).await });
        // The test server closes after its last response, which ends the body.
        let r = handle.await.expect("join").expect("response");
        assert_eq!(&r.body[..], b"until close");

        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", l.local_addr().expect("addr"));
        let _keep = tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let c = Client::new(Duration::from_millis(200));
        assert!(matches!(
            c.send(get(&url), None).await,
            Err(ClientError::Timeout(_))
        ));
    }
}
