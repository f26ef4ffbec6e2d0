//! One keep-alive HTTP/1.1 connection of the client: a TCP or TLS stream with its read buffer and
//! its request buffer.
//!
//! What enters and leaves: [`connect`] opens a connection to a host and port (DNS through the
//! shared cache, TLS on the shared configuration); [`Connection::round_trip`] takes a request
//! ([`Outgoing`]), writes it in one write (a plain request identical to the connection's
//! previous one goes out from the bytes already in its buffer), and reads until the codec has
//! the whole response,
//! which leaves as its [`Head`] and body (a head byte for byte the same as the connection's
//! previous one is not parsed again: [`codec::HeadCache`]). The socket is read only when the codec needs more
//! bytes; the read buffer starts at 4 KiB and grows only for large responses. Whether the
//! connection may be reused is the head's `keep_alive`: the client's pool keeps it, not this file.

use bytes::{Bytes, BytesMut};
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::codec::{self, CodecError, Framing, Head, Outgoing};
use url::Url;

/// Initial read buffer of a connection: room for a response head and a small body. A body
/// with a length gets room for all of it when its head is read, so larger responses cost no
/// extra reads; 2 KiB instead of 4 took the memory per virtual user from 9.9 to 8.0–8.2 KiB
/// (`bench/run.sh memory`, 2026-12-04).
const READ_BUF: usize = 2048;

/// Why a connection failed to open or to carry an exchange.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
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
}

impl From<CodecError> for ConnectionError {
    fn from(e: CodecError) -> Self {
        ConnectionError::Protocol(e)
    }
}

impl ConnectionError {
    /// Whether a request that failed this way on a reused keep-alive connection may be sent again
    /// on a new one (the server closed the idle connection before reading the request).
    pub fn stale_connection(&self) -> bool {
        match self {
            ConnectionError::Closed => true,
            ConnectionError::Io(e) => matches!(
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
pub struct Connection {
    tls: bool,
    host: String,
    port: u16,
    stream: Stream,
    buf: BytesMut,
    out: Vec<u8>,
    /// What `out` holds: a plain request (no header, body or cookie of its own) of this method
    /// to this URL (the session's resolved `Arc`, held here so that its address is not reused).
    plain: Option<(http::Method, Arc<Url>)>,
    heads: codec::HeadCache,
}

impl Connection {
    /// Whether this connection goes to this origin.
    pub fn serves(&self, tls: bool, host: &str, port: u16) -> bool {
        self.tls == tls && self.port == port && self.host == host
    }

    /// Reads what the socket has (at least one byte unless the stream ended), growing the
    /// buffer when it is nearly full; returns how many bytes came.
    async fn fill(&mut self) -> Result<usize, ConnectionError> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(READ_BUF);
        }
        self.stream
            .read_buf(&mut self.buf)
            .await
            .map_err(ConnectionError::Io)
    }

    /// Reads more bytes; end of stream is an error (`what` says where it happened).
    async fn read_more(&mut self, what: &'static str) -> Result<(), ConnectionError> {
        if self.fill().await? == 0 {
            return Err(ConnectionError::Protocol(CodecError::Truncated(what)));
        }
        Ok(())
    }

    /// Sends `req` (with the jar's `cookie` value) and reads its response, the body whole.
    pub async fn round_trip(
        &mut self,
        req: &Outgoing,
        cookie: Option<&str>,
    ) -> Result<(Head, Bytes), ConnectionError> {
        // The same plain request as the last one on this connection (a test that requests the
        // same URL hit after hit): its bytes are still in `out`.
        let plain = req.headers.is_empty() && req.body.is_none() && cookie.is_none();
        let same = plain
            && self
                .plain
                .as_ref()
                .is_some_and(|(m, u)| Arc::ptr_eq(u, &req.url) && *m == req.method);
        if !same {
            codec::write_request(&mut self.out, req, cookie);
            self.plain = plain.then(|| (req.method.clone(), req.url.clone()));
        }
        self.stream
            .write_all(&self.out)
            .await
            .map_err(ConnectionError::Io)?;
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
            self.plain = None;
        }
        self.read_response(req.method == http::Method::HEAD).await
    }

    async fn read_response(&mut self, head_only: bool) -> Result<(Head, Bytes), ConnectionError> {
        let mut head = loop {
            if let Some(h) = codec::read_head_with(&mut self.buf, Some(&mut self.heads))? {
                break h;
            }
            let n = self.fill().await?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    ConnectionError::Closed
                } else {
                    ConnectionError::Protocol(CodecError::Truncated(
                        "in the middle of the response head",
                    ))
                });
            }
        };
        let body = match head.framing(head_only)? {
            Framing::Empty => Bytes::new(),
            Framing::Chunked => Box::pin(self.read_chunked()).await?,
            Framing::Length(len) => {
                if self.buf.len() < len {
                    self.buf.reserve(len - self.buf.len());
                }
                loop {
                    if let Some(body) = codec::length_body(&mut self.buf, len) {
                        break body;
                    }
                    self.read_more("before the end of the body").await?;
                }
            }
            Framing::UntilClose => loop {
                codec::until_close_fits(self.buf.len())?;
                if self.buf.capacity() - self.buf.len() < 512 {
                    self.buf.reserve(READ_BUF.max(self.buf.len()));
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => break codec::until_close_body(&mut self.buf),
                    Ok(_) => {}
                    Err(e) => return Err(ConnectionError::Io(e)),
                }
            },
        };
        Ok((head, body))
    }

    async fn read_chunked(&mut self) -> Result<Bytes, ConnectionError> {
        let mut body = BytesMut::new();
        let mut chunks = codec::ChunkedDecoder::new();
        while !chunks.decode(&mut self.buf, &mut body)? {
            self.read_more(chunks.position()).await?;
        }
        Ok(body.freeze())
    }
}

/// The TLS connector on the shared configuration.
fn tls_connector() -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(super::tls::client_config())
}

/// Opens a connection to `host`:`port` (TLS when `tls`): the first resolved address that
/// accepts, with `TCP_NODELAY`.
pub async fn connect(tls: bool, host: &str, port: u16) -> Result<Connection, ConnectionError> {
    let addrs =
        super::dns::resolve(host, port)
            .await
            .map_err(|source| ConnectionError::Resolve {
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
        (None, Some((addr, source))) => return Err(ConnectionError::Connect { addr, source }),
        (None, None) => {
            return Err(ConnectionError::Resolve {
                host: host.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let stream =
        if tls {
            let name = rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|e| ConnectionError::Tls {
                host: host.to_owned(),
                source: io::Error::new(io::ErrorKind::InvalidInput, e),
            })?;
            let s = tls_connector().connect(name, tcp).await.map_err(|source| {
                ConnectionError::Tls {
                    host: host.to_owned(),
                    source,
                }
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
        plain: None,
        heads: codec::HeadCache::default(),
    })
}
