//! A lean HTTP/1.1 client: what each virtual user owns. It keeps the user's idle keep-alive
//! connections and cookie jar; the TLS configuration and the DNS cache are shared by every user.
//!
//! Requests enter through [`Client::send`] (from the [`Session`](super::Session)); the response
//! leaves with its whole body read. The client writes a request in one write and reads only when
//! the socket has data, parses heads with `httparse` without copying, and builds the header map
//! only when a test asks for it, so that a plain GET costs little more than its two syscalls.
//! Buffers start at 4 KiB and grow only for large responses.

use bytes::{Buf as _, Bytes, BytesMut};
use cookie_store::CookieStore;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use std::io;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use url::Url;

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 10;
/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
pub const MAX_BODY: usize = 256 * 1024 * 1024;
/// Idle connections kept per user.
const MAX_IDLE: usize = 8;
/// Initial read buffer of a connection.
const READ_BUF: usize = 4096;

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
    Protocol(String),
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

impl ClientError {
    /// Whether a request that failed this way on a reused keep-alive connection may be sent again
    /// on a new one (the server closed the idle connection before reading the request).
    fn stale_connection(&self) -> bool {
        match self {
            ClientError::Closed => true,
            ClientError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
        }
    }
}

/// One keep-alive connection to one origin.
struct Connection {
    tls: bool,
    host: String,
    port: u16,
    stream: Stream,
    buf: BytesMut,
    out: Vec<u8>,
}

impl Connection {
    fn serves(&self, tls: bool, host: &str, port: u16) -> bool {
        self.tls == tls && self.port == port && self.host == host
    }

    /// Reads what the socket has (at least one byte unless the stream ended), growing the
    /// buffer when it is nearly full; returns how many bytes came.
    async fn fill(&mut self) -> Result<usize, ClientError> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(READ_BUF);
        }
        self.stream
            .read_buf(&mut self.buf)
            .await
            .map_err(ClientError::Io)
    }

    /// Reads more bytes; end of stream is an error (`what` says where it happened).
    async fn read_more(&mut self, what: &str) -> Result<(), ClientError> {
        if self.fill().await? == 0 {
            return Err(ClientError::Protocol(format!(
                "the connection closed {what}"
            )));
        }
        Ok(())
    }
}

/// What the head of a response says about the rest.
struct Head {
    status: StatusCode,
    raw: Bytes,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
    sets_cookies: bool,
}

/// A parsed response head: its length in the buffer and what it says about the body.
struct HeadInfo {
    len: usize,
    status: StatusCode,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
    sets_cookies: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<HeadInfo>, ClientError> {
    // Uninitialised header slots: httparse fills only what it finds (no 2 KiB memset per
    // response). Heads with more headers are parsed again with a larger heap array.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 48];
    let mut many;
    let mut res = httparse::Response::new(&mut []);
    let parsed = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut headers,
    ) {
        Err(httparse::Error::TooManyHeaders) => {
            many = vec![httparse::EMPTY_HEADER; 1024];
            res = httparse::Response::new(&mut many);
            res.parse(buf)
        }
        other => other,
    };
    let n = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ClientError::Protocol(e.to_string())),
    };
    let code = res.code.unwrap_or(0);
    let status = StatusCode::from_u16(code)
        .map_err(|_| ClientError::Protocol(format!("bad status code {code}")))?;
    let mut content_length = None;
    let mut chunked = false;
    let mut keep_alive = res.version == Some(1);
    let mut sets_cookies = false;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("set-cookie") {
            sets_cookies = true;
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok());
            content_length =
                Some(v.ok_or_else(|| ClientError::Protocol("bad Content-Length".into()))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|b| *b == b',')
                .next_back()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    Ok(Some(HeadInfo {
        len: n,
        status,
        content_length,
        chunked,
        keep_alive,
        sets_cookies,
    }))
}

/// Parses the header lines of a raw response head into a header map.
fn header_map(raw: &[u8]) -> HeaderMap {
    let mut headers = vec![httparse::EMPTY_HEADER; 1024];
    let mut res = httparse::Response::new(&mut headers);
    let mut map = HeaderMap::new();
    if res.parse(raw).is_ok() {
        for h in res.headers.iter() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(h.name.as_bytes()),
                HeaderValue::from_bytes(h.value),
            ) {
                map.append(n, v);
            }
        }
    }
    map
}

fn set_cookies(raw: &[u8]) -> Vec<String> {
    let mut headers = vec![httparse::EMPTY_HEADER; 1024];
    let mut res = httparse::Response::new(&mut headers);
    if res.parse(raw).is_err() {
        return Vec::new();
    }
    res.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|h| std::str::from_utf8(h.value).ok().map(str::to_owned))
        .collect()
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
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
    headers: OnceLock<HeaderMap>,
}

impl RawResponse {
    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers.get_or_init(|| header_map(&self.head))
    }
}

/// The parts of a request.
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: Arc<Url>,
    /// Headers set by the test.
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<Bytes>,
}

/// The HTTP client of one virtual user.
pub struct Client {
    idle: Mutex<Vec<Connection>>,
    cookies: Mutex<CookieStore>,
    timeout: Duration,
}

/// The TLS connector on the shared configuration.
fn tls_connector() -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(super::tls::client_config())
}

impl Client {
    /// A client whose requests time out after `timeout` (each, redirects included).
    pub fn new(timeout: Duration) -> Self {
        Client {
            idle: Mutex::new(Vec::new()),
            cookies: Mutex::new(CookieStore::default()),
            timeout,
        }
    }

    /// The `Cookie` header value this user's jar holds for `url`, if any.
    pub fn cookie_header(&self, url: &Url) -> Option<String> {
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
        let timeout = timeout.unwrap_or(self.timeout);
        match tokio::time::timeout_at(Instant::now() + timeout, self.send_inner(req)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    async fn send_inner(&self, mut req: Outgoing) -> Result<RawResponse, ClientError> {
        for _ in 0..=MAX_REDIRECTS {
            let (head, body) = self.exchange(&req).await?;
            if head.sets_cookies {
                let mut jar = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
                for c in set_cookies(&head.raw) {
                    let _ = jar.parse(&c, &req.url);
                }
            }
            let location = match head.status.as_u16() {
                301 | 302 | 303 | 307 | 308 => {
                    let headers = header_map(&head.raw);
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
                    url: req.url,
                    body,
                    head: head.raw,
                    headers: OnceLock::new(),
                });
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
        }
        Err(ClientError::TooManyRedirects)
    }

    fn take_idle(&self, tls: bool, host: &str, port: u16) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let i = idle.iter().rposition(|c| c.serves(tls, host, port))?;
        Some(idle.swap_remove(i))
    }

    fn put_idle(&self, c: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
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
            None => (Box::pin(connect(tls, host, port)).await?, false),
        };
        loop {
            match self.round_trip(&mut conn, req, cookie.as_deref()).await {
                Ok((head, body)) => {
                    if head.keep_alive {
                        self.put_idle(conn);
                    }
                    return Ok((head, body));
                }
                Err(e) if reused && e.stale_connection() => {
                    conn = Box::pin(connect(tls, host, port)).await?;
                    reused = false;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn round_trip(
        &self,
        conn: &mut Connection,
        req: &Outgoing,
        cookie: Option<&str>,
    ) -> Result<(Head, Bytes), ClientError> {
        write_request(&mut conn.out, req, cookie);
        conn.stream
            .write_all(&conn.out)
            .await
            .map_err(ClientError::Io)?;
        if conn.out.capacity() > 64 * 1024 {
            conn.out = Vec::new();
        }
        read_response(conn, req.method == Method::HEAD).await
    }
}

async fn connect(tls: bool, host: &str, port: u16) -> Result<Connection, ClientError> {
    let addrs = super::dns::resolve(host, port)
        .await
        .map_err(|source| ClientError::Resolve {
            host: host.to_owned(),
            source,
        })?;
    let mut last = None;
    let mut tcp = None;
    for addr in addrs.iter() {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some((addr.to_string(), e)),
        }
    }
    let tcp = match (tcp, last) {
        (Some(s), _) => s,
        (None, Some((addr, source))) => return Err(ClientError::Connect { addr, source }),
        (None, None) => {
            return Err(ClientError::Resolve {
                host: host.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let stream = if tls {
        let name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|e| ClientError::Tls {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        let s = tls_connector()
            .connect(name, tcp)
            .await
            .map_err(|source| ClientError::Tls {
                host: host.to_owned(),
                source,
            })?;
        Stream::Tls(Box::new(s))
    } else {
        Stream::Plain(tcp)
    };
    Ok(Connection {
        tls,
        host: host.to_owned(),
        port,
        stream,
        buf: BytesMut::with_capacity(READ_BUF),
        out: Vec::with_capacity(256),
    })
}

/// Appends `n` in decimal (without going through `fmt`).
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn write_request(out: &mut Vec<u8>, req: &Outgoing, cookie: Option<&str>) {
    let url = &req.url;
    out.clear();
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(url.path().as_bytes());
    if let Some(q) = url.query() {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers.contains_key(header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(url.host_str().unwrap_or("").as_bytes());
        if let Some(p) = url.port() {
            out.push(b':');
            push_decimal(out, p as usize);
        }
        out.extend_from_slice(b"\r\n");
    }
    if !req.headers.contains_key(header::USER_AGENT) {
        out.extend_from_slice(
            concat!("user-agent: loads/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes(),
        );
    }
    if !req.headers.contains_key(header::ACCEPT) {
        out.extend_from_slice(b"accept: */*\r\n");
    }
    if let Some(c) = cookie
        && !req.headers.contains_key(header::COOKIE)
    {
        out.extend_from_slice(b"cookie: ");
        out.extend_from_slice(c.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (k, v) in req.headers.iter() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framed = req.headers.contains_key(header::CONTENT_LENGTH)
        || req.headers.contains_key(header::TRANSFER_ENCODING);
    match &req.body {
        Some(b) if !framed => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, b.len());
            out.extend_from_slice(b"\r\n");
        }
        None if !framed && matches!(req.method, Method::POST | Method::PUT | Method::PATCH) => {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    if let Some(b) = &req.body {
        out.extend_from_slice(b);
    }
}

async fn read_response(
    conn: &mut Connection,
    head_only: bool,
) -> Result<(Head, Bytes), ClientError> {
    loop {
        let parsed = loop {
            if !conn.buf.is_empty()
                && let Some(p) = parse_head(&conn.buf)?
            {
                break p;
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(ClientError::Protocol(format!(
                    "response head larger than {MAX_HEAD} bytes"
                )));
            }
            let n = conn.fill().await?;
            if n == 0 {
                return Err(if conn.buf.is_empty() {
                    ClientError::Closed
                } else {
                    ClientError::Protocol(
                        "the connection closed in the middle of the response head".into(),
                    )
                });
            }
        };
        let raw = conn.buf.split_to(parsed.len).freeze();
        let status = parsed.status;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        let mut head = Head {
            status,
            raw,
            content_length: parsed.content_length,
            chunked: parsed.chunked,
            keep_alive: parsed.keep_alive,
            sets_cookies: parsed.sets_cookies,
        };
        let no_body =
            head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        let body = if no_body {
            Bytes::new()
        } else if head.chunked {
            Box::pin(read_chunked(conn)).await?
        } else if let Some(len) = head.content_length {
            if len > MAX_BODY {
                return Err(ClientError::Protocol(format!(
                    "response body larger than {MAX_BODY} bytes"
                )));
            }
            if conn.buf.len() < len {
                conn.buf.reserve(len - conn.buf.len());
            }
            while conn.buf.len() < len {
                conn.read_more("before the end of the body").await?;
            }
            conn.buf.split_to(len).freeze()
        } else {
            // No length: the body runs to the end of the connection.
            head.keep_alive = false;
            loop {
                if conn.buf.len() > MAX_BODY {
                    return Err(ClientError::Protocol(format!(
                        "response body larger than {MAX_BODY} bytes"
                    )));
                }
                if conn.buf.capacity() - conn.buf.len() < 512 {
                    conn.buf.reserve(READ_BUF.max(conn.buf.len()));
                }
                match conn.stream.read_buf(&mut conn.buf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(ClientError::Io(e)),
                }
            }
            conn.buf.split().freeze()
        };
        return Ok((head, body));
    }
}

async fn read_chunked(conn: &mut Connection) -> Result<Bytes, ClientError> {
    let mut body = BytesMut::new();
    loop {
        let line = loop {
            if let Some(i) = find_crlf(&conn.buf) {
                break i;
            }
            conn.read_more("in a chunk header").await?;
        };
        let size_text = std::str::from_utf8(&conn.buf[..line]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ClientError::Protocol(format!("bad chunk size {size_text:?}")))?;
        conn.buf.advance(line + 2);
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let end = loop {
                    if let Some(i) = find_crlf(&conn.buf) {
                        break i;
                    }
                    conn.read_more("in the chunked trailers").await?;
                };
                conn.buf.advance(end + 2);
                if end == 0 {
                    return Ok(body.freeze());
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(ClientError::Protocol(format!(
                "response body larger than {MAX_BODY} bytes"
            )));
        }
        while conn.buf.len() < size + 2 {
            conn.read_more("in a chunk").await?;
        }
        body.extend_from_slice(&conn.buf[..size]);
        if &conn.buf[size..size + 2] != b"\r\n" {
            return Err(ClientError::Protocol("chunk not followed by CRLF".into()));
        }
        conn.buf.advance(size + 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            headers: HeaderMap::new(),
            body: None,
        }
    }

    #[tokio::test]
    async fn content_length_chunked_and_keep_alive() {
        let (url, server) = raw_server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: x\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let c = Client::new(Duration::from_secs(5));
        let r = c
            .send(get(&format!("{url}/a?x=1")), None)
            .await
            .expect("first");
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"hello");
        assert_eq!(r.headers()["x-a"], "1");
        let r = c
            .send(get(&format!("{url}/b")), None)
            .await
            .expect("second");
        assert_eq!(r.status, 201);
        assert_eq!(&r.body[..], b"abcde");
        let r = c.send(get(&format!("{url}/c")), None).await.expect("third");
        assert_eq!(r.status, 204);
        let seen = server.await.expect("server");
        assert_eq!(seen.len(), 3, "all three on one kept-alive connection");
        assert!(
            seen[0].starts_with("GET /a?x=1 HTTP/1.1\r\nhost: 127.0.0.1:"),
            "{}",
            seen[0]
        );
    }

    #[tokio::test]
    async fn stale_keep_alive_connection_is_replaced() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", l.local_addr().expect("addr"));
        tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = l.accept().await.expect("accept");
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .expect("write");
                // Close right after answering, as a server whose keep-alive timed out would.
            }
        });
        let c = Client::new(Duration::from_secs(5));
        assert_eq!(c.send(get(&url), None).await.expect("one").status, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c.send(get(&url), None).await.expect("two").status, 200);
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

    #[test]
    fn requests_are_framed() {
        let mut out = Vec::new();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let req = Outgoing {
            method: Method::POST,
            url: Arc::new(Url::parse("http://h:8080/p?q=1").expect("url")),
            headers,
            body: Some(Bytes::from_static(b"{}")),
        };
        write_request(&mut out, &req, Some("a=1"));
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.starts_with("POST /p?q=1 HTTP/1.1\r\nhost: h:8080\r\n"),
            "{text}"
        );
        assert!(
            text.contains("cookie: a=1\r\n") && text.contains("content-length: 2\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n{}"), "{text}");
    }

    #[test]
    fn bad_responses_are_protocol_errors() {
        assert!(matches!(
            parse_head(b"NOT HTTP\r\n\r\n"),
            Err(ClientError::Protocol(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(ClientError::Protocol(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-"),
            Ok(None)
        ));
    }
}
