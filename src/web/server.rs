//! The dashboard's HTTP server: axum on a thread and a single-threaded runtime of its own, so
//! that it shares nothing with the run but the [`Hub`]. Routes: `/` (the page), `api/data` (the
//! latest page data), `api/events` (Server-Sent Events: the page data once a second),
//! `POST api/stop` and `POST api/load` (the run's [`Control`](super::hub::Control)),
//! `licenses/uplot`; on a broker (`loads broker --web`), `/` is the cluster's page, with
//! `api/cluster` (agents, runs), `runs/{id}` (a stored run's full report), `runs/{id}/live`
//! (an active run's live view fed from the broker, with its own `api/data`, `api/events` and
//! `api/stop` under `runs/{id}/`) and `api/compare?a=&b=` (two stored runs compared).
//!
//! Security: it binds loopback unless told otherwise. Bound beyond loopback, it requires a
//! token (`--web-token`, or a generated one printed at start) on every request, as `?token=`
//! or `Authorization: Bearer`; a request without it gets 401. On loopback without a token, a
//! request must name a loopback host (no DNS rebinding), and a control action must come as
//! JSON from the page's own origin (no cross-site form posts). It holds at most
//! 128 connections at once (`MAX_CONNECTIONS`), and closes one that carries nothing for 20 s
//! (`IDLE_TIMEOUT`), whatever it sent before (or not): the rest wait in the
//! listen queue, so that no client, with the token or without, takes the run's open files.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::assets;
use super::hub::Hub;
use super::page::{Mode, render};
use super::token;
use crate::config::WebArgs;

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// `--web ADDR` is not an address.
    #[error("--web {0:?}: not an address (host:port, e.g. 127.0.0.1:8089)")]
    Address(String),
    /// The address could not be bound.
    #[error("--web {addr}: cannot listen: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token could not be made, or the server thread not started.
    #[error("--web: {0}")]
    System(#[from] std::io::Error),
}

/// A running dashboard server; it serves until the process ends.
pub struct WebServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The token it requires, if any.
    pub token: Option<String>,
}

struct Served {
    hub: Arc<Hub>,
    token: Option<String>,
    loopback: bool,
    /// The address it listens on (a loopback one may be other than 127.0.0.1).
    addr: SocketAddr,
}

/// The largest body of a control request.
const MAX_BODY: usize = 4096;

/// The most connections the server holds at once (pages, event streams, and connections that
/// never sent a request or the token): more wait in the listen queue, taking none of the run's
/// open files.
const MAX_CONNECTIONS: usize = 128;

impl WebServer {
    /// Starts serving `hub`'s page as `args` say (`args.web` must be set).
    pub fn start(args: &WebArgs, hub: Arc<Hub>) -> Result<WebServer, WebError> {
        Self::start_guarded(args, hub, false)
    }

    /// [`start`](Self::start), requiring a token even on loopback when `always_token` (the
    /// page of a broker with CURVE keys, an admin's view of the cluster, which another user of
    /// the machine must not get by reaching 127.0.0.1).
    pub fn start_guarded(
        args: &WebArgs,
        hub: Arc<Hub>,
        always_token: bool,
    ) -> Result<WebServer, WebError> {
        let given = args
            .web
            .clone()
            .unwrap_or_else(|| crate::config::DEFAULT_WEB_ADDR.to_owned());
        let addr = given
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| WebError::Address(given.clone()))?;
        let loopback = addr.ip().is_loopback();
        let token = match (&args.web_token, loopback && !always_token) {
            (Some(t), _) if !t.is_empty() => Some(t.clone()),
            (_, true) => None,
            (_, false) => Some(token::generate()?),
        };
        let listener = std::net::TcpListener::bind(addr).map_err(|source| WebError::Bind {
            addr: given.clone(),
            source,
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let served = Arc::new(Served {
            hub,
            token: token.clone(),
            loopback,
            addr,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("loads-web".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let listener = Limited {
                        inner: listener,
                        permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
                    };
                    if let Err(e) = axum::serve(listener, app(served)).await {
                        tracing::warn!("dashboard server: {e}");
                    }
                });
            })?;
        Ok(WebServer { addr, token })
    }

    /// The page's URL (with its token).
    pub fn url(&self) -> String {
        match &self.token {
            // A given token may hold `+`, `&`, `#` or `%`: encoded, the URL brings it back whole.
            Some(t) => format!(
                "http://{}/?token={}",
                self.addr,
                url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
            ),
            None => format!("http://{}/", self.addr),
        }
    }

    /// Keeps the process (and so the page) up for `d` after the run, or until Ctrl-C.
    pub fn linger(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        eprintln!(
            "The dashboard stays at {} for {} (Ctrl-C to quit)",
            self.url(),
            humantime::format_duration(Duration::from_secs(d.as_secs()))
        );
        let interrupts = crate::config::signals::interrupts();
        let presses = interrupts.presses();
        let end = Instant::now() + d;
        while Instant::now() < end && interrupts.presses() == presses && !interrupts.terminated() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A listener that accepts a connection only while fewer than [`MAX_CONNECTIONS`] are open.
struct Limited {
    inner: tokio::net::TcpListener,
    permits: Arc<tokio::sync::Semaphore>,
}

impl axum::serve::Listener for Limited {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            // Never closed; were it, no connection would be accepted again.
            return std::future::pending().await;
        };
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            Counted {
                io,
                _permit: permit,
                idle: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// How long a connection may carry nothing either way before it is closed: so that clients
/// that connect and send nothing (or stop reading) cannot keep the [`MAX_CONNECTIONS`] places.
/// The live page's event stream writes every second, so it is never idle this long.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// An accepted connection, which gives its place back when it closes, and closes after
/// [`IDLE_TIMEOUT`] without traffic.
struct Counted {
    io: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Counted {
    /// Moves the idle deadline on after traffic.
    fn active(&mut self) {
        self.idle
            .as_mut()
            .reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
    }

    /// What the socket's poll `polled` becomes: while it waits, an error once the connection
    /// has been idle too long (the timer, polled here, wakes the connection's task then);
    /// ready, the idle deadline moves on when bytes `moved`.
    fn watch<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: std::task::Poll<std::io::Result<T>>,
        moved: bool,
    ) -> std::task::Poll<std::io::Result<T>> {
        if polled.is_pending() {
            if self.idle.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "idle dashboard connection",
                )));
            }
        } else if moved {
            self.active();
        }
        polled
    }
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        self.watch(cx, polled, moved)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, polled, true)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, polled, true)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

fn app(served: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/cluster", get(cluster))
        .route("/api/compare", get(compare))
        .route("/runs/{id}", get(stored_report))
        .route("/runs/{id}/live", get(live_page))
        .route("/runs/{id}/api/data", get(live_data))
        .route("/runs/{id}/api/events", get(live_events))
        .route("/runs/{id}/api/stop", post(live_stop))
        .route("/runs/{id}/api/load", post(live_load))
        .route("/api/data", get(data))
        .route("/api/events", get(events))
        .route("/api/stop", post(stop))
        .route("/api/load", post(load))
        .route("/licenses/uplot", get(licence))
        .layer(axum::middleware::from_fn_with_state(served.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(served)
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// The token and origin rules (see the module's doc).
async fn guard(State(s): State<Arc<Served>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if let Some(expected) = &s.token {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = req.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        });
        let ok = bearer.is_some_and(|t| token::matches(t, expected))
            || query.is_some_and(|t| token::matches(&t, expected));
        if !ok {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this dashboard requires its token: open the URL loads printed (?token=...)",
            );
        }
    } else if s.loopback && !loopback_host(headers, s.addr) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the dashboard answers only requests for its loopback address",
        );
    }
    if req.method() == axum::http::Method::POST {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let same_origin = match (headers.get(header::ORIGIN), host) {
            (None, _) => true,
            (Some(o), Some(h)) => o.to_str().ok() == Some(&format!("http://{h}")),
            (Some(_), None) => false,
        };
        if !json || !same_origin {
            return refuse(
                StatusCode::FORBIDDEN,
                "control actions come as JSON from the dashboard's own page",
            );
        }
    }
    next.run(req).await
}

/// Whether the request names a loopback host of the server at `addr`: its own address (as the
/// printed URL has it), `127.0.0.1`, `localhost` or `[::1]`, never a name that resolves to it.
fn loopback_host(headers: &HeaderMap, addr: SocketAddr) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (own, port) = (addr.to_string(), addr.port());
    let own_ip = own.rsplit_once(':').map_or("", |(ip, _)| ip);
    host == own
        || (port == 80 && host == own_ip)
        || ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|h| host == format!("{h}:{port}") || (port == 80 && host == *h))
}

async fn page(State(s): State<Arc<Served>>) -> Html<String> {
    if s.hub.cluster().is_some() {
        return Html(super::page::render_broker());
    }
    Html(render("loads dashboard", &s.hub.current(), Mode::Live))
}

/// Runs `f` with the broker's view on the blocking pool (it waits for the broker).
/// Stored runs rebuilt at once for the broker's page (a report, or the two runs of a
/// comparison): each can take up to the memory of a run's merged histograms (README "Security"),
/// so more requests wait their turn instead of multiplying it.
const MAX_REBUILDS: usize = 2;
static REBUILDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_REBUILDS);

/// [`with_cluster`] for a rebuild of stored runs, at most [`MAX_REBUILDS`] at once.
async fn with_rebuild<T: Send + 'static>(
    s: &Served,
    f: impl FnOnce(&dyn super::hub::ClusterView) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let Ok(_turn) = REBUILDS.acquire().await else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the page is closing",
        ));
    };
    with_cluster(s, f).await
}

async fn with_cluster<T: Send + 'static>(
    s: &Served,
    f: impl FnOnce(&dyn super::hub::ClusterView) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let Some(view) = s.hub.cluster() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "this page is the dashboard of a run, not of a broker",
        ));
    };
    match tokio::task::spawn_blocking(move || f(view.as_ref())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(refuse(StatusCode::BAD_GATEWAY, &e)),
        Err(_) => Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed",
        )),
    }
}

fn json_response(v: &impl serde::Serialize) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(v).unwrap_or_else(|_| "null".into()),
    )
        .into_response()
}

async fn cluster(State(s): State<Arc<Served>>) -> Response {
    match with_cluster(&s, |v| v.overview()).await {
        Ok(v) => json_response(&v),
        Err(r) => r,
    }
}

/// A run id as the broker makes them (hex, `-`), checked before it is used.
fn run_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

async fn stored_report(
    State(s): State<Arc<Served>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if !run_id_ok(&id) {
        return refuse(StatusCode::BAD_REQUEST, "not a run id");
    }
    match with_rebuild(&s, move |v| v.report(&id)).await {
        Ok(d) => Html(render(
            &format!("loads report: {}", d.summary.test),
            &d.to_json(),
            Mode::Report,
        ))
        .into_response(),
        Err(r) => r,
    }
}

async fn compare(State(s): State<Arc<Served>>, uri: axum::http::Uri) -> Response {
    let q: std::collections::HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let (Some(a), Some(b)) = (q.get("a").cloned(), q.get("b").cloned()) else {
        return refuse(StatusCode::BAD_REQUEST, "compare needs ?a=RUN&b=RUN");
    };
    if !run_id_ok(&a) || !run_id_ok(&b) {
        return refuse(StatusCode::BAD_REQUEST, "not a run id");
    }
    match with_rebuild(&s, move |v| {
        let (x, y) = (v.report(&a)?, v.report(&b)?);
        Ok(super::data::compare(&x.summary, &y.summary))
    })
    .await
    {
        Ok(c) => json_response(&c),
        Err(r) => r,
    }
}

async fn data(State(s): State<Arc<Served>>) -> Response {
    data_of(&s.hub)
}

/// The latest page data of `hub`'s run.
fn data_of(hub: &Hub) -> Response {
    let current = hub.current();
    if current.is_empty() {
        // Before the run's first snapshot (made once a second): say so, never an empty 200.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::RETRY_AFTER, "1"),
            ],
            r#"{"error":"no data yet: the run's first snapshot comes within a second"}"#,
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        current.to_string(),
    )
        .into_response()
}

async fn events(State(s): State<Arc<Served>>) -> Response {
    events_of(&s.hub)
}

/// Server-Sent Events: each new page data of `hub`'s run.
fn events_of(hub: &Hub) -> Response {
    let mut rx = hub.subscribe();
    rx.mark_changed();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            let data = rx.borrow_and_update().clone();
            if !data.is_empty() {
                let event = Event::default().data(data.as_str());
                return Some((Ok::<_, std::convert::Infallible>(event), rx));
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The live view's hub of active run `id` (the broker's page).
async fn live_hub(s: &Served, id: String) -> Result<Arc<Hub>, Response> {
    if !run_id_ok(&id) {
        return Err(refuse(StatusCode::BAD_REQUEST, "not a run id"));
    }
    match with_cluster(s, move |v| v.live(&id)).await? {
        Some(hub) => Ok(hub),
        None => Err(refuse(
            StatusCode::NOT_FOUND,
            "no such active run: the broker's page lists them, and a finished run's report is at runs/RUN_ID",
        )),
    }
}

async fn live_page(
    State(s): State<Arc<Served>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match live_hub(&s, id.clone()).await {
        Ok(hub) => Html(render(
            &format!("loads run {id} (live, from the broker)"),
            &hub.current(),
            Mode::Live,
        ))
        .into_response(),
        Err(r) => r,
    }
}

async fn live_data(
    State(s): State<Arc<Served>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match live_hub(&s, id).await {
        Ok(hub) => data_of(&hub),
        Err(r) => r,
    }
}

async fn live_events(
    State(s): State<Arc<Served>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match live_hub(&s, id).await {
        Ok(hub) => events_of(&hub),
        Err(r) => r,
    }
}

async fn live_stop(
    State(s): State<Arc<Served>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match live_hub(&s, id).await {
        Ok(hub) => stop_of(hub).await,
        Err(r) => r,
    }
}

async fn live_load(
    State(s): State<Arc<Served>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match live_hub(&s, id).await {
        Ok(_) => refuse(
            StatusCode::CONFLICT,
            "change the load from the dashboard of the run's caller (loads run --web), which knows its plan",
        ),
        Err(r) => r,
    }
}

async fn stop(State(s): State<Arc<Served>>) -> Response {
    stop_of(s.hub.clone()).await
}

/// Stops `hub`'s run through its control (which may ask a broker: not on the server's thread).
async fn stop_of(hub: Arc<Hub>) -> Response {
    let Some(c) = hub.control() else {
        return refuse(StatusCode::CONFLICT, "this run cannot be stopped from here");
    };
    match tokio::task::spawn_blocking(move || c.stop()).await {
        Ok(Ok(m)) => (StatusCode::OK, m).into_response(),
        Ok(Err(e)) => refuse(StatusCode::CONFLICT, &e),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the stop failed"),
    }
}

/// The body of `POST api/load`.
#[derive(serde::Deserialize)]
struct LoadChange {
    /// The scenario, or none for the whole run.
    scenario: Option<String>,
    /// Users (closed models) or hits per second (open model).
    value: f64,
}

async fn load(State(s): State<Arc<Served>>, body: axum::body::Bytes) -> Response {
    let Ok(change) = serde_json::from_slice::<LoadChange>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "expected {\"scenario\": null or a name, \"value\": a number}",
        );
    };
    if !change.value.is_finite() || change.value < 0.0 {
        return refuse(StatusCode::BAD_REQUEST, "the value must be a number ≥ 0");
    }
    if s.hub.finished() {
        // A lingering dashboard: nothing would make the change, nor record it.
        return refuse(
            StatusCode::CONFLICT,
            "the run has ended: its load no longer changes",
        );
    }
    let Some(c) = s.hub.control() else {
        return refuse(StatusCode::CONFLICT, "this run cannot change its load");
    };
    // A cluster run's change waits for the broker: not on the server's only thread.
    let done =
        tokio::task::spawn_blocking(move || c.change(change.scenario.as_deref(), change.value))
            .await;
    match done {
        Ok(Ok(m)) => (StatusCode::OK, m).into_response(),
        Ok(Err(e)) => refuse(StatusCode::CONFLICT, &e),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the change failed"),
    }
}

async fn licence() -> &'static str {
    assets::UPLOT_LICENSE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_url_carries_any_token_as_given() {
        let token = "p+q&r#s% t/é";
        let server = WebServer {
            addr: SocketAddr::from(([127, 0, 0, 1], 8089)),
            token: Some(token.into()),
        };
        let url = url::Url::parse(&server.url()).expect("a URL");
        let given: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(given, [("token".to_owned(), token.to_owned())], "{url}");
        assert!(url.fragment().is_none(), "{url}");
    }
}
