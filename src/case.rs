//! Writing tests: the test context ([`TestCase`]), outcomes ([`Outcome`], [`TestError`]), the
//! assertion macros, the [`Suite`] trait that `#[loads::suite]` implements, and the registry of
//! suites linked into the binary.
//!
//! A test is an `async fn(&mut self, t: &mut TestCase) -> Outcome` on a suite's per-user state.
//! Its outcome is a success, a **failure** (an assertion macro of this crate, or a panic such as
//! `assert_eq!`) or an **error** (anything returned with `?`). The runner calls
//! [`run_hit`] for every hit; panics are caught there and never take the run down.

use futures_util::FutureExt as _;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::config::RunArgs;
use crate::measure::{HttpError, Session, WebSocket, WsError};
use crate::result::{ExcInfo, LoadsStatus, UserRecorder};

/// The result of a test, of a set-up or of a tear-down.
pub type Outcome = Result<(), TestError>;

/// A boxed future, as the suite trait returns them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a hit did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestError {
    /// An assertion did not hold (counted as a failure).
    Failure(ExcInfo),
    /// Anything else went wrong (counted as an error).
    Error(ExcInfo),
}

impl TestError {
    /// A failure with `message`; `location` is where the assertion is (`at file:line:column`).
    pub fn failure(message: impl Into<String>, kind: &str, location: &str) -> Self {
        TestError::Failure(ExcInfo(
            message.into(),
            kind.to_owned(),
            location.to_owned(),
        ))
    }

    /// An error with `message`, for errors that are not Rust error values.
    pub fn error(message: impl Into<String>) -> Self {
        TestError::Error(ExcInfo(message.into(), "error".into(), String::new()))
    }

    /// `[message, kind, traceback]`.
    pub fn exc_info(&self) -> &ExcInfo {
        match self {
            TestError::Failure(e) | TestError::Error(e) => e,
        }
    }

    /// Whether this is a failure (rather than an error).
    pub fn is_failure(&self) -> bool {
        matches!(self, TestError::Failure(_))
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, e) = match self {
            TestError::Failure(e) => ("failure", e),
            TestError::Error(e) => ("error", e),
        };
        write!(f, "{what} ({}): {}", e.kind(), e.message())?;
        if !e.traceback().is_empty() {
            write!(f, "\n{}", e.traceback())?;
        }
        Ok(())
    }
}

/// `?` on any error value makes an *error* outcome: the message is the error and its sources,
/// the kind is the error's type name, the traceback lists the source chain.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for TestError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut traceback = String::new();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            if !traceback.is_empty() {
                traceback.push('\n');
            }
            traceback.push_str("caused by: ");
            traceback.push_str(&text);
            source = s.source();
        }
        let full = std::any::type_name::<E>();
        let kind = full
            .split('<')
            .next()
            .unwrap_or(full)
            .rsplit("::")
            .next()
            .unwrap_or(full);
        TestError::Error(ExcInfo(message, kind.to_owned(), traceback))
    }
}

/// Fails the test unless `cond` holds: `ensure!(res.status().is_success())`,
/// `ensure!(n > 2, "only {n} items")`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr $(,)?) => {
        if !$cond {
            return ::core::result::Result::Err($crate::TestError::failure(
                concat!("condition failed: ", stringify!($cond)),
                "ensure",
                concat!("at ", file!(), ":", line!(), ":", column!()),
            ));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return ::core::result::Result::Err($crate::TestError::failure(
                format!($($arg)+),
                "ensure",
                concat!("at ", file!(), ":", line!(), ":", column!()),
            ));
        }
    };
}

/// Fails the test unless both sides are equal: `ensure_eq!(res.status(), 200)`.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    return ::core::result::Result::Err($crate::TestError::failure(
                        format!(
                            "{} == {} failed\n  left: {:?}\n right: {:?}",
                            stringify!($left), stringify!($right), l, r
                        ),
                        "ensure_eq",
                        concat!("at ", file!(), ":", line!(), ":", column!()),
                    ));
                }
            }
        }
    };
    ($left:expr, $right:expr, $($arg:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    return ::core::result::Result::Err($crate::TestError::failure(
                        format!("{}\n  left: {:?}\n right: {:?}", format!($($arg)+), l, r),
                        "ensure_eq",
                        concat!("at ", file!(), ":", line!(), ":", column!()),
                    ));
                }
            }
        }
    };
}

/// Fails the test if both sides are equal.
#[macro_export]
macro_rules! ensure_ne {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if *l == *r {
                    return ::core::result::Result::Err($crate::TestError::failure(
                        format!(
                            "{} != {} failed\n  both: {:?}",
                            stringify!($left),
                            stringify!($right),
                            l
                        ),
                        "ensure_ne",
                        concat!("at ", file!(), ":", line!(), ":", column!()),
                    ));
                }
            }
        }
    };
}

/// Fails the test now: `fail!("unexpected body {body}")`.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::TestError::failure(
            format!($($arg)+),
            "fail",
            concat!("at ", file!(), ":", line!(), ":", column!()),
        ))
    };
}

/// The test context: what a test gets for each hit.
pub struct TestCase {
    /// HTTP client for absolute URLs; records every request.
    pub session: Session,
    /// The same client, with URLs relative to `--server-url`.
    pub app: Session,
    status: LoadsStatus,
    test: Arc<str>,
    config: Arc<RunArgs>,
}

impl TestCase {
    /// The context of one virtual user running `test` with `config`, recording into `recorder`.
    pub fn new(
        test: Arc<str>,
        config: Arc<RunArgs>,
        recorder: UserRecorder,
    ) -> Result<Self, HttpError> {
        let base = match config.server_url.as_deref() {
            None => None,
            Some(u) => Some(Arc::new(url::Url::parse(u).map_err(|e| {
                HttpError::InvalidUrl {
                    url: u.to_owned(),
                    reason: e.to_string(),
                }
            })?)),
        };
        let client = crate::measure::new_client(config.request_timeout());
        let session = Session::new(client, recorder, None);
        let app = session.with_base(base);
        Ok(TestCase {
            session,
            app,
            status: LoadsStatus::default(),
            test,
            config,
        })
    }

    /// Which hit of which user this is, and the current cycle step's hits and users.
    pub fn status(&self) -> LoadsStatus {
        self.status
    }

    pub(crate) fn set_status(&mut self, status: LoadsStatus) {
        self.status = status;
        self.session.recorder().set_status(status);
    }

    /// The full name of the running test (`suite::test`).
    pub fn test_name(&self) -> &str {
        &self.test
    }

    /// The run's configuration.
    pub fn config(&self) -> &RunArgs {
        &self.config
    }

    /// `--server-url`, if set.
    pub fn server_url(&self) -> Option<&url::Url> {
        self.app.base_url()
    }

    /// Increments the custom counter `name` by one.
    pub fn incr_counter(&self, name: &str) {
        let rec = self.session.recorder();
        let raw = rec.send_raw(|loads_status| crate::result::Event::IncrCounter {
            test: self.test.to_string(),
            name: name.to_owned(),
            loads_status,
        });
        if !raw {
            rec.record(|s| s.incr_counter(name));
        }
    }

    /// Opens a recorded WebSocket: `ws://`/`wss://` URLs, or a path relative to `--server-url`.
    pub async fn ws(&self, url: &str) -> Result<WebSocket, WsError> {
        let client = self.session.client();
        WebSocket::connect(
            url,
            self.app.base_url(),
            self.session.recorder().clone(),
            self.config.request_timeout(),
            |u| client.cookie_header(u),
        )
        .await
    }

    /// Sleeps without counting the pause in any request time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// A test of a suite: its name and the first line of its doc comment.
#[derive(Debug, Clone, Copy)]
pub struct TestInfo {
    /// The test's name within its suite.
    pub name: &'static str,
    /// What it does (its doc comment).
    pub doc: &'static str,
}

/// A suite: per-user state whose async methods are tests. Implemented by `#[loads::suite]`.
pub trait Suite: Send + 'static {
    /// The suite's name (snake case of the type name unless given).
    const NAME: &'static str;
    /// The suite's doc comment.
    const DOC: &'static str;
    /// The tests, in source order.
    const TESTS: &'static [TestInfo];
    /// Creates the state of a new virtual user.
    fn new_user() -> Self
    where
        Self: Sized;
    /// Runs test number `index`.
    fn run_test<'a>(&'a mut self, index: usize, t: &'a mut TestCase) -> BoxFuture<'a, Outcome>;
    /// Runs before each hit (the suite's `setup` method, if any).
    fn setup<'a>(&'a mut self, t: &'a mut TestCase) -> Option<BoxFuture<'a, Outcome>> {
        let _ = t;
        None
    }
    /// Runs after each hit whose set-up succeeded (the suite's `teardown` method, if any).
    fn teardown<'a>(&'a mut self, t: &'a mut TestCase) -> Option<BoxFuture<'a, Outcome>> {
        let _ = t;
        None
    }
}

/// The object-safe face of a suite's per-user state.
pub trait UserState: Send {
    /// Runs test number `index`.
    fn run_test<'a>(&'a mut self, index: usize, t: &'a mut TestCase) -> BoxFuture<'a, Outcome>;
    /// The set-up hook, if any.
    fn setup<'a>(&'a mut self, t: &'a mut TestCase) -> Option<BoxFuture<'a, Outcome>>;
    /// The tear-down hook, if any.
    fn teardown<'a>(&'a mut self, t: &'a mut TestCase) -> Option<BoxFuture<'a, Outcome>>;
}

impl<S: Suite> UserState for S {
    fn run_test<'a>(&'a mut self, index: usize, t: &'a mut TestCase) -> BoxFuture<'a, Outcome> {
        Suite::run_test(self, index, t)
    }
    fn setup<'a>(&'a mut self, t: &'a mut TestCase) -> Option<BoxFuture<'a, Outcome>> {
        Suite::setup(self, t)
    }
    fn teardown<'a>(&'a mut self, t: &'a mut TestCase) -> Option<BoxFuture<'a, Outcome>> {
        Suite::teardown(self, t)
    }
}

fn new_user_boxed<S: Suite>() -> Box<dyn UserState> {
    Box::new(S::new_user())
}

/// A suite as the registry knows it.
pub struct SuiteEntry {
    /// The suite's name.
    pub name: &'static str,
    /// Its doc comment.
    pub doc: &'static str,
    /// Its tests.
    pub tests: &'static [TestInfo],
    /// Creates a virtual user's state.
    pub new_user: fn() -> Box<dyn UserState>,
}

impl SuiteEntry {
    /// The entry of suite `S`.
    pub const fn of<S: Suite>() -> SuiteEntry {
        SuiteEntry {
            name: S::NAME,
            doc: S::DOC,
            tests: S::TESTS,
            new_user: new_user_boxed::<S>,
        }
    }
}

inventory::collect!(SuiteEntry);

/// One test of one suite.
#[derive(Clone, Copy)]
pub struct TestRef {
    /// The suite.
    pub suite: &'static SuiteEntry,
    /// The test's index in the suite.
    pub index: usize,
}

impl TestRef {
    /// `suite::test`.
    pub fn full_name(&self) -> String {
        format!("{}::{}", self.suite.name, self.info().name)
    }

    /// Name and doc of the test.
    pub fn info(&self) -> &'static TestInfo {
        &self.suite.tests[self.index]
    }
}

impl fmt::Debug for TestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_name())
    }
}

/// Every suite linked into this binary, sorted by name.
pub fn suites() -> Vec<&'static SuiteEntry> {
    let mut v: Vec<_> = inventory::iter::<SuiteEntry>.into_iter().collect();
    v.sort_by_key(|s| s.name);
    v
}

/// Every test linked into this binary, sorted by suite then source order.
pub fn all_tests() -> Vec<TestRef> {
    suites()
        .into_iter()
        .flat_map(|suite| (0..suite.tests.len()).map(move |index| TestRef { suite, index }))
        .collect()
}

/// A test name that matches no registered test.
#[derive(Debug, thiserror::Error)]
pub struct UnknownTest {
    /// The name asked for.
    pub name: String,
    /// Registered names close to it, closest first.
    pub suggestions: Vec<String>,
    /// Several tests share this bare name.
    pub ambiguous: bool,
}

impl fmt::Display for UnknownTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ambiguous {
            write!(
                f,
                "test name {:?} is ambiguous; use the full SUITE::TEST name:",
                self.name
            )?;
        } else {
            write!(f, "no test named {:?}", self.name)?;
            if self.suggestions.is_empty() {
                return write!(f, " (`loads list` shows the registered tests)");
            }
            write!(f, "; the closest names are:")?;
        }
        for s in &self.suggestions {
            write!(f, "\n  {s}")?;
        }
        write!(f, "\n(`loads list` shows every registered test)")
    }
}

/// Finds a test by its full name `suite::test`, or by a bare test name that only one suite has.
pub fn find_test(name: &str) -> Result<TestRef, UnknownTest> {
    find_in(&all_tests(), name)
}

fn find_in(tests: &[TestRef], name: &str) -> Result<TestRef, UnknownTest> {
    if let Some(t) = tests.iter().find(|t| t.full_name() == name) {
        return Ok(*t);
    }
    if !name.contains("::") {
        let bare: Vec<_> = tests.iter().filter(|t| t.info().name == name).collect();
        match bare.as_slice() {
            [one] => return Ok(**one),
            [] => {}
            many => {
                return Err(UnknownTest {
                    name: name.to_owned(),
                    suggestions: many.iter().map(|t| t.full_name()).collect(),
                    ambiguous: true,
                });
            }
        }
    }
    let mut scored: Vec<(f64, String)> = tests
        .iter()
        .map(|t| {
            let full = t.full_name();
            let score =
                strsim::jaro_winkler(name, &full).max(strsim::jaro_winkler(name, t.info().name));
            (score, full)
        })
        .filter(|(s, _)| *s > 0.6)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    Err(UnknownTest {
        name: name.to_owned(),
        suggestions: scored.into_iter().take(3).map(|(_, n)| n).collect(),
        ambiguous: false,
    })
}

thread_local! {
    static IN_HIT: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps panics inside tests quiet and remembers where they
/// happened; panics elsewhere go to the previous hook.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HIT.with(Cell::get) {
                let mut where_ = info
                    .location()
                    .map(|l| format!("at {}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let bt = std::backtrace::Backtrace::capture();
                if bt.status() == std::backtrace::BacktraceStatus::Captured {
                    where_.push_str(&format!("\n{bt}"));
                }
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(where_));
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks the thread as running test code for the duration of each poll.
struct InHit<'a>(BoxFuture<'a, Outcome>);

impl Future for InHit<'_> {
    type Output = Outcome;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_HIT.with(|f| f.set(self.0));
            }
        }
        let _reset = Reset(IN_HIT.with(|f| f.replace(true)));
        self.0.as_mut().poll(cx)
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

async fn guarded(fut: BoxFuture<'_, Outcome>) -> Outcome {
    match AssertUnwindSafe(InHit(fut)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let traceback = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_default();
            Err(TestError::Failure(ExcInfo(
                message,
                "panic".into(),
                traceback,
            )))
        }
    }
}

/// Runs one hit: set-up, the test, tear-down. Panics become failures. A failing set-up skips
/// the test; the tear-down runs whenever the set-up succeeded, and its error is reported only
/// when the test itself succeeded.
pub async fn run_hit(user: &mut dyn UserState, index: usize, t: &mut TestCase) -> Outcome {
    install_panic_hook();
    if let Some(setup) = user.setup(t) {
        guarded(setup).await?;
    }
    let outcome = guarded(user.run_test(index, t)).await;
    let teardown = match user.teardown(t) {
        Some(f) => guarded(f).await,
        None => Ok(()),
    };
    outcome.and(teardown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Demo {
        setups: u32,
        teardowns: u32,
    }

    fn assert_eq_panics() -> Outcome {
        let two = 1 + 1;
        assert_eq!(two, 3, "arithmetic");
        Ok(())
    }

    fn io_error() -> Outcome {
        let e = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        Err(e)?;
        Ok(())
    }

    fn ensure_fails() -> Outcome {
        let status = 500;
        ensure_eq!(status, 200);
        Ok(())
    }

    fn ensure_with_message() -> Outcome {
        let n = 1;
        ensure!(n > 2, "only {n} items");
        Ok(())
    }

    fn fail_now() -> Outcome {
        fail!("nope {}", 7);
    }

    impl Suite for Demo {
        const NAME: &'static str = "demo";
        const DOC: &'static str = "";
        const TESTS: &'static [TestInfo] = &[];
        fn new_user() -> Self {
            Demo::default()
        }
        fn run_test<'a>(
            &'a mut self,
            index: usize,
            _t: &'a mut TestCase,
        ) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                match index {
                    0 => Ok(()),
                    1 => ensure_fails(),
                    2 => assert_eq_panics(),
                    3 => io_error(),
                    4 => ensure_with_message(),
                    5 => fail_now(),
                    _ => panic!("boxed {}", "panic"),
                }
            })
        }
        fn setup<'a>(&'a mut self, _t: &'a mut TestCase) -> Option<BoxFuture<'a, Outcome>> {
            self.setups += 1;
            Some(Box::pin(async { Ok(()) }))
        }
        fn teardown<'a>(&'a mut self, _t: &'a mut TestCase) -> Option<BoxFuture<'a, Outcome>> {
            self.teardowns += 1;
            None
        }
    }

    fn outcome_of(index: usize) -> (Outcome, Demo) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let rec = UserRecorder::new(Arc::new(crate::result::Recorder::new(1)), 0);
        let mut t =
            TestCase::new("demo::x".into(), Arc::new(RunArgs::default()), rec).expect("case");
        let mut user = Demo::default();
        let out = rt.block_on(run_hit(&mut user, index, &mut t));
        (out, user)
    }

    #[test]
    fn outcomes_map_to_success_failure_and_error() {
        let (ok, user) = outcome_of(0);
        assert_eq!(ok, Ok(()));
        assert_eq!((user.setups, user.teardowns), (1, 1));

        let Err(TestError::Failure(e)) = outcome_of(1).0 else {
            panic!("ensure_eq must fail")
        };
        assert_eq!(e.kind(), "ensure_eq");
        assert!(e.message().contains("left: 500"), "{}", e.message());
        assert!(
            e.traceback().starts_with("at src/case.rs:"),
            "{}",
            e.traceback()
        );

        let Err(TestError::Failure(e)) = outcome_of(2).0 else {
            panic!("assert_eq! must fail")
        };
        assert_eq!(e.kind(), "panic");
        assert!(e.message().contains("arithmetic"), "{}", e.message());
        assert!(
            e.traceback().contains("at src/case.rs:"),
            "{}",
            e.traceback()
        );

        let Err(TestError::Error(e)) = outcome_of(3).0 else {
            panic!("io error must be an error")
        };
        assert_eq!(e.kind(), "Error");
        assert_eq!(e.message(), "refused");

        let Err(TestError::Failure(e)) = outcome_of(4).0 else {
            panic!("ensure! must fail")
        };
        assert_eq!(e.message(), "only 1 items");

        let Err(TestError::Failure(e)) = outcome_of(5).0 else {
            panic!("fail! must fail")
        };
        assert_eq!(e.message(), "nope 7");

        let Err(TestError::Failure(e)) = outcome_of(6).0 else {
            panic!("panic must fail")
        };
        assert_eq!(e.message(), "boxed panic");
    }

    #[test]
    fn websocket_handshake_carries_the_users_cookies() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let rec = UserRecorder::new(Arc::new(crate::result::Recorder::new(1)), 0);
        let args = RunArgs {
            server_url: Some(crate::demo::test_server_url()),
            ..RunArgs::default()
        };
        let t = TestCase::new("demo::x".into(), Arc::new(args), rec).expect("case");
        rt.block_on(async {
            let res = t
                .app
                .get("/cookies/set?session=abc")
                .send()
                .await
                .expect("set");
            assert_eq!(res.status(), 200);
            let mut ws = t.ws("/ws/cookies").await.expect("ws");
            let first = ws.recv_text().await.expect("cookies");
            assert_eq!(first, r#"{"session":"abc"}"#);
            ws.close().await.expect("close");
        });
    }

    #[test]
    fn unknown_names_get_suggestions() {
        static A: SuiteEntry = SuiteEntry {
            name: "example",
            doc: "",
            tests: &[
                TestInfo {
                    name: "get_root",
                    doc: "",
                },
                TestInfo {
                    name: "health",
                    doc: "",
                },
            ],
            new_user: new_user_boxed::<Demo>,
        };
        static B: SuiteEntry = SuiteEntry {
            name: "other",
            doc: "",
            tests: &[TestInfo {
                name: "health",
                doc: "",
            }],
            new_user: new_user_boxed::<Demo>,
        };
        let tests = [
            TestRef {
                suite: &A,
                index: 0,
            },
            TestRef {
                suite: &A,
                index: 1,
            },
            TestRef {
                suite: &B,
                index: 0,
            },
        ];
        assert_eq!(
            find_in(&tests, "example::health")
                .expect("found")
                .full_name(),
            "example::health"
        );
        assert_eq!(
            find_in(&tests, "get_root").expect("bare").full_name(),
            "example::get_root"
        );
        let amb = find_in(&tests, "health").expect_err("ambiguous");
        assert!(amb.ambiguous);
        let e = find_in(&tests, "example::get_rot").expect_err("unknown");
        assert_eq!(e.suggestions[0], "example::get_root");
        assert!(e.to_string().contains("closest names"), "{e}");
    }
}
