//! The instrumented HTTP session: a thin layer over one `reqwest` client per virtual user that
//! records a hit (URL, method, status, start, elapsed) for every request.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::result::{UserRecorder, unix_now};

/// An error of the HTTP session. In a test, `?` turns it into an *error* outcome.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// `app` was used but the run has no server URL.
    #[error(
        "no server URL is set, so `app` cannot resolve {0:?}: pass --server-url URL (or set \
         server-url in the config file), or use `session` with an absolute URL"
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
        source: reqwest::Error,
    },
    /// A request could not be built (bad header, body...).
    #[error("invalid request: {0}")]
    Build(#[source] reqwest::Error),
    /// The response body is not the JSON that was asked for.
    #[error("response body is not the expected JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// Builds the HTTP client of one virtual user: its own connection pool and cookie jar, the
/// shared TLS configuration and DNS cache, `timeout` per request.
pub fn new_client(timeout: Duration) -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured((*super::tls::client_config()).clone())
        .cookie_store(true)
        .dns_resolver(super::dns::SharedResolver::shared())
        .timeout(timeout)
        .user_agent(concat!("loads/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(HttpError::Build)
}

/// An HTTP client that records every request. `t.session` takes absolute URLs; `t.app` resolves
/// relative ones against `--server-url`. Both share the virtual user's connections and cookies.
#[derive(Clone)]
pub struct Session {
    client: reqwest::Client,
    recorder: UserRecorder,
    base: Option<Arc<Url>>,
}

impl Session {
    /// A session on `client` that records into `recorder`; relative URLs resolve against `base`.
    pub fn new(client: reqwest::Client, recorder: UserRecorder, base: Option<Arc<Url>>) -> Self {
        Session {
            client,
            recorder,
            base,
        }
    }

    /// The same client and recorder, resolving relative URLs against `base`.
    pub fn with_base(&self, base: Option<Arc<Url>>) -> Session {
        Session {
            base,
            ..self.clone()
        }
    }

    /// The URL relative URLs resolve against (the server URL for `app`).
    pub fn base_url(&self) -> Option<&Url> {
        self.base.as_deref()
    }

    fn resolve(&self, url: &str) -> Result<Url, HttpError> {
        let invalid = |e: url::ParseError| HttpError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        match &self.base {
            Some(base) => base.join(url).map_err(invalid),
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
        Request {
            session: self,
            builder: self.resolve(url).map(|u| self.client.request(method, u)),
            name: None,
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
}

/// A request being built; [`send`](Request::send) it to get a [`Response`].
#[must_use = "a request does nothing until it is sent"]
pub struct Request<'a> {
    session: &'a Session,
    builder: Result<reqwest::RequestBuilder, HttpError>,
    name: Option<String>,
}

impl<'a> Request<'a> {
    fn map(mut self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        self.builder = self.builder.map(f);
        self
    }

    /// Adds a header.
    pub fn header<K, V>(self, key: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.map(|b| b.header(key, value))
    }

    /// Adds headers.
    pub fn headers(self, headers: HeaderMap) -> Self {
        self.map(|b| b.headers(headers))
    }

    /// Appends query parameters (anything serde can serialise as `key=value` pairs).
    pub fn query<T: Serialize + ?Sized>(self, query: &T) -> Self {
        self.map(|b| b.query(query))
    }

    /// Sends `json` as a JSON body.
    pub fn json<T: Serialize + ?Sized>(self, json: &T) -> Self {
        self.map(|b| b.json(json))
    }

    /// Sends `form` as a URL-encoded form body.
    pub fn form<T: Serialize + ?Sized>(self, form: &T) -> Self {
        self.map(|b| b.form(form))
    }

    /// Sets the body.
    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        self.map(|b| b.body(body))
    }

    /// Uses HTTP basic authentication.
    pub fn basic_auth(self, user: &str, password: Option<&str>) -> Self {
        self.map(|b| b.basic_auth(user, password))
    }

    /// Uses a bearer token.
    pub fn bearer_auth(self, token: &str) -> Self {
        self.map(|b| b.bearer_auth(token))
    }

    /// Overrides the run's request timeout for this request.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.timeout(timeout))
    }

    /// Groups this request in the statistics under `name` instead of its URL (useful for URLs
    /// that carry ids).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sends the request, reads the whole response body, and records the hit. The recorded time
    /// runs from sending the request to the last byte of the body.
    pub async fn send(self) -> Result<Response, HttpError> {
        let request = self.builder?.build().map_err(HttpError::Build)?;
        let method = request.method().clone();
        let key = match self.name {
            Some(n) => n,
            None => stats_key(request.url()).to_owned(),
        };
        let second = unix_now();
        let start = Instant::now();
        let result = fetch(&self.session.client, request).await;
        let elapsed = start.elapsed();
        let status = result.as_ref().map_or(0, |r| r.status.as_u16());
        let micros = elapsed.as_micros().min(u64::MAX as u128) as u64;
        self.session
            .recorder
            .record(|s| s.record_request(method.as_str(), &key, status, micros, second));
        match result {
            Ok(mut r) => {
                r.elapsed = elapsed;
                Ok(r)
            }
            Err(source) => Err(HttpError::Request {
                method,
                url: key,
                source,
            }),
        }
    }
}

async fn fetch(
    client: &reqwest::Client,
    request: reqwest::Request,
) -> Result<Response, reqwest::Error> {
    let res = client.execute(request).await?;
    let status = res.status();
    let headers = res.headers().clone();
    let url = res.url().clone();
    let body = res.bytes().await?;
    Ok(Response {
        status,
        headers,
        url,
        body,
        elapsed: Duration::ZERO,
    })
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
    status: StatusCode,
    headers: HeaderMap,
    url: Url,
    body: Bytes,
    elapsed: Duration,
}

impl Response {
    /// The status code (compare it with a number: `res.status() == 200`).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The final URL, after redirects.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body as bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (invalid UTF-8 is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(HttpError::Json)
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

    #[test]
    fn relative_urls_need_a_base() {
        let rec = UserRecorder::new(Arc::new(crate::result::Recorder::new(1)), 0);
        let client = new_client(Duration::from_secs(1)).expect("client");
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
            app.resolve("/x").expect("ok").as_str(),
            "http://127.0.0.1:8080/x"
        );
        let msg = HttpError::NoServerUrl("/x".into()).to_string();
        assert!(msg.contains("--server-url"), "{msg}");
    }
}
