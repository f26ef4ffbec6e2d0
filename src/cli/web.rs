//! `--web`: starts the live dashboard of a run (see [`crate::web`]) before the run, with the
//! controls of the run it serves, and prints its URL.

use std::sync::Arc;

use super::CliError;
use crate::config::WebArgs;
use crate::runner::LoadControl;
use crate::runner::distributed::ClusterLoad;
use crate::web::hub::{Control, StopByInterrupt};
use crate::web::{Hub, WebServer};

/// Starts the dashboard when `args` ask for one: the test results made from now on feed it.
pub(super) fn start(args: &WebArgs, detach: bool) -> Result<Option<WebServer>, CliError> {
    if args.web.is_none() {
        return Ok(None);
    }
    if detach {
        return Err(CliError::Usage(anyhow::anyhow!(
            "--web serves the run while this command follows it: it does not go with --detach"
        )));
    }
    let hub = Hub::install();
    hub.set_control(Arc::new(StopByInterrupt));
    let server = WebServer::start(args, hub).map_err(|e| CliError::Usage(anyhow::Error::new(e)))?;
    match &server.token {
        Some(_) if args.web_token.is_none() => eprintln!(
            "Dashboard: {} (a generated token: every request needs it)",
            server.url()
        ),
        _ => eprintln!("Dashboard: {}", server.url()),
    }
    Ok(Some(server))
}

/// The dashboard's controls of a run in this process: stop (one Ctrl-C) and, when the runner
/// has one, its [`LoadControl`].
struct LocalControl(Arc<LoadControl>);

impl Control for LocalControl {
    fn stop(&self) -> Result<String, String> {
        StopByInterrupt.stop()
    }
    fn can_change(&self) -> bool {
        self.0.can_change()
    }
    fn change(&self, scenario: Option<&str>, value: f64) -> Result<String, String> {
        self.0.set(scenario, value)
    }
    fn kinds(&self) -> Vec<(Option<String>, &'static str)> {
        self.0.kinds()
    }
}

/// Gives the dashboard (when there is one) the control of a local run's load.
pub(super) fn control_load(load: Option<Arc<LoadControl>>) {
    if let Some(load) = load {
        Hub::served().inspect(|hub| hub.set_control(Arc::new(LocalControl(load))));
    }
}

/// The dashboard's controls of a cluster run followed by this process: stop (one Ctrl-C, which
/// asks the broker to stop the run) and the load, through the broker.
struct ClusterControl(Arc<ClusterLoad>);

impl Control for ClusterControl {
    fn stop(&self) -> Result<String, String> {
        StopByInterrupt.stop()
    }
    fn can_change(&self) -> bool {
        self.0.can_change()
    }
    fn change(&self, scenario: Option<&str>, value: f64) -> Result<String, String> {
        self.0.set(scenario, value)
    }
    fn kinds(&self) -> Vec<(Option<String>, &'static str)> {
        self.0.kinds()
    }
}

/// Gives the dashboard (when there is one) the control of a cluster run's load.
pub(super) fn control_cluster_load(load: Option<Arc<ClusterLoad>>) {
    if let Some(load) = load {
        Hub::served().inspect(|hub| hub.set_control(Arc::new(ClusterControl(load))));
    }
}

/// Starts the broker's page (`loads broker --web`) when `args` ask for it; `keyed`: the broker
/// requires CURVE keys, which its page, a caller of its own, does not have yet.
pub(super) fn start_broker_page(args: &WebArgs, keyed: bool) -> Result<Option<Arc<Hub>>, CliError> {
    if args.web.is_none() {
        return Ok(None);
    }
    if keyed {
        return Err(CliError::Usage(anyhow::anyhow!(
            "--web: the cluster's page is not available yet on a broker with CURVE keys"
        )));
    }
    let hub = Hub::install();
    let server =
        WebServer::start(args, hub.clone()).map_err(|e| CliError::Usage(anyhow::Error::new(e)))?;
    eprintln!("Dashboard: {}", server.url());
    Ok(Some(hub))
}

/// Points the broker's page at the broker's front socket, once it listens.
pub(super) fn set_broker(hub: &Hub, frontend: &str) {
    hub.set_cluster(Arc::new(BrokerView {
        front: frontend.to_owned(),
    }));
}

/// The broker's page, fed by asking the broker as `loads ping`, `runs` and `report` do.
struct BrokerView {
    front: String,
}

impl crate::web::hub::ClusterView for BrokerView {
    fn overview(&self) -> Result<serde_json::Value, String> {
        let ping = crate::runner::distributed::ping(&self.front).map_err(|e| e.to_string())?;
        let client = crate::transport::client::BrokerClient::connect(
            &self.front,
            std::time::Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())?;
        let runs = client
            .call(&crate::transport::CallerRequest::Runs, None)
            .map_err(|e| e.to_string())?;
        Ok(serde_json::json!({ "ping": ping, "runs": runs["runs"] }))
    }

    fn report(&self, run_id: &str) -> Result<crate::web::data::PageData, String> {
        let result = crate::runner::distributed::report(
            &self.front,
            run_id,
            &crate::config::ReportArgs::default(),
        )
        .map_err(|e| e.to_string())?;
        Ok(crate::web::data::PageData::of(&result, None))
    }
}
