//! [`TestCase`]: what a test sees — the HTTP session and `app` client, the WebSocket factory,
//! counters, the current `loads_status` and the run's configuration. Built by the runner for each
//! virtual user; everything a test does through it is recorded.

use std::sync::Arc;
use std::time::Duration;

use crate::config::RunArgs;
use crate::measure::{HttpError, Session, WebSocket, WsError};
use crate::result::{LoadsStatus, UserRecorder};

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
    pub(crate) fn new(
        test: Arc<str>,
        config: Arc<RunArgs>,
        recorder: UserRecorder,
    ) -> Result<Self, HttpError> {
        let base = match config.plan.server_url.as_deref() {
            None => None,
            Some(u) => Some(Arc::new(url::Url::parse(u).map_err(|e| {
                HttpError::InvalidUrl {
                    url: u.to_owned(),
                    reason: e.to_string(),
                }
            })?)),
        };
        let client = crate::measure::new_client(config.plan.request_timeout());
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

    /// Names the test of the next hit (in a mix, each hit draws its test).
    pub(crate) fn set_test(&mut self, test: Arc<str>) {
        self.test = test;
    }

    /// The running test's name, shared.
    pub(crate) fn test_name_arc(&self) -> Arc<str> {
        self.test.clone()
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
            self.config.plan.request_timeout(),
            |u| client.cookie_header(u),
        )
        .await
    }

    /// Sleeps without counting the pause in any request time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}
