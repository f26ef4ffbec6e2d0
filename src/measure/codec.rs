//! The HTTP/1.1 codec of loads' client (`src/measure/codec.rs`, beside the connection and the
//! client that use it): bytes in, parsed values out. No sockets, no async, no tokio.
//!
//! What enters and leaves: a request ([`Outgoing`]) leaves as bytes through [`write_request`],
//! written into the connection's reusable buffer. A response enters as the bytes the connection
//! has read so far, in its [`BytesMut`] buffer: [`read_head`] takes a complete head out of it (or
//! says that more bytes are needed), [`Head::framing`] says how the body is delimited, and the
//! body leaves the buffer through [`length_body`], [`ChunkedDecoder`] or [`until_close_body`].
//! Each step consumes only what it parses, so a response split anywhere between reads parses as
//! it does whole (the tests check every split point; `fuzz/fuzz_targets/codec.rs` checks
//! arbitrary ones through [`decode_responses`]). Header maps and cookies are parsed from the raw
//! head only when asked for ([`header_map`], [`set_cookies`]).
//!
//! Bounds: a head larger than [`MAX_HEAD`] and a body larger than [`MAX_BODY`] are refused
//! before anything is allocated for them; the codec itself allocates only a chunked body (each
//! chunk checked against [`MAX_BODY`] first), the raw head's header slots when a head has more
//! than 48 headers (1024 slots, fixed), and error messages.

use bytes::{Buf as _, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use std::sync::Arc;
use url::{Position, Url};

/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
pub const MAX_BODY: usize = 256 * 1024 * 1024;

/// Why the bytes of a response are not a valid HTTP/1.x response (or not one loads accepts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The head does not parse (httparse's reason).
    #[error("{0}")]
    Head(httparse::Error),
    /// The status code is not one `http` accepts (below 100 or above 999).
    #[error("bad status code {0}")]
    Status(u16),
    /// A `Content-Length` that is not a decimal number.
    #[error("bad Content-Length")]
    ContentLength,
    /// The head is larger than [`MAX_HEAD`].
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The body is larger than [`MAX_BODY`].
    #[error("response body larger than {MAX_BODY} bytes")]
    BodyTooLarge,
    /// A chunk size line that is not a hexadecimal number (the text before any extension).
    #[error("bad chunk size {0:?}")]
    ChunkSize(String),
    /// A chunk's data not followed by CRLF.
    #[error("chunk not followed by CRLF")]
    ChunkCrlf,
    /// The bytes ended before the response did (the text says where).
    #[error("the connection closed {0}")]
    Truncated(&'static str),
}

/// The parts of a request.
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: Arc<Url>,
    /// Headers set by the test.
    pub headers: Headers,
    /// The body, if any.
    pub body: Option<Bytes>,
}

/// The headers a test sets on a request: most requests have none, so the map is made (and
/// boxed) only for the first one. An empty `HeaderMap` is 96 bytes that every request would
/// carry through its futures, and about 50 instructions to drop.
#[derive(Debug, Clone, Default)]
pub struct Headers(Option<Box<HeaderMap>>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(None)
    }

    /// Whether there is no header.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|h| h.is_empty())
    }

    /// Whether a header `name` is set.
    pub fn contains_key(&self, name: header::HeaderName) -> bool {
        self.0.as_ref().is_some_and(|h| h.contains_key(name))
    }

    /// The headers, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&header::HeaderName, &HeaderValue)> {
        self.0.iter().flat_map(|h| h.iter())
    }

    /// Sets `name` to `value`, replacing its values.
    pub fn insert(&mut self, name: header::HeaderName, value: HeaderValue) {
        self.map().insert(name, value);
    }

    /// Adds a value of `name`.
    pub fn append(&mut self, name: header::HeaderName, value: HeaderValue) {
        self.map().append(name, value);
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: header::HeaderName) {
        if let Some(h) = self.0.as_mut() {
            h.remove(name);
        }
    }

    fn map(&mut self) -> &mut HeaderMap {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<HeaderMap> for Headers {
    fn from(h: HeaderMap) -> Self {
        if h.is_empty() {
            Headers(None)
        } else {
            Headers(Some(Box::new(h)))
        }
    }
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

/// Writes `req` into `out` (cleared first) as one HTTP/1.1 request: request line, the default
/// `host`, `user-agent` and `accept` headers the test did not set, `cookie` (the jar's value)
/// unless the test set one, the test's headers, the body's `content-length`, and the body.
pub fn write_request(out: &mut Vec<u8>, req: &Outgoing, cookie: Option<&str>) {
    let url = &req.url;
    // Slices of the URL's serialisation: the path and query as they are, the host and the
    // port unless it is the scheme's default (what `path()`, `query()`, `host_str()` and
    // `port()` give, without formatting the port again).
    let target = &url[Position::BeforePath..Position::AfterQuery];
    let authority = &url[Position::BeforeHost..Position::AfterPort];
    // The headers a test set, checked only when it set any (most requests have none).
    let set = |name: header::HeaderName| !req.headers.is_empty() && req.headers.contains_key(name);
    out.clear();
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !set(header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !set(header::USER_AGENT) {
        out.extend_from_slice(
            concat!("user-agent: loads/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes(),
        );
    }
    if !set(header::ACCEPT) {
        out.extend_from_slice(b"accept: */*\r\n");
    }
    if let Some(c) = cookie
        && !set(header::COOKIE)
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
    let framed = set(header::CONTENT_LENGTH) || set(header::TRANSFER_ENCODING);
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

/// What the head of a response says about the rest.
#[derive(Debug)]
pub struct Head {
    /// The status.
    pub status: StatusCode,
    /// The head's bytes, status line to the empty line (parsed again for headers on demand).
    pub raw: Bytes,
    /// The `Content-Length`, if any.
    pub content_length: Option<usize>,
    /// Whether the last transfer coding is `chunked`.
    pub chunked: bool,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
    /// Whether the head has a `Set-Cookie` header.
    pub sets_cookies: bool,
}

/// A parsed response head: its length in the buffer and what it says about the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadInfo {
    len: usize,
    status: StatusCode,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
    sets_cookies: bool,
}

/// What the headers of a head say about the body and the connection, folded header by header
/// (the same fold for both parsers, so that they agree whenever the fast one answers).
struct HeadFields {
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
    sets_cookies: bool,
}

impl HeadFields {
    fn new(version: u8) -> Self {
        HeadFields {
            content_length: None,
            chunked: false,
            keep_alive: version == 1,
            sets_cookies: false,
        }
    }

    /// Takes one header into account (`value` without its leading and trailing whitespace).
    #[inline]
    fn apply(&mut self, name: &[u8], value: &[u8]) -> Result<(), CodecError> {
        // By length first: most headers (server, date, content-type...) are none of these four,
        // and then cost one comparison of lengths instead of four of names.
        if !matches!(name.len(), 10 | 14 | 17) {
            return Ok(());
        }
        if name.eq_ignore_ascii_case(b"set-cookie") {
            self.sets_cookies = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let v = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok());
            self.content_length = Some(v.ok_or(CodecError::ContentLength)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.chunked = value
                .split(|b| *b == b',')
                .next_back()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|b| *b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    self.keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                }
            }
        }
        Ok(())
    }

    fn finish(self, len: usize, status: StatusCode) -> HeadInfo {
        HeadInfo {
            len,
            status,
            content_length: self.content_length,
            chunked: self.chunked,
            keep_alive: self.keep_alive,
            sets_cookies: self.sets_cookies,
        }
    }
}

/// Header name bytes (RFC 9110 `tchar`, as httparse accepts them).
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// Where the first byte at or after `from` that is below 0x20 or DEL is (tab, visible ASCII,
/// space and obs-text are the bytes httparse accepts in values and reasons, tab apart): eight
/// bytes at a time while none is a control byte or DEL.
#[inline]
fn plain_until(buf: &[u8], mut from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while from + 8 <= buf.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&buf[from..from + 8]);
        let w = u64::from_le_bytes(word);
        // A byte below 0x20, or equal to 0x7f (exact: no byte is missed; a byte after one that
        // is found may be flagged too, which only stops the word early).
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let d = w ^ (ONES * 0x7f);
        let del = d.wrapping_sub(ONES) & !d & HIGH;
        if control | del != 0 {
            break;
        }
        from += 8;
    }
    while from < buf.len() && buf[from] >= 0x20 && buf[from] != 0x7f {
        from += 1;
    }
    from
}

/// Parses a complete head written the way servers write them (`HTTP/1.x NNN reason`, CRLF line
/// ends, `name: value` lines of token names and valid value bytes, at most 48 headers). `None`
/// for anything else (incomplete, unusual or invalid): the caller then asks httparse, which
/// accepts everything this accepts, with the same names and values, and says what is wrong
/// with the rest. About three times cheaper than httparse on a typical head (it reads each
/// byte once and validates value bytes eight at a time).
fn parse_head_fast(buf: &[u8]) -> Option<HeadInfo> {
    if buf.len() < 16 || &buf[..7] != b"HTTP/1." || buf[8] != b' ' {
        return None;
    }
    let version = match buf[7] {
        b'0' => 0,
        b'1' => 1,
        _ => return None,
    };
    let digits = &buf[9..12];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let status = StatusCode::from_u16(code).ok()?;
    let mut i = 12;
    if buf[i] == b' ' {
        i += 1;
        loop {
            i = plain_until(buf, i);
            match buf.get(i) {
                Some(b'\t') => i += 1,
                _ => break,
            }
        }
    }
    if buf.get(i..i + 2) != Some(b"\r\n") {
        return None;
    }
    i += 2;
    let mut fields = HeadFields::new(version);
    let mut headers = 0;
    loop {
        match buf.get(i..i + 2) {
            Some(b"\r\n") => return Some(fields.finish(i + 2, status)),
            None => return None,
            _ => {}
        }
        let name_start = i;
        while i < buf.len() && TOKEN[buf[i] as usize] {
            i += 1;
        }
        if i == name_start || buf.get(i) != Some(&b':') {
            return None;
        }
        let name = &buf[name_start..i];
        i += 1;
        while matches!(buf.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let value_start = i;
        loop {
            i = plain_until(buf, i);
            match buf.get(i) {
                Some(b'\t') => i += 1,
                _ => break,
            }
        }
        if buf.get(i..i + 2) != Some(b"\r\n") {
            return None;
        }
        let value = buf[value_start..i].trim_ascii_end();
        i += 2;
        headers += 1;
        if headers > 48 {
            return None;
        }
        fields.apply(name, value).ok()?;
    }
}

fn parse_head(buf: &[u8]) -> Result<Option<HeadInfo>, CodecError> {
    if let Some(head) = parse_head_fast(buf) {
        return Ok(Some(head));
    }
    parse_head_httparse(buf)
}

fn parse_head_httparse(buf: &[u8]) -> Result<Option<HeadInfo>, CodecError> {
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
        Err(e) => return Err(CodecError::Head(e)),
    };
    let code = res.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| CodecError::Status(code))?;
    let mut fields = HeadFields::new(res.version.unwrap_or(0));
    for h in res.headers.iter() {
        fields.apply(h.name.as_bytes(), h.value.trim_ascii())?;
    }
    Ok(Some(fields.finish(n, status)))
}

/// Heads longer than this are not remembered by a [`HeadCache`].
const CACHED_HEAD: usize = 1024;

/// The last head a connection parsed, byte for byte. A server usually sends the same head
/// response after response (until its `Date` changes, once a second), and the same bytes
/// parse the same: a head that starts the buffer with exactly these bytes is not parsed again
/// (a comparison of bytes instead of a parse, about 1 800 instructions less per response).
#[derive(Debug, Default)]
pub struct HeadCache {
    raw: Vec<u8>,
    info: Option<HeadInfo>,
}

impl HeadCache {
    fn parse(&mut self, buf: &[u8]) -> Result<Option<HeadInfo>, CodecError> {
        if let Some(info) = self.info
            && buf.starts_with(&self.raw)
        {
            return Ok(Some(info));
        }
        let parsed = parse_head(buf)?;
        if let Some(info) = parsed
            && info.len <= CACHED_HEAD
        {
            self.raw.clear();
            self.raw.extend_from_slice(&buf[..info.len]);
            self.info = Some(info);
        }
        Ok(parsed)
    }
}

/// Takes the final head of a response out of the front of `buf`: interim (1xx) heads before it
/// are consumed and skipped, except `101 Switching Protocols`, which is final. `Ok(None)` means
/// more bytes are needed (what was consumed stays consumed); a partial head already larger than
/// [`MAX_HEAD`] is refused.
#[cfg(test)]
pub fn read_head(buf: &mut BytesMut) -> Result<Option<Head>, CodecError> {
    read_head_with(buf, None)
}

/// [`read_head`], with the connection's [`HeadCache`].
#[inline]
pub fn read_head_with(
    buf: &mut BytesMut,
    mut cache: Option<&mut HeadCache>,
) -> Result<Option<Head>, CodecError> {
    loop {
        let parsed = if buf.is_empty() {
            None
        } else {
            match cache.as_deref_mut() {
                Some(c) => c.parse(buf)?,
                None => parse_head(buf)?,
            }
        };
        let Some(parsed) = parsed else {
            if buf.len() > MAX_HEAD {
                return Err(CodecError::HeadTooLarge);
            }
            return Ok(None);
        };
        let raw = buf.split_to(parsed.len).freeze();
        let status = parsed.status;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        return Ok(Some(Head {
            status,
            raw,
            content_length: parsed.content_length,
            chunked: parsed.chunked,
            keep_alive: parsed.keep_alive,
            sets_cookies: parsed.sets_cookies,
        }));
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a response to HEAD, 204, 304).
    Empty,
    /// Chunked: read it with a [`ChunkedDecoder`].
    Chunked,
    /// This many bytes (at most [`MAX_BODY`]): read it with [`length_body`].
    Length(usize),
    /// Everything up to the end of the connection: check each read with [`until_close_fits`],
    /// take it with [`until_close_body`].
    UntilClose,
}

impl Head {
    /// How the body is delimited (`head_only`: the request was a HEAD). A body that runs to the
    /// end of the connection turns keep-alive off; a `Content-Length` above [`MAX_BODY`] is
    /// refused.
    #[inline]
    pub fn framing(&mut self, head_only: bool) -> Result<Framing, CodecError> {
        let status = self.status;
        let no_body =
            head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        Ok(if no_body {
            Framing::Empty
        } else if self.chunked {
            Framing::Chunked
        } else if let Some(len) = self.content_length {
            if len > MAX_BODY {
                return Err(CodecError::BodyTooLarge);
            }
            Framing::Length(len)
        } else {
            // No length: the body runs to the end of the connection.
            self.keep_alive = false;
            Framing::UntilClose
        })
    }
}

/// A body of `len` bytes ([`Framing::Length`]) taken from the front of `buf`, or `None` while
/// fewer have been read.
#[inline]
pub fn length_body(buf: &mut BytesMut, len: usize) -> Option<Bytes> {
    (buf.len() >= len).then(|| buf.split_to(len).freeze())
}

/// Whether a body running to the end of the connection may grow past `len` bytes read so far.
#[inline]
pub fn until_close_fits(len: usize) -> Result<(), CodecError> {
    if len > MAX_BODY {
        return Err(CodecError::BodyTooLarge);
    }
    Ok(())
}

/// The body running to the end of the connection: all of `buf`, once the connection ended.
#[inline]
pub fn until_close_body(buf: &mut BytesMut) -> Bytes {
    buf.split().freeze()
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Where a [`ChunkedDecoder`] is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Before a chunk size line.
    Size,
    /// Before a chunk of this many bytes and its CRLF.
    Data(usize),
    /// In the trailers after the last chunk.
    Trailers,
    /// After the empty line that ends the trailers.
    Done,
}

/// Decodes a chunked body from the bytes read so far: sizes (extensions ignored), data, and
/// trailers up to the empty line (ignored). It consumes only whole lines and whole chunks from
/// the buffer, so it resumes wherever the bytes were split.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder before the first chunk.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
        }
    }

    /// Consumes what it can of `buf`, appending chunk data to `body`: `Ok(true)` when the body
    /// has ended (the bytes after it stay in `buf`), `Ok(false)` when more bytes are needed. A
    /// body above [`MAX_BODY`] is refused before its chunk is copied.
    pub fn decode(&mut self, buf: &mut BytesMut, body: &mut BytesMut) -> Result<bool, CodecError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = find_crlf(buf) else {
                        return Ok(false);
                    };
                    let size_text = std::str::from_utf8(&buf[..line]).unwrap_or("");
                    let size_text = size_text.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size_text, 16)
                        .map_err(|_| CodecError::ChunkSize(size_text.to_owned()))?;
                    buf.advance(line + 2);
                    if size == 0 {
                        self.state = ChunkState::Trailers;
                        continue;
                    }
                    // Not `body.len() + size`: a size near usize::MAX would overflow it.
                    if size > MAX_BODY - body.len() {
                        return Err(CodecError::BodyTooLarge);
                    }
                    self.state = ChunkState::Data(size);
                }
                ChunkState::Data(size) => {
                    if buf.len() < size + 2 {
                        return Ok(false);
                    }
                    body.extend_from_slice(&buf[..size]);
                    if &buf[size..size + 2] != b"\r\n" {
                        return Err(CodecError::ChunkCrlf);
                    }
                    buf.advance(size + 2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(end) = find_crlf(buf) else {
                        return Ok(false);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.state = ChunkState::Done;
                        return Ok(true);
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
    }

    /// Where the decoder is, as the end of "the connection closed ...".
    pub fn position(&self) -> &'static str {
        match self.state {
            ChunkState::Size => "in a chunk header",
            ChunkState::Data(_) => "in a chunk",
            ChunkState::Trailers | ChunkState::Done => "in the chunked trailers",
        }
    }

    /// The error when the bytes end before the body does (it says where).
    pub fn truncated(&self) -> CodecError {
        CodecError::Truncated(self.position())
    }
}

/// Parses the header lines of a raw response head into a header map.
pub fn header_map(raw: &[u8]) -> HeaderMap {
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

/// The values of the `Set-Cookie` headers of a raw response head.
pub fn set_cookies(raw: &[u8]) -> Vec<String> {
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

/// One response as [`decode_stream`] saw it.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    status: u16,
    raw: Bytes,
    body: Bytes,
    keep_alive: bool,
}

/// Reads responses from `pieces` (the successive reads of one connection) the way the
/// connection does, one after another while they keep the connection alive; the last entry is
/// the error that ended it, if any. `head_only` makes every request a HEAD.
fn decode_stream<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    head_only: bool,
) -> Vec<Result<Decoded, CodecError>> {
    decode_stream_with(pieces, head_only, None)
}

/// [`decode_stream`], with a [`HeadCache`] as the connection has one.
fn decode_stream_with<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    head_only: bool,
    mut cache: Option<&mut HeadCache>,
) -> Vec<Result<Decoded, CodecError>> {
    let mut pieces = pieces.into_iter();
    let mut buf = BytesMut::new();
    // The next read: `false` at the end of the bytes.
    let mut fill = |buf: &mut BytesMut| match pieces.next() {
        Some(p) => {
            buf.extend_from_slice(p);
            true
        }
        None => false,
    };
    let mut out = Vec::new();
    loop {
        let one = (|| {
            let mut head = loop {
                if let Some(h) = read_head_with(&mut buf, cache.as_deref_mut())? {
                    break h;
                }
                if !fill(&mut buf) {
                    return Ok(None);
                }
            };
            let body = match head.framing(head_only)? {
                Framing::Empty => Bytes::new(),
                Framing::Chunked => {
                    let mut chunks = ChunkedDecoder::new();
                    let mut body = BytesMut::new();
                    while !chunks.decode(&mut buf, &mut body)? {
                        if !fill(&mut buf) {
                            return Err(chunks.truncated());
                        }
                    }
                    body.freeze()
                }
                Framing::Length(len) => loop {
                    if let Some(b) = length_body(&mut buf, len) {
                        break b;
                    }
                    if !fill(&mut buf) {
                        return Err(CodecError::Truncated("before the end of the body"));
                    }
                },
                Framing::UntilClose => loop {
                    until_close_fits(buf.len())?;
                    if !fill(&mut buf) {
                        break until_close_body(&mut buf);
                    }
                },
            };
            // As the client does with the head, when a test asks for headers or cookies.
            let _ = header_map(&head.raw);
            let _ = set_cookies(&head.raw);
            Ok(Some(Decoded {
                status: head.status.as_u16(),
                raw: head.raw,
                body,
                keep_alive: head.keep_alive,
            }))
        })();
        match one {
            Ok(Some(d)) => {
                let more = d.keep_alive;
                out.push(Ok(d));
                if !more {
                    return out;
                }
            }
            // The bytes ended between responses (or in a head: not told apart here).
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

/// Decodes `data` as the bytes a server sent on one connection, as the client reads them (as
/// answers to GETs, then to HEADs), and checks that reading them in pieces gives the same
/// responses as reading them whole; the pieces are 1 to 16 bytes, their sizes drawn from a hash
/// of `data`. Never panics unless the codec is wrong, whatever the bytes: this is the entry
/// point of the fuzz target `fuzz/fuzz_targets/codec.rs`, and the unit tests run it too.
#[doc(hidden)]
pub fn decode_responses(data: &[u8]) {
    // FNV-1a, then xorshift: any change to the bytes changes where they are split.
    let mut seed = data.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    }) | 1;
    let mut rest = data;
    let mut pieces = Vec::new();
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed as usize % 16 + 1).min(rest.len());
        let (p, r) = rest.split_at(n);
        pieces.push(p);
        rest = r;
    }
    // The fast head parser answers only when httparse would, and as httparse would.
    if let Some(fast) = parse_head_fast(data) {
        assert_eq!(
            parse_head_httparse(data),
            Ok(Some(fast)),
            "the fast head parser disagrees with httparse"
        );
    }
    for head_only in [false, true] {
        let whole = decode_stream([data], head_only);
        let split = decode_stream(pieces.iter().copied(), head_only);
        // The head cache changes nothing: the same bytes, twice on one connection.
        let mut cache = HeadCache::default();
        let mut twice = decode_stream_with([data], head_only, Some(&mut cache));
        if twice.iter().all(Result::is_ok)
            && twice
                .last()
                .is_some_and(|d| d.as_ref().is_ok_and(|d| d.keep_alive))
        {
            twice = decode_stream_with([data], head_only, Some(&mut cache));
        }
        assert_eq!(whole, twice, "the head cache changes what is decoded");
        // A head over MAX_HEAD is refused only when it arrives in more than one read.
        if data.len() <= MAX_HEAD {
            assert_eq!(
                whole, split,
                "the same bytes read in pieces decode differently"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKED: &[u8] = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
        3;ext=1\r\nabc\r\n2 ; name=\"v\"\r\nde\r\n0\r\nT: x\r\nU: y\r\n\r\n";

    /// Several responses on one connection, each framing once.
    const STREAM: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\n\r\nhello\
        HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: x\r\n\r\n\
        HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n\
        HTTP/1.1 204 No Content\r\n\r\n\
        HTTP/1.0 200 OK\r\n\r\nuntil close";

    #[test]
    fn a_response_split_anywhere_parses_as_whole() {
        let whole = decode_stream([STREAM], false);
        let statuses: Vec<u16> = whole
            .iter()
            .map(|r| r.as_ref().expect("valid").status)
            .collect();
        assert_eq!(statuses, [200, 201, 304, 204, 200]);
        let bodies: Vec<&[u8]> = whole
            .iter()
            .map(|r| &r.as_ref().expect("valid").body[..])
            .collect();
        assert_eq!(bodies, [&b"hello"[..], b"abcde", b"", b"", b"until close"]);
        for at in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(at);
            assert_eq!(decode_stream([a, b], false), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(decode_stream(bytes, false), whole, "one byte a read");
        for end in 0..=STREAM.len() {
            decode_responses(&STREAM[..end]);
        }
    }

    #[test]
    fn a_chunked_body_with_extensions_and_trailers() {
        let mut buf = BytesMut::from(CHUNKED);
        let mut head = read_head(&mut buf).expect("valid").expect("complete");
        assert_eq!(head.status, 201);
        assert_eq!(head.framing(false), Ok(Framing::Chunked));
        let mut chunks = ChunkedDecoder::new();
        let mut body = BytesMut::new();
        buf.extend_from_slice(b"HTTP/1.1");
        assert_eq!(chunks.decode(&mut buf, &mut body), Ok(true));
        assert_eq!(&body[..], b"abcde");
        assert_eq!(
            &buf[..],
            b"HTTP/1.1",
            "the next response stays in the buffer"
        );

        let mut buf = BytesMut::from(&b"5\r\nabc"[..]);
        let mut chunks = ChunkedDecoder::new();
        assert_eq!(chunks.decode(&mut buf, &mut BytesMut::new()), Ok(false));
        assert_eq!(
            chunks.truncated().to_string(),
            "the connection closed in a chunk"
        );
        for (bad, err) in [
            (&b"zz\r\n"[..], CodecError::ChunkSize("zz".into())),
            (b"2\r\nabX\r\n", CodecError::ChunkCrlf),
            (b"10000001\r\n", CodecError::BodyTooLarge),
            // fuzz/regressions-codec/chunk-size-overflow.http: the sum overflowed.
            (b"1\r\na\r\nffffffffffffffff\r\n", CodecError::BodyTooLarge),
        ] {
            let mut buf = BytesMut::from(bad);
            let r = ChunkedDecoder::new().decode(&mut buf, &mut BytesMut::new());
            assert_eq!(r, Err(err), "{bad:?}");
        }
    }

    #[test]
    fn a_head_over_the_size_limit_is_refused() {
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        // Long lines, so that the head has fewer headers than httparse's 1024 slots.
        while big.len() <= MAX_HEAD {
            big.extend_from_slice(b"X-Filler: ");
            big.extend_from_slice(&[b'x'; 1000]);
            big.extend_from_slice(b"\r\n");
        }
        let mut buf = BytesMut::from(&big[..]);
        assert!(matches!(read_head(&mut buf), Err(CodecError::HeadTooLarge)));
        let mut buf = BytesMut::from(&big[..MAX_HEAD]);
        assert!(matches!(read_head(&mut buf), Ok(None)), "at the limit");
        let huge = &b"HTTP/1.1 200 OK\r\nContent-Length: 268435457\r\n\r\n"[..];
        let mut head = read_head(&mut BytesMut::from(huge))
            .expect("valid")
            .expect("complete");
        assert_eq!(head.framing(false), Err(CodecError::BodyTooLarge));
        assert_eq!(
            until_close_fits(MAX_BODY + 1),
            Err(CodecError::BodyTooLarge)
        );
    }

    /// Every seed of the fuzz target and every crash it found (`fuzz/seeds-codec/`,
    /// `fuzz/regressions-codec/`), through the fuzz target's entry point.
    #[test]
    fn fuzz_seeds_and_regressions_decode() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for sub in ["fuzz/seeds-codec", "fuzz/regressions-codec"] {
            for e in std::fs::read_dir(root.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let data = std::fs::read(e.path()).expect("read");
                decode_responses(&data);
                if sub.ends_with("seeds-codec") {
                    let got = decode_stream([&data[..]], false);
                    assert!(
                        !got.is_empty() && got.iter().all(Result::is_ok),
                        "{}: {got:?}",
                        e.path().display()
                    );
                    n += 1;
                }
            }
        }
        assert!(n >= 4, "the seeds are in fuzz/seeds-codec/");
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
            headers: headers.into(),
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
    fn the_fast_head_parser_agrees_with_httparse() {
        let typical = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 14:16:40 GMT\r\n\
            Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, World!";
        let fast = parse_head_fast(typical).expect("a typical head takes the fast path");
        assert_eq!(fast.len, typical.len() - 13);
        assert_eq!(parse_head_httparse(typical), Ok(Some(fast)));
        let cases: &[&[u8]] = &[
            b"HTTP/1.0 404 Not\tFound \r\nX:\r\nset-COOKIE: a=1\r\nconnection: close\r\n\r\n",
            b"HTTP/1.1 200 \r\nTransfer-Encoding: gzip, chunked \t\r\nContent-Length:  7\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-Obs: caf\xc3\xa9\r\nX-Tab: a\tb\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x7fb\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\nX: a\n\n",
            b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 20x OK\r\n\r\n",
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n",
        ];
        for case in cases {
            for end in 0..=case.len() {
                let part = &case[..end];
                if let Some(fast) = parse_head_fast(part) {
                    assert_eq!(parse_head_httparse(part), Ok(Some(fast)), "{part:?}");
                }
            }
        }
        // Those it leaves to httparse: with bare LFs, an obs-fold, an invalid byte.
        for case in &cases[4..9] {
            assert!(parse_head_fast(case).is_none(), "{case:?}");
        }
        assert!(parse_head_fast(cases[0]).is_some_and(|h| h.sets_cookies && !h.keep_alive));
        assert!(
            parse_head_fast(cases[1]).is_some_and(|h| h.chunked && h.content_length == Some(7))
        );
    }

    #[test]
    fn bad_responses_are_codec_errors() {
        assert!(matches!(
            parse_head(b"NOT HTTP\r\n\r\n"),
            Err(CodecError::Head(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(CodecError::ContentLength)
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-"),
            Ok(None)
        ));
    }
}
