//! The instrumented HTTP session: the test-facing API over the virtual user's [`Client`], which
//! records a hit (URL, method, status, start, elapsed) for every request.

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use url::Url;

use super::client::{Client, ClientError, Outgoing, RawResponse};
use super::codec::Headers;
use crate::result::{UserRecorder, unix_second_at};

/// An error of the HTTP session. In a test, `?` turns it into an *error* outcome.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// `app` was used but the run has no server URL.
    #[error(
        "no server URL is set, so `app` cannot resolve {0:?}: pass --server-url URL (or set \
         server-url in the config file, or #[loads::suite(server_url = \"http://…\")]; under \
         cargo test, set LOADS_SERVER_URL), or use `session` with an absolute URL"
    )]
    NoServerUrl(String),
    /// The URL could not be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The request failed: connection, timeout, protocol, redirect loop...
    #[error("{method} {url}: {source}")]
    Request {
        /// The request method.
        method: Method,
        /// The request URL.
        url: String,
        /// What went wrong.
        #[source]
        source: ClientError,
    },
    /// A request could not be built (bad header name or value, unserialisable body...).
    #[error("invalid request: {0}")]
    Build(String),
    /// The response body is not the JSON that was asked for.
    #[error("response body is not the expected JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// Builds the HTTP client of one virtual user: its own connections and cookie jar, the shared
/// TLS configuration and DNS cache, `timeout` per request.
pub fn new_client(timeout: Duration) -> Arc<Client> {
    Arc::new(Client::new(timeout))
}

/// Resolves `path` against the server URL `base` the way load-test users expect: an absolute URL
/// stays as it is, and any other path goes below the base's path, so with a base of
/// `http://h/api`, both `/items` and `items` mean `http://h/api/items`.
pub(crate) fn join_base(base: &Url, path: &str) -> Result<Url, url::ParseError> {
    match Url::parse(path) {
        Ok(absolute) => Ok(absolute),
        Err(url::ParseError::RelativeUrlWithoutBase) if !path.starts_with("//") => {
            let prefix = base.path().trim_end_matches('/');
            let rest = path.strip_prefix('/').unwrap_or(path);
            base.join(&format!("{prefix}/{rest}"))
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => base.join(path),
        Err(e) => Err(e),
    }
}

/// An HTTP client that records every request. `t.session` takes absolute URLs; `t.app` resolves
/// relative ones against `--server-url`. Both share the virtual user's connections and cookies.
#[derive(Clone)]
pub struct Session {
    client: Arc<Client>,
    recorder: UserRecorder,
    base: Option<Arc<Url>>,
    /// The last few URLs this session resolved, so that a test that requests the same paths
    /// hit after hit parses each once.
    cache: Arc<Mutex<Vec<Resolved>>>,
}

/// A resolved URL: what was asked, the URL, and the key it is counted under.
struct Resolved {
    asked: Box<str>,
    url: Arc<Url>,
    key: Arc<str>,
}

/// URLs remembered per session.
const URL_CACHE: usize = 16;

impl Session {
    /// A session on `client` that records into `recorder`; relative URLs resolve against `base`.
    pub fn new(client: Arc<Client>, recorder: UserRecorder, base: Option<Arc<Url>>) -> Self {
        Session {
            client,
            recorder,
            base,
            cache: Arc::default(),
        }
    }

    /// The same client and recorder, resolving relative URLs against `base`.
    pub fn with_base(&self, base: Option<Arc<Url>>) -> Session {
        Session {
            base,
            cache: Arc::default(),
            ..self.clone()
        }
    }

    /// The URL relative URLs resolve against (the server URL for `app`).
    pub fn base_url(&self) -> Option<&Url> {
        self.base.as_deref()
    }

    fn resolve_cached(&self, url: &str) -> Result<(Arc<Url>, Arc<str>), HttpError> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = cache.iter().find(|r| &*r.asked == url) {
            return Ok((r.url.clone(), r.key.clone()));
        }
        let resolved = Arc::new(self.resolve(url)?);
        let key: Arc<str> = Arc::from(stats_key(&resolved));
        if cache.len() >= URL_CACHE {
            cache.remove(0);
        }
        cache.push(Resolved {
            asked: url.into(),
            url: resolved.clone(),
            key: key.clone(),
        });
        Ok((resolved, key))
    }

    fn resolve(&self, url: &str) -> Result<Url, HttpError> {
        let invalid = |e: url::ParseError| HttpError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        match &self.base {
            Some(base) => join_base(base, url).map_err(invalid),
            None => match Url::parse(url) {
                Ok(u) => Ok(u),
                Err(url::ParseError::RelativeUrlWithoutBase) => {
                    Err(HttpError::NoServerUrl(url.to_owned()))
                }
                Err(e) => Err(invalid(e)),
            },
        }
    }

    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: &str) -> Request<'_> {
        let (resolved, error) = match self.resolve_cached(url) {
            Ok((u, k)) => (Some((u, k)), None),
            Err(e) => (None, Some(e)),
        };
        Request {
            session: self,
            method,
            url: resolved,
            headers: Headers::new(),
            body: None,
            timeout: None,
            name: None,
            error: error.map(Box::new),
        }
    }

    /// Starts a GET request.
    pub fn get(&self, url: &str) -> Request<'_> {
        self.request(Method::GET, url)
    }

    /// Starts a POST request.
    pub fn post(&self, url: &str) -> Request<'_> {
        self.request(Method::POST, url)
    }

    /// Starts a PUT request.
    pub fn put(&self, url: &str) -> Request<'_> {
        self.request(Method::PUT, url)
    }

    /// Starts a PATCH request.
    pub fn patch(&self, url: &str) -> Request<'_> {
        self.request(Method::PATCH, url)
    }

    /// Starts a DELETE request.
    pub fn delete(&self, url: &str) -> Request<'_> {
        self.request(Method::DELETE, url)
    }

    /// Starts a HEAD request.
    pub fn head(&self, url: &str) -> Request<'_> {
        self.request(Method::HEAD, url)
    }

    pub(crate) fn recorder(&self) -> &UserRecorder {
        &self.recorder
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
}

/// A request being built; [`send`](Request::send) it to get a [`Response`].
#[must_use = "a request does nothing until it is sent"]
pub struct Request<'a> {
    session: &'a Session,
    method: Method,
    url: Option<(Arc<Url>, Arc<str>)>,
    headers: Headers,
    body: Option<Bytes>,
    timeout: Option<Duration>,
    name: Option<String>,
    /// Boxed: rare, and the builder is moved at every step.
    error: Option<Box<HttpError>>,
}

impl<'a> Request<'a> {
    fn fail(mut self, message: String) -> Self {
        if self.error.is_none() {
            self.error = Some(Box::new(HttpError::Build(message)));
        }
        self
    }

    fn content_type(mut self, value: &'static str) -> Self {
        if !self.headers.contains_key(header::CONTENT_TYPE) {
            self.headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        }
        self
    }

    /// Adds a header.
    pub fn header<K, V>(mut self, key: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: std::fmt::Display,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: std::fmt::Display,
    {
        match (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            (Ok(k), Ok(v)) => {
                self.headers.append(k, v);
                self
            }
            (Err(e), _) => self.fail(format!("bad header name: {e}")),
            (_, Err(e)) => self.fail(format!("bad header value: {e}")),
        }
    }

    /// Adds headers.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        for (k, v) in headers.iter() {
            self.headers.append(k.clone(), v.clone());
        }
        self
    }

    /// Appends query parameters (anything serde can serialise as `key=value` pairs).
    pub fn query<T: Serialize + ?Sized>(mut self, query: &T) -> Self {
        match serde_urlencoded::to_string(query) {
            Ok(q) if q.is_empty() => self,
            Ok(q) => {
                if let Some((u, _)) = self.url.as_mut() {
                    let u = Arc::make_mut(u);
                    let joined = match u.query() {
                        Some(old) if !old.is_empty() => format!("{old}&{q}"),
                        _ => q,
                    };
                    u.set_query(Some(&joined));
                }
                self
            }
            Err(e) => self.fail(format!("cannot encode the query: {e}")),
        }
    }

    /// Sends `json` as a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, json: &T) -> Self {
        match serde_json::to_vec(json) {
            Ok(v) => {
                self.body = Some(Bytes::from(v));
                self.content_type("application/json")
            }
            Err(e) => self.fail(format!("cannot encode the JSON body: {e}")),
        }
    }

    /// Sends `form` as a URL-encoded form body.
    pub fn form<T: Serialize + ?Sized>(mut self, form: &T) -> Self {
        match serde_urlencoded::to_string(form) {
            Ok(v) => {
                self.body = Some(Bytes::from(v));
                self.content_type("application/x-www-form-urlencoded")
            }
            Err(e) => self.fail(format!("cannot encode the form: {e}")),
        }
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Uses HTTP basic authentication.
    pub fn basic_auth(self, user: &str, password: Option<&str>) -> Self {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.unwrap_or("")));
        self.header(header::AUTHORIZATION, format!("Basic {token}"))
    }

    /// Uses a bearer token.
    pub fn bearer_auth(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION, format!("Bearer {token}"))
    }

    /// Overrides the run's request timeout for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Groups this request in the statistics under `name` instead of its URL (useful for URLs
    /// that carry ids).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sends the request, reads the whole response body, and records the hit. The recorded time
    /// runs from sending the request to the last byte of the body (redirects included).
    ///
    /// The builder is taken apart before the future is made, so that the future holds only
    /// what the exchange needs (it is moved a few times per request, and held while the
    /// request is in flight): a reference to the session, the request's parts and its key.
    pub fn send(self) -> impl std::future::Future<Output = Result<Response, HttpError>> + 'a {
        use futures_util::future::{Either, ready};
        let session = self.session;
        let timeout = self.timeout;
        match self.into_parts() {
            Ok((out, key)) => Either::Left(session.exchange(out, key, timeout)),
            Err(e) => Either::Right(ready(Err(e))),
        }
    }

    /// The request to send and the key it is counted under, or why it cannot be sent.
    fn into_parts(self) -> Result<(Outgoing, Arc<str>), HttpError> {
        if let Some(e) = self.error {
            return Err(*e);
        }
        let Some((url, key)) = self.url else {
            return Err(HttpError::Build("no URL".into()));
        };
        let key = match self.name {
            Some(n) => Arc::from(n),
            None => key,
        };
        Ok((
            Outgoing {
                method: self.method,
                url,
                headers: self.headers,
                body: self.body,
            },
            key,
        ))
    }
}

impl Session {
    /// Sends `out`, records it under `key`, and returns its response.
    async fn exchange(
        &self,
        out: Outgoing,
        key: Arc<str>,
        timeout: Option<Duration>,
    ) -> Result<Response, HttpError> {
        // Two readings of the clock per request: its start (which also starts its timeout and
        // dates it) and its end.
        let start = Instant::now();
        let result = self.client.send_at(start, &out, timeout).await;
        let elapsed = Instant::now().saturating_duration_since(start);
        let second = unix_second_at(start);
        let status = result.as_ref().map_or(0, |r| r.status.as_u16());
        let micros = elapsed.as_micros().min(u64::MAX as u128) as u64;
        let rec = &self.recorder;
        let method = out.method;
        let raw = rec.send_raw(|loads_status| crate::result::Event::AddHit {
            url: key.to_string(),
            method: method.to_string(),
            status,
            started: chrono::Utc::now() - chrono::Duration::from_std(elapsed).unwrap_or_default(),
            elapsed: elapsed.as_secs_f64(),
            loads_status,
        });
        if !raw {
            match rec.lag() {
                None => rec.record_request(method.as_str(), &key, status, micros, second),
                Some(lag) => rec.record(|s| {
                    s.record_request_late(method.as_str(), &key, status, micros, lag, second)
                }),
            }
        }
        match result {
            Ok(raw) => Ok(Response { raw, elapsed }),
            Err(source) => Err(HttpError::Request {
                method,
                url: key.to_string(),
                source,
            }),
        }
    }
}

/// The URL under which a request is counted: without query string or fragment, so that memory
/// does not grow with distinct query strings.
fn stats_key(url: &Url) -> &str {
    let s = url.as_str();
    s.split(['?', '#']).next().unwrap_or(s)
}

/// A response, with its body already read.
#[derive(Debug, Clone)]
pub struct Response {
    raw: RawResponse,
    elapsed: Duration,
}

impl Response {
    /// The status code (compare it with a number: `res.status() == 200`).
    pub fn status(&self) -> StatusCode {
        self.raw.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.raw.headers()
    }

    /// The final URL, after redirects.
    pub fn url(&self) -> &Url {
        &self.raw.url
    }

    /// The body as bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.raw.body
    }

    /// The body as text (invalid UTF-8 is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.raw.body).map_err(HttpError::Json)
    }

    /// How long the request took, as recorded.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_key_drops_query_and_fragment() {
        let u = Url::parse("http://h:1/a/b?x=1#f").expect("url");
        assert_eq!(stats_key(&u), "http://h:1/a/b");
        let u = Url::parse("http://h:1/a").expect("url");
        assert_eq!(stats_key(&u), "http://h:1/a");
    }

    /// The values a request moves, and the future it is held in while in flight, within their
    /// budgets: each copy of them costs instructions on every request (`bench/run.sh
    /// instructions`), and the future's size is most of a virtual user's memory.
    #[test]
    fn a_request_and_its_future_stay_small() {
        let rec = UserRecorder::new(Arc::new(crate::result::Recorder::new(1)), 0);
        let client = new_client(Duration::from_secs(1));
        let s = Session::new(client, rec, None).with_base(Some(Arc::new(
            Url::parse("http://127.0.0.1:1").expect("url"),
        )));
        let request = std::mem::size_of_val(&s.get("/"));
        let future = std::mem::size_of_val(&s.get("/").send());
        let (outgoing, response) = (size_of::<Outgoing>(), size_of::<Response>());
        let sizes = format!(
            "request {request}, its future {future}, outgoing {outgoing}, response {response} bytes"
        );
        assert!(request <= 160, "{sizes}");
        assert!(future <= 1000, "{sizes}");
        assert!(outgoing <= 80, "{sizes}");
        assert!(response <= 120, "{sizes}");
    }

    #[test]
    fn relative_urls_need_a_base() {
        let rec = UserRecorder::new(Arc::new(crate::result::Recorder::new(1)), 0);
        let client = new_client(Duration::from_secs(1));
        let s = Session::new(client, rec, None);
        assert!(matches!(s.resolve("/x"), Err(HttpError::NoServerUrl(_))));
        assert!(matches!(
            s.resolve("http://[::1"),
            Err(HttpError::InvalidUrl { .. })
        ));
        let app = s.with_base(Some(Arc::new(
            Url::parse("http://127.0.0.1:8080/api/").expect("url"),
        )));
        assert_eq!(
            app.resolve("items").expect("ok").as_str(),
            "http://127.0.0.1:8080/api/items"
        );
        assert_eq!(
            app.resolve("/x?q=1").expect("ok").as_str(),
            "http://127.0.0.1:8080/api/x?q=1"
        );
        assert_eq!(
            app.resolve("http://other:1/y").expect("ok").as_str(),
            "http://other:1/y"
        );
        let root = s.with_base(Some(Arc::new(Url::parse("http://h:1").expect("url"))));
        assert_eq!(root.resolve("/").expect("ok").as_str(), "http://h:1/");
        assert_eq!(root.resolve("a/b").expect("ok").as_str(), "http://h:1/a/b");
        let api = s.with_base(Some(Arc::new(Url::parse("http://h:1/api").expect("url"))));
        assert_eq!(
            api.resolve("/items").expect("ok").as_str(),
            "http://h:1/api/items"
        );
        assert_eq!(
            api.resolve("items").expect("ok").as_str(),
            "http://h:1/api/items"
        );
        let msg = HttpError::NoServerUrl("/x".into()).to_string();
        assert!(msg.contains("--server-url"), "{msg}");
    }
}
