//! The hub between a live run and its dashboard. An observer of the run's
//! [`TestResult`] ([`attach`]) takes a snapshot of the page data at most once a second, on the
//! collector's thread (where the merged statistics already are: nothing is added to the virtual
//! users' path); the [`server`](super::server)
//! hands the latest snapshot to each page. Control actions go the other way, through the
//! [`Control`] that the command installs ([`Hub::set_control`]).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::data::{LiveData, PageData};
use crate::result::{Observer, OutputError, TestResult};

/// How often the snapshot is refreshed.
const EVERY: Duration = Duration::from_secs(1);

/// What the dashboard's buttons do: given by the command that runs (local or cluster).
pub trait Control: Send + Sync {
    /// Stops the run as Ctrl-C would; returns what to tell the user.
    fn stop(&self) -> Result<String, String>;
    /// Whether [`change`](Self::change) is possible for this run.
    fn can_change(&self) -> bool {
        false
    }
    /// Sets the number of users (closed models) or the arrival rate per second (open model) of
    /// the whole run or of one scenario; returns what to tell the user.
    fn change(&self, scenario: Option<&str>, value: f64) -> Result<String, String> {
        let _ = (scenario, value);
        Err("this run cannot change its load".into())
    }
    /// What a change sets, per part of the run: `(scenario, "users" | "rate" | "fixed")`.
    fn kinds(&self) -> Vec<(Option<String>, &'static str)> {
        Vec::new()
    }
}

/// What the broker's page shows (`loads broker --web`): given by the broker command, which
/// asks its broker as a caller would.
pub trait ClusterView: Send + Sync {
    /// Agents (host, pid, idle/busy, heartbeat), active runs and stored runs, as JSON:
    /// `{"ping": …, "runs": […]}`.
    fn overview(&self) -> Result<serde_json::Value, String>;
    /// The full report of run `run_id`, rebuilt from its stored events: its page data.
    fn report(&self, run_id: &str) -> Result<PageData, String>;
    /// The hub of active run `run_id`'s live view, fed from the broker (followed from the
    /// first request on, until the run ends); `None` when no such run is active.
    fn live(&self, run_id: &str) -> Result<Option<Arc<Hub>>, String>;
}

/// The stop of a run in this process: one Ctrl-C.
pub struct StopByInterrupt;

impl Control for StopByInterrupt {
    fn stop(&self) -> Result<String, String> {
        crate::config::signals::interrupts().interrupt();
        Ok("stopping the run".into())
    }
}

/// The latest page data of the live run, and the run's controls.
pub struct Hub {
    tx: tokio::sync::watch::Sender<Arc<String>>,
    control: Mutex<Option<Arc<dyn Control>>>,
    cluster: Mutex<Option<Arc<dyn ClusterView>>>,
    finished: std::sync::atomic::AtomicBool,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: tokio::sync::watch::Sender::new(Arc::new(String::new())),
            control: Mutex::new(None),
            cluster: Mutex::new(None),
            finished: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

static HUB: OnceLock<Arc<Hub>> = OnceLock::new();

impl Hub {
    /// The process's hub, made on first use: every test result made from then on is attached.
    pub fn install() -> Arc<Hub> {
        HUB.get_or_init(|| Arc::new(Hub::default())).clone()
    }

    /// The process's hub, when one was installed.
    pub fn served() -> Option<Arc<Hub>> {
        HUB.get().cloned()
    }

    /// The latest page data (JSON text; empty before the run started).
    pub fn current(&self) -> Arc<String> {
        self.tx.borrow().clone()
    }

    /// A receiver of each new snapshot.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<String>> {
        self.tx.subscribe()
    }

    /// Installs the run's controls.
    pub fn set_control(&self, control: Arc<dyn Control>) {
        if let Ok(mut c) = self.control.lock() {
            *c = Some(control);
        }
    }

    /// The run's controls, when there are any.
    pub fn control(&self) -> Option<Arc<dyn Control>> {
        self.control.lock().ok().and_then(|c| c.clone())
    }

    /// Installs the broker's view (the hub then serves the cluster's page, not a run's).
    pub fn set_cluster(&self, view: Arc<dyn ClusterView>) {
        if let Ok(mut c) = self.cluster.lock() {
            *c = Some(view);
        }
    }

    /// The broker's view, on a broker.
    pub fn cluster(&self) -> Option<Arc<dyn ClusterView>> {
        self.cluster.lock().ok().and_then(|c| c.clone())
    }

    fn publish(&self, result: &TestResult, finished: bool) {
        let control = self.control();
        let summary_scenarios = &result.stats().scenarios;
        let live = LiveData {
            running: !finished,
            finished,
            active_users: result.active_users(),
            waiting: result.waiting().map(str::to_owned),
            control: control.is_some(),
            change: control.as_ref().is_some_and(|c| c.can_change()),
            scenarios: summary_scenarios.keys().cloned().collect(),
            loads: control
                .as_ref()
                .map(|c| c.kinds())
                .unwrap_or_default()
                .into_iter()
                .map(|(scenario, kind)| super::data::LoadPart { scenario, kind })
                .collect(),
        };
        let json = PageData::of(result, Some(live)).to_json();
        self.tx.send_replace(Arc::new(json));
        if finished {
            self.finished
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// An observer that publishes the page data of the run it watches to `hub` (a run that the
/// broker's page follows).
pub fn observer(hub: Arc<Hub>) -> Box<dyn Observer> {
    Box::new(HubObserver { hub, last: None })
}

impl Hub {
    /// Publishes `result` as the finished run of this hub's page.
    pub fn publish_finished(&self, result: &TestResult) {
        self.publish(result, true);
    }

    /// Marks the page's run as no longer followed (its view failed): a new request follows it
    /// again.
    pub fn publish_failed(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the run of this hub's page has ended.
    pub fn finished(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Attaches the process's hub, when `--web` installed one, to `result`: its observer
/// publishes the page data of the run.
pub fn attach(result: &mut TestResult) {
    // A broker's page rebuilds stored runs: those are not the live run of the page.
    if let Some(hub) = HUB.get().filter(|h| h.cluster().is_none()) {
        result.add_observer(Box::new(HubObserver {
            hub: hub.clone(),
            last: None,
        }));
    }
}

struct HubObserver {
    hub: Arc<Hub>,
    last: Option<Instant>,
}

impl Observer for HubObserver {
    fn on_start(&mut self, result: &TestResult) -> Result<(), OutputError> {
        self.hub.publish(result, false);
        self.last = Some(Instant::now());
        Ok(())
    }

    fn on_tick(&mut self, result: &TestResult) {
        if self.last.is_none_or(|t| t.elapsed() >= EVERY) {
            self.hub.publish(result, false);
            self.last = Some(Instant::now());
        }
    }

    fn on_finish(&mut self, result: &TestResult) -> Result<(), OutputError> {
        self.hub.publish(result, true);
        Ok(())
    }
}
