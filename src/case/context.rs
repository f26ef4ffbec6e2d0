//! [`TestCase`]: what a test sees — the HTTP session and `app` client, the WebSocket factory,
//! counters, the current `loads_status`, the run's configuration and its test data
//! ([`TestCase::data`]). Built by the runner for each virtual user; everything a test does
//! through it is recorded.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{RunArgs, Strategy};
use crate::data::{DataError, DataSet, Row};
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
    /// The run's data sources, shared by its users.
    data: Arc<DataSet>,
    /// This user's rows of its `per-user` sources.
    own_rows: Vec<Row>,
    /// A `queue-stop` source ran out in this user's hit: the user stops.
    data_stop: bool,
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
            data: Arc::default(),
            own_rows: Vec::new(),
            data_stop: false,
        })
    }

    /// Gives the user the run's data sources.
    pub(crate) fn set_data(&mut self, data: Arc<DataSet>) {
        self.data = data;
    }

    /// Whether a `queue-stop` source ran out for this user: its hit is not counted and the
    /// user stops.
    pub(crate) fn data_stopped(&self) -> bool {
        self.data_stop
    }

    /// A row of the data source `name` (`--data NAME=FILE[:STRATEGY]`), read by column:
    /// `let row = t.data("accounts")?; row["email"]`. By the source's strategy: the next row
    /// (`circular`), any row (`random`), a row no other user of the run gets (`queue`,
    /// `queue-stop`), or this user's own row, the same at every call (`per-user`). `?` on the
    /// error makes the hit an *error*: `data 'accounts' exhausted` when a queue is used up, or
    /// a name the run does not declare.
    pub fn data(&mut self, name: &str) -> Result<Row, DataError> {
        let strategy = self.data.strategy(name);
        if strategy == Some(Strategy::PerUser) {
            if let Some(r) = self.own_rows.iter().find(|r| r.source() == name) {
                return Ok(r.clone());
            }
            let row = self.data.take(name)?;
            self.own_rows.push(row.clone());
            return Ok(row);
        }
        let taken = self.data.take(name);
        if strategy == Some(Strategy::QueueStop)
            && matches!(taken, Err(DataError::Exhausted { .. }))
        {
            self.data_stop = true;
        }
        taken
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
