//! The load changes of a cluster run, from its caller (the dashboard served by `loads run
//! --agents N --web`): its [`ChangeLoad::set`] checks a change against the run's plan as a local
//! run would, asks the broker to pass the run's total on to the agents still running (each
//! worker takes its share the way the plan divides the load), and keeps the change for the
//! caller's test result, into which the caller's loop (`follow`) moves it.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::runner::{ChangeLoad, LoadControl};
use crate::transport::CallerRequest;
use crate::transport::client::BrokerClient;

/// How long a change waits for the broker's answer.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The load control of a cluster run, on its caller.
pub struct ClusterLoad {
    /// The run's parts as its plan has them: checks changes, keeps their records.
    check: Arc<LoadControl>,
    broker: String,
    /// The run, once submitted.
    run_id: OnceLock<String>,
    /// Held through each change: the broker gets them in the order they are recorded.
    one_at_a_time: Mutex<()>,
}

impl ClusterLoad {
    pub(super) fn new(check: Arc<LoadControl>, broker: &str) -> Self {
        ClusterLoad {
            check,
            broker: broker.to_owned(),
            run_id: OnceLock::new(),
            one_at_a_time: Mutex::new(()),
        }
    }

    pub(super) fn submitted(&self, run_id: &str) {
        let _ = self.run_id.set(run_id.to_owned());
    }

    /// The changes made since the last call (for the caller's test result).
    pub(super) fn take_changes(&self) -> Vec<crate::result::summary::LoadChange> {
        self.check.take_changes()
    }
}

impl ChangeLoad for ClusterLoad {
    /// Whether any part's load can change.
    fn can_change(&self) -> bool {
        self.check.can_change()
    }

    /// What a change sets, per part (see [`LoadControl::kinds`]).
    fn kinds(&self) -> Vec<(Option<String>, &'static str)> {
        self.check.kinds()
    }

    /// Sets the load of `scenario` (or of the whole run) to `value`, the run's total, on
    /// every agent still running; returns what was done.
    fn set(&self, scenario: Option<&str>, value: f64) -> Result<String, String> {
        // Two dashboards changing at once: each change asks the broker and is recorded before
        // the next one is checked, so that the last one recorded is the one the agents have.
        let _turn = self
            .one_at_a_time
            .lock()
            .map_err(|_| "the load control failed".to_owned())?;
        let change = self.check.validate(scenario, value)?;
        let run_id = self
            .run_id
            .get()
            .ok_or("the run is not submitted yet: change its load once it has started")?;
        let client = BrokerClient::connect(&self.broker, CHANGE_TIMEOUT)
            .map_err(|e| format!("the broker: {e}"))?;
        let answer = client
            .call(
                &CallerRequest::Load {
                    run_id: run_id.clone(),
                    scenario: scenario.map(str::to_owned),
                    value,
                },
                None,
            )
            .map_err(|e| e.to_string())?;
        let (agents, of) = (answer["agents"].as_u64(), answer["of"].as_u64());
        let what = match (agents, of) {
            (Some(a), Some(o)) if a < o => {
                format!(
                    "{} (divided among the {a} agent{} of {o} still running)",
                    change.what,
                    if a == 1 { "" } else { "s" }
                )
            }
            (Some(a), _) => format!(
                "{} (divided among {a} agent{})",
                change.what,
                if a == 1 { "" } else { "s" }
            ),
            _ => change.what.clone(),
        };
        self.check.record(crate::result::summary::LoadChange {
            what: what.clone(),
            ..change
        });
        Ok(what)
    }
}
