//! The embedded demo server: a small HTTP and WebSocket target for the demo, the tests and the
//! benchmarks, so that loads can be tried with nothing else installed.
//!
//! Routes (all on loopback unless told otherwise):
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | a tiny HTML page |
//! | `GET /health` | `{"status":"ok"}` |
//! | `GET /api/items`, `GET /api/items/{id}`, `POST /api/items` | a JSON collection (20 items) |
//! | `GET /delay/{ms}` | answers after `ms` milliseconds (at most 60 000) |
//! | `GET /status/{code}` | answers with that status code |
//! | `GET\|POST /echo` | echoes the body (and content type), or the query string as JSON |
//! | `GET /basic-auth/{user}/{password}` | 200 with the right basic credentials, else 401 |
//! | `GET /cookies/set?name=value` | sets cookies and redirects to `/cookies` |
//! | `GET /cookies` | the cookies the client sent, as JSON |
//! | `GET /bytes/{n}` | `n` bytes (at most 10 MiB) |
//! | `GET /ws` | a WebSocket that echoes every message |
//! | `GET /ws/cookies` | a WebSocket that first sends the cookies of its handshake (as JSON), then echoes |
//! | `POST /stall/{ms}` | stalls the server: every other request received in the next `ms` milliseconds (at most 60 000) is answered only when they are over |
//!
//! Requests enter through the axum router built by `router`; nothing is stored.

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpListener;

/// Body of `GET /`.
pub(crate) const ROOT_PAGE: &str =
    "<!doctype html><title>loads demo</title><h1>Hello from loads</h1>\n";
/// Longest delay `/delay/{ms}` accepts.
pub(crate) const MAX_DELAY_MS: u64 = 60_000;
/// Largest body `/bytes/{n}` returns.
pub(crate) const MAX_BYTES: usize = 10 * 1024 * 1024;

/// The demo server's routes.
pub(crate) fn router() -> Router {
    // Until when the server stalls, in milliseconds since `epoch` (0: no stall).
    let epoch = std::time::Instant::now();
    let until = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stall_until = until.clone();
    let wait_until = until;
    let stalled = axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let until = wait_until.clone();
            async move {
                let ms = until.load(std::sync::atomic::Ordering::Relaxed);
                let end = epoch + Duration::from_millis(ms);
                if ms > 0 && end > std::time::Instant::now() {
                    tokio::time::sleep_until(end.into()).await;
                }
                next.run(req).await
            }
        },
    );
    routes().layer(stalled).route(
        "/stall/{ms}",
        axum::routing::post(move |Path(ms): Path<u64>| {
            let until = stall_until.clone();
            async move {
                if ms > MAX_DELAY_MS {
                    return (
                        StatusCode::BAD_REQUEST,
                        format!("a stall lasts at most {MAX_DELAY_MS} ms\n"),
                    )
                        .into_response();
                }
                let end = epoch.elapsed() + Duration::from_millis(ms);
                until.store(end.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
                Json(json!({"stalled_ms": ms})).into_response()
            }
        }),
    )
}

fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { Html(ROOT_PAGE) }))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/api/items", get(list_items).post(create_item))
        .route("/api/items/{id}", get(get_item))
        .route("/delay/{ms}", get(delay))
        .route("/status/{code}", get(status).post(status))
        .route("/echo", get(echo_query).post(echo_body).put(echo_body))
        .route("/basic-auth/{user}/{password}", get(basic_auth))
        .route("/cookies", get(cookies))
        .route("/cookies/set", get(set_cookies))
        .route("/bytes/{n}", get(bytes))
        .route("/ws", get(ws))
        .route("/ws/cookies", get(ws_cookies))
}

fn item(id: u64) -> Value {
    json!({"id": id, "name": format!("item {id}"), "price": (id * 137) % 1000, "tags": ["demo", "loads"]})
}

async fn list_items() -> Json<Value> {
    Json(Value::Array((1..=20).map(item).collect()))
}

async fn get_item(Path(id): Path<u64>) -> Response {
    if (1..=20).contains(&id) {
        Json(item(id)).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no item {id}")})),
        )
            .into_response()
    }
}

async fn create_item(body: Option<Json<Value>>) -> Response {
    match body {
        Some(Json(mut v)) if v.is_object() => {
            v["id"] = json!(21);
            (StatusCode::CREATED, Json(v)).into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected a JSON object"})),
        )
            .into_response(),
    }
}

async fn delay(Path(ms): Path<u64>) -> Response {
    if ms > MAX_DELAY_MS {
        return (
            StatusCode::BAD_REQUEST,
            format!("delay must be at most {MAX_DELAY_MS} ms\n"),
        )
            .into_response();
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"delayed_ms": ms})).into_response()
}

async fn status(Path(code): Path<u16>) -> Response {
    match StatusCode::from_u16(code) {
        Ok(s) if (200..=599).contains(&code) => (s, format!("status {code}\n")).into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            "status must be between 200 and 599\n",
        )
            .into_response(),
    }
}

async fn echo_query(Query(q): Query<BTreeMap<String, String>>) -> Json<BTreeMap<String, String>> {
    Json(q)
}

async fn echo_body(headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}

async fn basic_auth(
    Path((user, password)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(expected.as_str()) {
        Json(json!({"authenticated": true, "user": user})).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"loads demo\"")],
            Json(json!({"authenticated": false})),
        )
            .into_response()
    }
}

fn request_cookies(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

async fn cookies(headers: HeaderMap) -> Json<Value> {
    Json(json!({"cookies": request_cookies(&headers)}))
}

async fn set_cookies(RawQuery(q): RawQuery) -> Response {
    let mut res = Redirect::to("/cookies").into_response();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let valid = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !k.is_empty()
            && valid(k)
            && valid(v)
            && let Ok(h) = HeaderValue::from_str(&format!("{k}={v}; Path=/"))
        {
            res.headers_mut().append(header::SET_COOKIE, h);
        }
    }
    res
}

async fn bytes(Path(n): Path<usize>) -> Response {
    if n > MAX_BYTES {
        return (
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_BYTES} bytes\n"),
        )
            .into_response();
    }
    let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

/// Small socket buffers: the demo server holds thousands of sockets in benchmarks.
fn small(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade.read_buffer_size(4096).write_buffer_size(0)
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    small(upgrade).on_upgrade(echo_socket)
}

async fn ws_cookies(headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let cookies = serde_json::to_string(&request_cookies(&headers)).unwrap_or_default();
    small(upgrade).on_upgrade(move |mut socket| async move {
        if socket.send(WsMessage::Text(cookies.into())).await.is_ok() {
            echo_socket(socket).await;
        }
    })
}

async fn echo_socket(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        let echo = match msg {
            WsMessage::Text(_) | WsMessage::Binary(_) => msg,
            WsMessage::Close(_) => break,
            _ => continue,
        };
        if socket.send(echo).await.is_err() {
            break;
        }
    }
}

/// Serves the demo routes on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// A demo server running on its own thread and runtime.
pub struct DemoServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DemoServer {
    /// Starts a demo server on `bind` (port 0 picks a free one) with `threads` worker threads.
    pub fn start(bind: SocketAddr, threads: usize) -> std::io::Result<DemoServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("loads-demo")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind(bind))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("loads-demo".into())
            .spawn(move || {
                let shutdown = async {
                    let _ = rx.await;
                };
                if let Err(e) = runtime.block_on(serve(listener, shutdown)) {
                    eprintln!("demo server stopped: {e}");
                }
                runtime.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(DemoServer {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The URL of a demo server shared by every functional test of this process (started on first
/// use on a free loopback port). Suites pass it as `#[loads::suite(server = ...)]`.
pub fn test_server_url() -> String {
    static SERVER: OnceLock<Result<DemoServer, String>> = OnceLock::new();
    match SERVER.get_or_init(|| {
        DemoServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), 1).map_err(|e| e.to_string())
    }) {
        Ok(s) => s.url(),
        Err(e) => panic!("cannot start the demo server for functional tests: {e}"),
    }
}
