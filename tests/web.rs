//! The web dashboard (`loads run --web`) and the html report, in a real headless Chromium
//! driven over WebDriver (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them
//! and sets `LOADS_REQUIRE_BROWSER=1`, without which a machine lacking them skips the browser
//! tests). Every run targets the demo server on loopback and is bounded in time. Screenshots
//! go to `target/tmp/artifacts/`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{DemoServer, figure, loads, run, stderr};
use fantoccini::actions::InputSource as _;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("web-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("workdir");
    dir
}

/// chromedriver and chromium, when installed.
fn browser_available() -> bool {
    let ok = |b: &str| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let found = ok("chromedriver") && ok("chromium");
    if !found && std::env::var_os("LOADS_REQUIRE_BROWSER").is_some() {
        panic!(
            "LOADS_REQUIRE_BROWSER is set but chromium or chromedriver is missing: apt install chromium chromium-driver"
        );
    }
    found
}

/// A chromedriver of this test, stopped (by its PID) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn open_browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1300,2600", "--no-first-run"]
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// chromedriver's browser log (console messages, failed loads).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// The console errors (and failed loads) the page had so far.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("browser log");
    log.as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["level"] == "SEVERE")
                .map(|e| e["message"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script")
}

async fn body_number(c: &Client, key: &str) -> u64 {
    js(
        c,
        &format!("return parseInt(document.body.dataset.{key} || '0', 10);"),
    )
    .await
    .as_u64()
    .unwrap_or(0)
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = artifacts().join(name);
    std::fs::write(&path, &png).expect("write screenshot");
    assert!(
        png.len() > 10_000,
        "screenshot {} too small",
        path.display()
    );
    eprintln!("screenshot saved to {}", path.display());
}

/// Six uPlot charts, each with points drawn.
async fn assert_charts(c: &Client) {
    let charts = c
        .find_all(Locator::Css(".chart canvas"))
        .await
        .expect("charts");
    assert_eq!(charts.len(), 6, "charts");
    for i in 0..6 {
        let chart = c
            .find(Locator::Id(&format!("chart-{i}")))
            .await
            .expect("chart");
        let points: u64 = chart
            .attr("data-points")
            .await
            .expect("attr")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        assert!(points >= 2, "chart {i} has {points} points");
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A `loads run ... --web` in the background: its dashboard URL, its stderr lines as they come.
struct LiveRun {
    child: Child,
    url: String,
    lines: mpsc::Receiver<String>,
}

impl LiveRun {
    fn start(args: &[&str]) -> LiveRun {
        let mut command = loads();
        command.args(args);
        LiveRun::spawn(command)
    }

    /// Starts `command` (`loads ARGS`) as [`start`](Self::start) does.
    fn spawn(mut command: Command) -> LiveRun {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loads");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("a Dashboard: line on stderr");
            if let Some(u) = line.strip_prefix("Dashboard: ") {
                break u.split_whitespace().next().expect("url").to_owned();
            }
        };
        LiveRun {
            child,
            url,
            lines: rx,
        }
    }

    /// Waits for the end (at most `limit`): exit code and standard output.
    fn wait(&mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let code = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("loads did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut text = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        (code, text)
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[cfg_attr(
    loads_no_webdriver,
    ignore = "needs chromium and chromedriver (.ci/run installs them: apt install chromium chromium-driver)"
)]
fn the_live_page_grows_every_second_and_its_stop_button_ends_the_run_as_ctrl_c() {
    assert!(
        browser_available(),
        "chromium or chromedriver is missing, although the build found them"
    );
    let server = DemoServer::start();
    let mut live = LiveRun::start(&[
        "run",
        "example::volume",
        "-u",
        "3",
        "-d",
        "60s",
        "-s",
        &server.url,
        "--threshold",
        "failures==0",
        "--web",
        "127.0.0.1:0",
    ]);
    let driver = Driver::start();
    let started = Instant::now();
    block_on(async {
        let c = open_browser(&driver).await;
        c.goto(&live.url).await.expect("open the dashboard");
        // Updates arrive once a second, and the numbers grow with them.
        let deadline = Instant::now() + Duration::from_secs(15);
        while body_number(&c, "updates").await < 2 || body_number(&c, "hits").await == 0 {
            assert!(Instant::now() < deadline, "no live updates");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (u1, h1) = (
            body_number(&c, "updates").await,
            body_number(&c, "hits").await,
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (u2, h2) = (
            body_number(&c, "updates").await,
            body_number(&c, "hits").await,
        );
        assert!(u2 >= u1 + 2, "updates {u1} -> {u2} in 2.5 s");
        assert!(h2 > h1, "hits {h1} -> {h2}");
        let verdict = c.find(Locator::Id("verdict")).await.expect("verdict");
        assert_eq!(verdict.text().await.expect("text"), "RUNNING");
        let users = js(
            &c,
            "return document.querySelector('.card[data-k=\"active users\"] .v').textContent;",
        )
        .await;
        assert_eq!(users, "3");
        let thresholds = c.find(Locator::Id("thresholds")).await.expect("thresholds");
        assert!(
            thresholds
                .text()
                .await
                .expect("text")
                .contains("failures==0")
        );
        assert_charts(&c).await;
        screenshot(&c, "web-live.png").await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        // Stop.
        c.find(Locator::Id("stop"))
            .await
            .expect("stop button")
            .click()
            .await
            .expect("click");
        let _ = c.close().await;
    });
    let (code, text) = live.wait(Duration::from_secs(20));
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "the run was not stopped"
    );
    assert_eq!(code, Some(130), "{text}");
    assert!(text.contains("Interrupted:"), "{text}");
    assert!(text.contains("Result:        INTERRUPTED"), "{text}");
    assert!(figure(&text, "Hits:") > 0, "{text}");
}

#[test]
#[cfg_attr(
    loads_no_webdriver,
    ignore = "needs chromium and chromedriver (.ci/run installs them: apt install chromium chromium-driver)"
)]
fn the_offline_report_is_the_same_page_and_makes_no_request() {
    assert!(
        browser_available(),
        "chromium or chromedriver is missing, although the build found them"
    );
    let server = DemoServer::start();
    let dir = workdir("report");
    let html = dir.join("report.html");
    let out = run(&[
        "run",
        "example::volume",
        "-u",
        "3",
        "-d",
        "3s",
        "-s",
        &server.url,
        "-q",
        "-o",
        "html",
        "--output-html-path",
        html.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let driver = Driver::start();
    block_on(async {
        let c = open_browser(&driver).await;
        c.goto(&format!("file://{}", html.display()))
            .await
            .expect("open the report");
        assert_eq!(body_number(&c, "ready").await, 1);
        assert_charts(&c).await;
        // No request beyond the file itself: scripts, styles and data are in it.
        let requests = js(
            &c,
            "return performance.getEntriesByType('resource').map(e => e.name);",
        )
        .await;
        assert_eq!(requests, json!([]), "the report fetched something");
        let verdict = c.find(Locator::Id("verdict")).await.expect("verdict");
        assert_eq!(verdict.text().await.expect("text"), "OK");
        // No live controls in a report.
        let controls = c.find(Locator::Id("controls")).await.expect("controls");
        assert!(!controls.is_displayed().await.expect("displayed"));
        // Hovering a chart shows its values in the legend.
        let chart = c
            .find(Locator::Css("#chart-0 .u-over"))
            .await
            .expect("chart");
        let to = |x: f64| fantoccini::actions::PointerAction::MoveToElement {
            element: chart.clone(),
            duration: Some(Duration::from_millis(100)),
            x,
            y: 0.0,
        };
        let actions = fantoccini::actions::MouseActions::new("mouse".into())
            .then(to(-20.0))
            .pause(Duration::from_millis(100))
            .then(to(10.0));
        c.perform_actions(actions).await.expect("hover");
        let legend = js(
            &c,
            "return document.querySelector('#chart-0 .u-legend .u-series:nth-child(2) .u-value').textContent;",
        )
        .await;
        let shown: f64 = legend
            .as_str()
            .and_then(|v| v.replace(',', "").parse().ok())
            .unwrap_or(-1.0);
        assert!(shown > 0.0, "hover shows {legend}");
        screenshot(&c, "html-report-browser.png").await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        let _ = c.close().await;
    });
}

/// One HTTP/1.1 request to 127.0.0.1:`port`: status code and body.
fn http(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|h| h.starts_with("Host:")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

/// The page data of the live dashboard at `port` (`null` before its first snapshot).
fn page_data(port: u16) -> Value {
    let (_, body) = http(port, "GET", "/api/data", &[], "");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The active users of each second of the live dashboard's timeline at `port`.
fn timeline_users(port: u16) -> Vec<u64> {
    page_data(port)["summary"]["timeline"]
        .as_array()
        .map(|t| t.iter().filter_map(|s| s["users"].as_u64()).collect())
        .unwrap_or_default()
}

/// Presses the stop of the dashboard at `port` (on loopback, no token): the answer's status.
fn press_stop(port: u16) -> u16 {
    http(
        port,
        "POST",
        "/api/stop",
        &["Content-Type: application/json"],
        "{}",
    )
    .0
}

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .and_then(|h| h.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

#[test]
fn beyond_loopback_every_request_needs_the_token() {
    let server = DemoServer::start();
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "-u",
        "1",
        "-d",
        "30s",
        "-s",
        &server.url,
        "-q",
        "--web",
        "0.0.0.0:0",
    ]);
    // A generated token is printed with the URL.
    let token = live
        .url
        .split("?token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no token in {}", live.url))
        .to_owned();
    assert_eq!(token.len(), 32);
    let port = port_of(&live.url);
    for path in ["/", "/api/data", "/api/events", "/?token=wrong"] {
        let (code, body) = http(port, "GET", path, &[], "");
        assert_eq!(code, 401, "{path}: {body}");
        assert!(body.contains("token"), "{body}");
    }
    let (code, _) = http(
        port,
        "POST",
        "/api/stop",
        &["Content-Type: application/json"],
        "{}",
    );
    assert_eq!(code, 401, "stop without the token");
    let (code, body) = http(port, "GET", &format!("/?token={token}"), &[], "");
    assert_eq!(code, 200);
    assert!(
        body.contains("<canvas") || body.contains("uPlot"),
        "the page"
    );
    let bearer = format!("Authorization: Bearer {token}");
    // The first snapshot comes within a second of the start (503 until then).
    let mut answer = http(port, "GET", "/api/data", &[&bearer], "");
    for _ in 0..30 {
        if answer.0 != 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        answer = http(port, "GET", "/api/data", &[&bearer], "");
    }
    let (code, body) = answer;
    assert_eq!(code, 200, "{body}");
    let data: Value = serde_json::from_str(&body).expect("page data");
    assert_eq!(data["summary"]["test"], "example::health");
    assert_eq!(data["live"]["running"], true);
    // Still running: nothing stopped it.
    assert!(live.child.try_wait().expect("wait").is_none());
    // With the token, the stop goes through.
    let (code, _) = http(
        port,
        "POST",
        "/api/stop",
        &[&bearer, "Content-Type: application/json"],
        "{}",
    );
    assert_eq!(code, 200);
    let (code, text) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(130), "{text}");
}

#[test]
fn beyond_loopback_connections_without_the_token_cannot_take_the_runs_open_files() {
    // Linux only, as the project: a machine without /proc fails here instead of passing.
    assert!(
        Path::new("/proc/self/fd").is_dir(),
        "no /proc to count the process's open files"
    );
    let server = DemoServer::start();
    let live = LiveRun::start(&[
        "run",
        "example::health",
        "-u",
        "1",
        "-d",
        "30s",
        "-s",
        &server.url,
        "-q",
        "--web",
        "0.0.0.0:0",
    ]);
    let port = port_of(&live.url);
    let token = live.url.split("?token=").nth(1).expect("token").to_owned();
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", live.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = fds();
    // 300 connections that never send a request (nor the token), on loopback (those beyond
    // the listen queue time out).
    let idle = silent_connections(port, 300);
    std::thread::sleep(Duration::from_millis(500));
    let during = fds();
    assert!(
        during < before + 200,
        "{} idle connections took {} of the run's open files ({before} before)",
        idle.len(),
        during - before
    );
    drop(idle);
    // Once they are gone, the page answers again.
    let bearer = format!("Authorization: Bearer {token}");
    until_the_page_answers(
        port,
        &bearer,
        Instant::now() + Duration::from_secs(10),
        "again",
    );
}

/// `n` connections to `port` on loopback that send nothing (those beyond the listen queue
/// time out and are not kept).
fn silent_connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(100),
            )
            .ok()
        })
        .collect()
}

/// Asks the page at `port` for `/` with the header `bearer` until it answers 200, failing at
/// `deadline` (`when` says in what circumstances it should have answered).
fn until_the_page_answers(port: u16, bearer: &str, deadline: Instant, when: &str) {
    loop {
        let (code, _) = http(port, "GET", "/", &[bearer], "");
        if code == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never answered {when}: {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn connections_that_send_nothing_give_their_places_back_and_the_page_answers() {
    let server = DemoServer::start();
    let live = LiveRun::start(&[
        "run",
        "example::health",
        "-u",
        "1",
        "-d",
        "45s",
        "-s",
        &server.url,
        "-q",
        "--web",
        "0.0.0.0:0",
    ]);
    let port = port_of(&live.url);
    let token = live.url.split("?token=").nth(1).expect("token").to_owned();
    let bearer = format!("Authorization: Bearer {token}");
    // 200 connections that never send a request and stay open (on loopback): more than the
    // dashboard's places.
    let started = Instant::now();
    let _idle = silent_connections(port, 200);
    // Within the idle timeout (20 s) and a margin, the page answers a real request again
    // although the idle connections are still open on this side.
    until_the_page_answers(
        port,
        &bearer,
        started + Duration::from_secs(35),
        "while 200 idle connections stayed open",
    );
}

#[test]
fn on_loopback_the_page_answers_only_its_own_host_and_origin() {
    let server = DemoServer::start();
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "-u",
        "1",
        "-d",
        "30s",
        "-s",
        &server.url,
        "-q",
        "--web",
        "127.0.0.1:0",
    ]);
    assert!(!live.url.contains("token"), "{}", live.url);
    let port = port_of(&live.url);
    let (code, _) = http(port, "GET", "/api/data", &[], "");
    // Admitted (503 only until the run's first snapshot).
    assert!(matches!(code, 200 | 503), "{code}");
    // DNS rebinding: another host name is refused.
    let (code, _) = http(port, "GET", "/api/data", &["Host: evil.example"], "");
    assert_eq!(code, 403);
    // Cross-site posts: a form's content type, or another origin, are refused.
    let (code, _) = http(
        port,
        "POST",
        "/api/stop",
        &["Content-Type: application/x-www-form-urlencoded"],
        "",
    );
    assert_eq!(code, 403);
    let (code, _) = http(
        port,
        "POST",
        "/api/stop",
        &[
            "Content-Type: application/json",
            "Origin: http://evil.example",
        ],
        "{}",
    );
    assert_eq!(code, 403);
    assert!(
        live.child.try_wait().expect("wait").is_none(),
        "stopped by a refused request"
    );
    let origin = format!("Origin: http://127.0.0.1:{port}");
    let (code, _) = http(
        port,
        "POST",
        "/api/stop",
        &["Content-Type: application/json", &origin],
        "{}",
    );
    assert_eq!(code, 200);
    let (code, _) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(130));
    // A busy or bad address is a usage error.
    let out = run(&["run", "example::health", "--web", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--web"), "{}", stderr(&out));
}

#[test]
fn on_another_loopback_address_the_page_answers_the_url_it_printed() {
    let server = DemoServer::start();
    let live = LiveRun::start(&[
        "run",
        "example::health",
        "-u",
        "1",
        "-d",
        "30s",
        "-s",
        &server.url,
        "-q",
        "--web",
        "127.0.0.2:0",
    ]);
    assert!(!live.url.contains("token"), "{}", live.url);
    let port = port_of(&live.url);
    let host = format!("127.0.0.2:{port}");
    let mut s = TcpStream::connect(&host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /api/data HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).unwrap_or("");
    // Admitted (503 only until the run's first snapshot).
    assert!(matches!(status, "200" | "503"), "{answer}");
}

#[test]
#[cfg_attr(
    loads_no_webdriver,
    ignore = "needs chromium and chromedriver (.ci/run installs them: apt install chromium chromium-driver)"
)]
fn changing_users_from_5_to_20_shows_20_users_in_the_timeline_within_3_s() {
    assert!(
        browser_available(),
        "chromium or chromedriver is missing, although the build found them"
    );
    let server = DemoServer::start();
    let dir = workdir("users");
    let json_path = dir.join("summary.json");
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "-u",
        "5",
        "-d",
        "60s",
        "-s",
        &server.url,
        "-q",
        "-o",
        "json",
        "--output-json-path",
        json_path.to_str().expect("path"),
        "--web",
        "127.0.0.1:0",
    ]);
    let port = port_of(&live.url);
    let driver = Driver::start();
    block_on(async {
        let c = open_browser(&driver).await;
        c.goto(&live.url).await.expect("open the dashboard");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !timeline_users(port).contains(&5) {
            assert!(Instant::now() < deadline, "never 5 users");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let apply = c.find(Locator::Id("apply")).await.expect("apply");
        assert!(
            apply.is_displayed().await.expect("shown"),
            "no load control"
        );
        let target = c.find(Locator::Id("target")).await.expect("target");
        target.send_keys("20").await.expect("type");
        let changed = Instant::now();
        apply.click().await.expect("click");
        loop {
            if timeline_users(port).contains(&20) {
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(3),
                "no second with 20 users 3 s after the change: {:?}",
                timeline_users(port)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = c.find(Locator::Id("control-status")).await.expect("status");
        assert_eq!(status.text().await.expect("text"), "users set to 20");
        // The change shows on the page as the run's summary records it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let notes = c.find(Locator::Id("summary-notes")).await.expect("notes");
        assert!(
            notes
                .text()
                .await
                .expect("text")
                .contains("users set to 20")
        );
        screenshot(&c, "web-users-changed.png").await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        c.find(Locator::Id("stop"))
            .await
            .expect("stop")
            .click()
            .await
            .expect("click");
        let _ = c.close().await;
    });
    let (code, _) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(130));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("summary")).expect("json");
    assert_eq!(summary["changes"][0]["users"], 20, "{}", summary["changes"]);
    assert!(
        summary["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|s| s["users"] == 20)
    );
}

#[test]
#[cfg_attr(
    loads_no_webdriver,
    ignore = "needs chromium and chromedriver (.ci/run installs them: apt install chromium chromium-driver)"
)]
fn a_cluster_run_on_two_agents_shows_both_agents_and_the_merged_totals() {
    assert!(
        browser_available(),
        "chromium or chromedriver is missing, although the build found them"
    );
    let server = DemoServer::start();
    let cluster = Cluster::start("web", 2);
    let dir = workdir("cluster");
    let json_path = dir.join("summary.json");
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "--agents",
        "2",
        "-u",
        "2",
        "-d",
        "4s",
        "-s",
        &server.url,
        "--broker",
        &cluster.front,
        "-q",
        "-o",
        "json",
        "--output-json-path",
        json_path.to_str().expect("path"),
        "--web",
        "127.0.0.1:0",
        "--web-linger",
        "60s",
    ]);
    let driver = Driver::start();
    block_on(async {
        let c = open_browser(&driver).await;
        c.goto(&live.url).await.expect("open the dashboard");
        // Live: both agents send their share while the run goes on.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let agents = c
                .find_all(Locator::Css("#agents tbody tr"))
                .await
                .expect("rows");
            if agents.len() == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "the page never showed 2 agents");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // The end: the page's last data is the final summary.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !json_path.exists()
            || js(
                &c,
                "return document.getElementById('live-status').textContent;",
            )
            .await
                != "the run has ended"
        {
            assert!(Instant::now() < deadline, "the run never ended");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).expect("summary"))
                .expect("json");
        let hits = summary["hits"].as_u64().expect("hits");
        assert!(hits > 0);
        let card = js(
            &c,
            "return document.querySelector('.card[data-k=\"hits\"] .v').textContent;",
        )
        .await;
        assert_eq!(card, json!(hits.to_string()), "merged hits on the page");
        let rows = js(
            &c,
            "return Array.from(document.querySelectorAll('#agents tbody tr')).map(r => [r.cells[0].textContent, r.cells[2].textContent, parseInt(r.cells[3].textContent, 10)]);",
        )
        .await;
        let rows = rows.as_array().expect("rows").clone();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let per_agent: u64 = rows.iter().map(|r| r[2].as_u64().unwrap_or(0)).sum();
        assert_eq!(
            per_agent, hits,
            "the agents' hits add up to the total: {rows:?}"
        );
        for r in &rows {
            assert_eq!(r[1], "done", "{rows:?}");
            assert!(
                r[2].as_u64().unwrap_or(0) > 0,
                "an agent without hits: {rows:?}"
            );
        }
        let ids: Vec<&str> = summary["per_agent"]
            .as_array()
            .expect("per_agent")
            .iter()
            .filter_map(|a| a["id"].as_str())
            .collect();
        assert_eq!(ids.len(), 2);
        for r in &rows {
            assert!(
                ids.contains(&r[0].as_str().unwrap_or("")),
                "{rows:?} {ids:?}"
            );
        }
        screenshot(&c, "web-cluster.png").await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        let _ = c.close().await;
    });
    // Ctrl-C ends the linger; the run's own exit code stays.
    let _ = Command::new("kill")
        .args(["-INT", &live.child.id().to_string()])
        .status();
    let (code, _) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0));
}

#[test]
#[cfg_attr(
    loads_no_webdriver,
    ignore = "needs chromium and chromedriver (.ci/run installs them: apt install chromium chromium-driver)"
)]
fn the_broker_page_lists_stored_runs_opens_their_reports_and_compares_two() {
    assert!(
        browser_available(),
        "chromium or chromedriver is missing, although the build found them"
    );
    let server = DemoServer::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cluster = Cluster::start_with("webbroker", 1, None, &["--web", &addr]);
    for hits in ["50", "100"] {
        let out = run(&[
            "run",
            "example::health",
            "--agents",
            "1",
            "-u",
            "2",
            "--hits",
            hits,
            "-s",
            &server.url,
            "--broker",
            &cluster.front,
            "-q",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let driver = Driver::start();
    block_on(async {
        let c = open_browser(&driver).await;
        c.goto(&format!("http://{addr}/"))
            .await
            .expect("open the broker page");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let runs = c
                .find_all(Locator::Css("#runs tbody tr"))
                .await
                .expect("runs");
            let agents = c
                .find_all(Locator::Css("#agents tbody tr"))
                .await
                .expect("agents");
            if runs.len() == 2 && agents.len() == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the page never listed 2 runs and 1 agent"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for b in c
            .find_all(Locator::Css("#runs tbody input[type=checkbox]"))
            .await
            .expect("boxes")
        {
            b.click().await.expect("tick");
        }
        c.find(Locator::Id("compare"))
            .await
            .expect("compare")
            .click()
            .await
            .expect("click");
        let deadline = Instant::now() + Duration::from_secs(60);
        while body_number(&c, "compared").await != 1 {
            assert!(Instant::now() < deadline, "no comparison");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let counts = js(
            &c,
            "var r = document.querySelector('#compare-urls tbody tr'); return [r.cells[0].textContent, r.cells[1].textContent, r.cells[2].textContent];",
        )
        .await;
        let counts = counts.as_array().expect("row").clone();
        assert!(
            counts[0].as_str().unwrap_or("").contains("/health"),
            "{counts:?}"
        );
        let mut n: Vec<&str> = vec![
            counts[1].as_str().unwrap_or(""),
            counts[2].as_str().unwrap_or(""),
        ];
        n.sort();
        assert_eq!(n, ["100", "200"], "requests of the two runs");
        let tests = c.find(Locator::Id("compare-tests")).await.expect("tests");
        assert!(
            tests
                .text()
                .await
                .expect("text")
                .contains("example::health")
        );
        screenshot(&c, "web-broker-compare.png").await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        // A stored run's full report: the report page, from the broker's storage.
        c.find(Locator::Css("a.run-link"))
            .await
            .expect("a run")
            .click()
            .await
            .expect("open it");
        let deadline = Instant::now() + Duration::from_secs(60);
        while body_number(&c, "ready").await != 1
            || c.find_all(Locator::Css(".chart canvas"))
                .await
                .map_or(0, |v| v.len())
                < 6
        {
            assert!(Instant::now() < deadline, "no report");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let verdict = c.find(Locator::Id("verdict")).await.expect("verdict");
        assert_eq!(verdict.text().await.expect("text"), "OK");
        assert!(body_number(&c, "hits").await == 100 || body_number(&c, "hits").await == 200);
        screenshot(&c, "web-broker-report.png").await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        let _ = c.close().await;
    });
    drop(cluster);
}

/// Seconds of the live run's timeline on the dashboard at `port`: `(unix time, hits,
/// dropped)`, the current (still filling) second left out.
fn complete_seconds(port: u16) -> Vec<(i64, u64, u64)> {
    let data = page_data(port);
    let mut seconds: Vec<(i64, u64, u64)> = data["summary"]["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|s| {
                    (
                        s["time"].as_i64().unwrap_or(0),
                        s["hits"].as_u64().unwrap_or(0),
                        s["dropped"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    seconds.pop();
    seconds
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Posts a load change to the dashboard at `port`: status and answer.
fn change_load(port: u16, body: &str) -> (u16, String) {
    http(
        port,
        "POST",
        "/api/load",
        &["Content-Type: application/json"],
        body,
    )
}

#[test]
fn the_open_models_arrival_rate_changes_live_pauses_at_0_and_is_recorded() {
    let server = DemoServer::start();
    let dir = workdir("rate");
    let json_path = dir.join("summary.json");
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "--rate",
        "5/s",
        "-d",
        "60s",
        "--max-users",
        "20",
        "-s",
        &server.url,
        "-q",
        "-o",
        "json",
        "--output-json-path",
        json_path.to_str().expect("path"),
        "--web",
        "127.0.0.1:0",
    ]);
    let port = port_of(&live.url);
    // The page learns that this run's change sets a rate.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let data = page_data(port);
        if data["live"]["loads"][0]["kind"] == "rate" {
            assert_eq!(data["live"]["change"], true);
            break;
        }
        assert!(Instant::now() < deadline, "no rate control: {data}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A rate of whole or fractional arrivals; nonsense is refused.
    for bad in [
        r#"{"value": -1}"#,
        r#"{"value": 1e12}"#,
        r#"{"scenario": "x", "value": 3}"#,
    ] {
        let (code, body) = change_load(port, bad);
        assert_eq!(
            code,
            if bad.contains("-1") { 400 } else { 409 },
            "{bad}: {body}"
        );
    }
    // Up to 50/s: a whole second at about that rate within 4 s.
    let (code, body) = change_load(port, r#"{"scenario": null, "value": 50}"#);
    assert_eq!((code, body.as_str()), (200, "arrival rate set to 50/s"));
    let changed = unix_now();
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let seconds = complete_seconds(port);
        if seconds.iter().any(|s| s.0 > changed && s.1 >= 40) {
            assert!(
                seconds.iter().all(|s| s.1 <= 55),
                "more than the rate asked for: {seconds:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no second near 50 hits 4 s after the change: {seconds:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // 0 pauses the arrivals (the run goes on), 20 resumes them.
    let (code, _) = change_load(port, r#"{"value": 0}"#);
    assert_eq!(code, 200);
    let paused = unix_now();
    // A second shows once it is over and sampled (up to 2 s later).
    std::thread::sleep(Duration::from_millis(4500));
    let seconds = complete_seconds(port);
    let quiet: Vec<_> = seconds.iter().filter(|s| s.0 > paused).collect();
    assert!(!quiet.is_empty(), "{seconds:?}");
    assert!(
        quiet.iter().all(|s| s.1 == 0),
        "hits while paused: {seconds:?}"
    );
    assert!(
        live.child.try_wait().expect("wait").is_none(),
        "a pause ends no run"
    );
    let (code, _) = change_load(port, r#"{"value": 20.5}"#);
    assert_eq!(code, 200);
    let resumed = unix_now();
    let deadline = Instant::now() + Duration::from_secs(4);
    while !complete_seconds(port)
        .iter()
        .any(|s| s.0 > resumed && (15..=25).contains(&s.1))
    {
        assert!(Instant::now() < deadline, "{:?}", complete_seconds(port));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(press_stop(port), 200);
    let (code, text) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(130), "{text}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("summary")).expect("json");
    let rates: Vec<f64> = summary["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["rate"].as_f64())
        .collect();
    assert_eq!(rates, [50.0, 0.0, 20.5], "{}", summary["changes"]);
    assert!(summary["changes"][0].get("users").is_none());
    assert_eq!(
        summary["open_model"]["dropped"], 0,
        "{}",
        summary["open_model"]
    );
}

#[test]
fn a_tiny_arrival_rate_does_not_crash_the_open_model() {
    let server = DemoServer::start();
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "--rate",
        "20/s",
        "-d",
        "6s",
        "-s",
        &server.url,
        "-q",
        "--web",
        "127.0.0.1:0",
    ]);
    let port = port_of(&live.url);
    let deadline = Instant::now() + Duration::from_secs(20);
    while page_data(port).is_null() {
        assert!(Instant::now() < deadline, "no page data");
        std::thread::sleep(Duration::from_millis(100));
    }
    // One arrival in 10^19 s: due after the end of time, so never.
    let (code, body) = change_load(port, r#"{"value": 1e-19}"#);
    assert_eq!(code, 200, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = change_load(port, r#"{"value": 20}"#);
    assert_eq!(code, 200, "{body}");
    let (code, text) = live.wait(Duration::from_secs(30));
    let err: Vec<String> = live.lines.try_iter().collect();
    assert!(
        !err.iter().any(|l| l.contains("panicked")),
        "{}",
        err.join("\n")
    );
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn after_the_run_a_lingering_dashboard_refuses_load_changes() {
    let server = DemoServer::start();
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "-u",
        "1",
        "-d",
        "2s",
        "-s",
        &server.url,
        "-q",
        "--web",
        "127.0.0.1:0",
        "--web-linger",
        "20s",
    ]);
    let port = port_of(&live.url);
    let deadline = Instant::now() + Duration::from_secs(20);
    while page_data(port)["live"]["finished"] != true {
        assert!(Instant::now() < deadline, "the run never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing runs any more: a change would be neither made nor recorded.
    let (code, body) = change_load(port, r#"{"value": 5}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("ended"), "{body}");
    // The stop (one Ctrl-C) ends the linger.
    assert_eq!(press_stop(port), 200);
    let (code, text) = live.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn a_change_to_more_users_than_open_files_allow_raises_the_limit_or_is_refused() {
    use std::os::unix::process::CommandExt as _;
    let server = DemoServer::start();
    let dir = workdir("open-files");
    let json_path = dir.join("summary.json");
    let mut command = loads();
    command.args([
        "run",
        "example::health",
        "-u",
        "5",
        "-d",
        "30s",
        "-s",
        &server.url,
        "-q",
        "-o",
        "json",
        "--output-json-path",
        json_path.to_str().expect("path"),
        "--web",
        "127.0.0.1:0",
    ]);
    // SAFETY: setrlimit only, in the child before exec.
    unsafe {
        command.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 300,
                rlim_max: 700,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut live = LiveRun::spawn(command);
    let port = port_of(&live.url);
    let deadline = Instant::now() + Duration::from_secs(20);
    while page_data(port).is_null() {
        assert!(Instant::now() < deadline, "no page data");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Beyond the hard limit: refused, as `-u 1000` would be.
    let (code, body) = change_load(port, r#"{"value": 1000}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("open files"), "{body}");
    // Within it: the soft limit is raised, as `-u 400` would raise it.
    let (code, body) = change_load(port, r#"{"value": 400}"#);
    assert_eq!(code, 200, "{body}");
    let changed = Instant::now();
    while !timeline_users(port).contains(&400) {
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "never 400 users: {:?}",
            timeline_users(port)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(press_stop(port), 200);
    let (code, text) = live.wait(Duration::from_secs(30));
    assert_eq!(code, Some(130), "{text}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("summary")).expect("json");
    assert_eq!(summary["errors"], 0, "{}", summary["problems"]);
}

#[test]
fn a_saturated_pool_drops_starts_and_the_timeline_says_in_which_seconds() {
    // One virtual user for 200 arrivals a second of a 1 s page: most arrivals find no free
    // user in time, and beyond its backlog (100 per user) they are dropped.
    let server = DemoServer::start();
    let summary = common::summary_of(
        "dropped",
        &[
            "run",
            "example::slow_1s",
            "--rate",
            "200/s",
            "-d",
            "3s",
            "--max-users",
            "1",
            "-s",
            &server.url,
        ],
        0,
    );
    let dropped = summary["open_model"]["dropped"].as_u64().expect("dropped");
    assert!(dropped > 0, "{}", summary["open_model"]);
    let per_second: u64 = summary["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|s| s["dropped"].as_u64())
        .sum();
    assert_eq!(per_second, dropped, "the seconds add up to the total");
}

#[test]
fn a_cluster_runs_users_change_is_divided_among_its_agents_and_recorded() {
    let server = DemoServer::start();
    let cluster = Cluster::start("web-load", 2);
    let dir = workdir("cluster-load");
    let json_path = dir.join("summary.json");
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "--agents",
        "2",
        "-u",
        "2",
        "-d",
        "60s",
        "-s",
        &server.url,
        "--broker",
        &cluster.front,
        "-q",
        "-o",
        "json",
        "--output-json-path",
        json_path.to_str().expect("path"),
        "--web",
        "127.0.0.1:0",
    ]);
    let port = port_of(&live.url);
    // Going on both agents (2 users each): a second shows 2 while one worker's sample of it
    // is in, 4 once both are; either says the run goes.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !timeline_users(port).iter().any(|&u| u >= 2) {
        assert!(
            Instant::now() < deadline,
            "never 2 users: {:?}",
            timeline_users(port)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // 9 users on 2 agents: 5 and 4, as the plan would divide them.
    let (code, body) = change_load(port, r#"{"value": 9}"#);
    assert_eq!(
        (code, body.as_str()),
        (200, "users set to 9 (divided among 2 agents)")
    );
    let changed = Instant::now();
    while !timeline_users(port).contains(&9) {
        // A worker sends its batch once a second: a second shows on the caller within 3 s.
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "no second with 9 users: {:?}",
            timeline_users(port)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, body) = change_load(port, r#"{"value": 9.5}"#);
    assert_eq!(code, 409, "{body}");
    assert_eq!(press_stop(port), 200);
    let (code, text) = live.wait(Duration::from_secs(60));
    assert_eq!(code, Some(130), "{text}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("summary")).expect("json");
    assert_eq!(summary["changes"].as_array().map(Vec::len), Some(1));
    assert_eq!(summary["changes"][0]["users"], 9, "{}", summary["changes"]);
    assert!(
        summary["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|s| s["users"] == 9)
    );
}

/// Sends `n` load changes to the dashboard at `port` at once (values 1 to `n`): their answers.
fn concurrent_changes(port: u16, n: u64) -> Vec<(u16, String)> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n as usize));
    let threads: Vec<_> = (1..=n)
        .map(|v| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                change_load(port, &format!(r#"{{"value": {v}}}"#))
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a change's thread"))
        .collect()
}

#[test]
fn concurrent_changes_of_a_cluster_run_are_recorded_in_the_order_the_agents_got_them() {
    let server = DemoServer::start();
    let cluster = Cluster::start("web-concurrent", 1);
    let dir = workdir("cluster-concurrent");
    let json_path = dir.join("summary.json");
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "--agents",
        "1",
        "-u",
        "2",
        "-d",
        "60s",
        "-s",
        &server.url,
        "--broker",
        &cluster.front,
        "-q",
        "-o",
        "json",
        "--output-json-path",
        json_path.to_str().expect("path"),
        "--web",
        "127.0.0.1:0",
    ]);
    let port = port_of(&live.url);
    let deadline = Instant::now() + Duration::from_secs(40);
    while !timeline_users(port).contains(&2) {
        assert!(Instant::now() < deadline, "never 2 users");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Two dashboards (or 20 clicks) at once: every change is accepted and recorded.
    let answers = concurrent_changes(port, 20);
    assert!(answers.iter().all(|(c, _)| *c == 200), "{answers:?}");
    assert_eq!(press_stop(port), 200);
    let (code, text) = live.wait(Duration::from_secs(30));
    assert_eq!(code, Some(130), "{text}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("summary")).expect("json");
    let changes = summary["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 20, "{changes:?}");
    let times: Vec<f64> = changes.iter().filter_map(|c| c["time"].as_f64()).collect();
    assert!(
        times.is_sorted(),
        "changes recorded out of the order they were made: {changes:?}"
    );
}

#[test]
fn a_lost_agent_shows_as_lost_while_the_run_goes_on() {
    let server = DemoServer::start();
    let mut cluster = Cluster::start("web-lost", 2);
    let mut live = LiveRun::start(&[
        "run",
        "example::health",
        "--agents",
        "2",
        "-u",
        "2",
        "-d",
        "60s",
        "-s",
        &server.url,
        "--broker",
        &cluster.front,
        "-q",
        "--web",
        "127.0.0.1:0",
    ]);
    let port = port_of(&live.url);
    let agents = |d: &Value| {
        d["summary"]["per_agent"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while agents(&page_data(port)).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "never 2 agents: {}",
            page_data(port)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.agents[0].kill_group();
    // The broker drops it after its --agent-timeout (6 s); the page says so while the run goes
    // on with the other agent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let d = loop {
        let d = page_data(port);
        if agents(&d).iter().any(|a| a["lost"] == true) {
            break d;
        }
        assert!(Instant::now() < deadline, "no lost agent: {d}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(d["live"]["running"], true, "the run goes on");
    assert_eq!(
        agents(&d).iter().filter(|a| a["lost"] == true).count(),
        1,
        "{d}"
    );
    let warned = (0..50).any(|_| {
        live.lines
            .recv_timeout(Duration::from_millis(100))
            .is_ok_and(|l| l.contains("was lost (no heartbeat): the run goes on without it"))
    });
    assert!(warned, "no warning on stderr");
    assert_eq!(press_stop(port), 200);
    let (code, text) = live.wait(Duration::from_secs(60));
    assert_eq!(code, Some(130), "{text}");
}

#[test]
fn the_broker_page_follows_an_active_run_live_and_stops_it() {
    let server = DemoServer::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cluster = Cluster::start_with("webbroker-live", 1, None, &["--web", &addr]);
    let out = run(&[
        "run",
        "example::health",
        "--agents",
        "1",
        "-u",
        "2",
        "-d",
        "60s",
        "-s",
        &server.url,
        "--broker",
        &cluster.front,
        "--detach",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let run_id = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no run id in {text}"))
        .trim_end_matches(';')
        .to_owned();
    let (code, body) = http(port, "GET", "/runs/no-such-run/live", &[], "");
    assert_eq!(code, 404, "{body}");
    let (code, body) = http(port, "GET", &format!("/runs/{run_id}/live"), &[], "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("uPlot"), "the dashboard's page");
    // Its data grows second by second, fed from the broker.
    let hits = |port: u16| -> Option<(u64, Value)> {
        let (code, body) = http(port, "GET", &format!("/runs/{run_id}/api/data"), &[], "");
        let d: Value = serde_json::from_str(&body).ok()?;
        (code == 200).then(|| (d["summary"]["hits"].as_u64().unwrap_or(0), d))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Some((h, d)) = hits(port).filter(|(h, _)| *h > 0) {
            assert_eq!(d["live"]["running"], true, "{d}");
            assert_eq!(d["live"]["control"], true, "{d}");
            assert_eq!(d["summary"]["run_id"], run_id.as_str());
            break h;
        }
        assert!(Instant::now() < deadline, "no hits in the live view");
        std::thread::sleep(Duration::from_millis(300));
    };
    std::thread::sleep(Duration::from_millis(2500));
    let (later, _) = hits(port).expect("data");
    assert!(later > first, "{first} then {later}");
    let (code, body) = http(
        port,
        "POST",
        &format!("/runs/{run_id}/api/load"),
        &["Content-Type: application/json"],
        r#"{"value": 5}"#,
    );
    assert_eq!(code, 409, "{body}");
    let (code, body) = http(
        port,
        "POST",
        &format!("/runs/{run_id}/api/stop"),
        &["Content-Type: application/json"],
        "{}",
    );
    assert_eq!(
        (code, body.as_str()),
        (200, format!("stopping run {run_id}").as_str())
    );
    // The view ends with the run: its last data says so.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((_, d)) = hits(port)
            && d["live"]["finished"] == true
        {
            assert_eq!(d["summary"]["interrupted"], true, "{}", d["summary"]);
            break;
        }
        assert!(Instant::now() < deadline, "the live view never ended");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn on_a_broker_with_curve_keys_the_page_sees_every_callers_runs() {
    let server = DemoServer::start();
    let dir = workdir("curve-broker");
    for name in ["broker", "agent", "caller"] {
        common::cluster::keygen(&dir, name);
    }
    let p = |f: &str| dir.join(f).to_str().expect("utf8").to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cluster = Cluster::start_with(
        "webcurve",
        0,
        None,
        &[
            "--curve-key",
            &p("broker.key"),
            "--authorized-agents",
            &p("agent.pub"),
            "--authorized-callers",
            &p("caller.pub"),
            "--web",
            &addr,
            "--web-token",
            "curve-page-secret",
        ],
    );
    cluster.add_agent_with(&[
        "--curve-key",
        &p("agent.key"),
        "--broker-key",
        &p("broker.pub"),
    ]);
    let out = run(&[
        "run",
        "example::health",
        "--agents",
        "1",
        "-u",
        "2",
        "--hits",
        "20",
        "-s",
        &server.url,
        "--broker",
        &cluster.front,
        "--curve-key",
        &p("caller.key"),
        "--broker-key",
        &p("broker.pub"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = common::cluster::run_id_of(&common::stdout(&out));
    // The page, an admin of the cluster, requires its token even on loopback.
    let (code, _) = http(port, "GET", "/api/cluster", &[], "");
    assert_eq!(code, 401);
    let auth = ["Authorization: Bearer curve-page-secret"];
    // With it, the page lists the caller's run and the agent, and opens the report.
    let deadline = Instant::now() + Duration::from_secs(30);
    let overview = loop {
        let (code, body) = http(port, "GET", "/api/cluster", &auth, "");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let listed = v["runs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["run_id"] == id.as_str()));
        if code == 200 && listed {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "never listed {id}: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(overview["ping"].to_string().contains("agent"), "{overview}");
    let (code, report) = http(port, "GET", &format!("/runs/{id}"), &auth, "");
    assert_eq!(code, 200, "{report}");
    assert!(
        report.contains("example::health"),
        "{}",
        &report[..report.len().min(300)]
    );
}
