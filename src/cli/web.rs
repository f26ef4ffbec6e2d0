//! `--web`: starts the live dashboard of a run (see [`crate::web`]) before the run, with the
//! controls of the run it serves, and prints its URL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::CliError;
use crate::config::WebArgs;
use crate::runner::ChangeLoad;
use crate::web::hub::{Control, StopByInterrupt, observer};
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

/// The dashboard's controls of a run followed by this process: stop (one Ctrl-C; a cluster
/// run's caller then asks the broker to stop it) and, when the runner has one, the control of
/// its load (local, or through the broker).
struct RunControl(Arc<dyn ChangeLoad>);

impl Control for RunControl {
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

/// Gives the dashboard (when there is one) the control of the run's load.
pub(super) fn control_load<L: ChangeLoad + 'static>(load: Option<Arc<L>>) {
    if let Some(load) = load {
        Hub::served().inspect(|hub| hub.set_control(Arc::new(RunControl(load))));
    }
}

/// Starts the broker's page (`loads broker --web`) when `args` ask for it.
///
/// The page asks the broker as a caller does. On a broker with CURVE keys (`keys`), the page
/// gets a key pair of its own, made now and never written, admitted as an admin: it sees and
/// stops every run, so it requires its token even on loopback.
pub(super) fn start_broker_page(
    args: &WebArgs,
    keys: Option<&mut crate::transport::security::ServerKeys>,
) -> Result<Option<Arc<Hub>>, CliError> {
    if args.web.is_none() {
        return Ok(None);
    }
    let keyed = keys.is_some();
    if let Some(keys) = keys {
        use crate::transport::security::{ClientKeys, KeyPair, decode_key, set_client_keys};
        let usage = |e: crate::transport::security::KeyError| CliError::Usage(e.into());
        let page = KeyPair::generate().map_err(usage)?;
        keys.roles
            .admins
            .insert(decode_key(&page.public).map_err(usage)?);
        set_client_keys(Some(ClientKeys {
            pair: page,
            server: keys.pair.public.clone(),
        }));
    }
    let hub = Hub::install();
    let server = WebServer::start_guarded(args, hub.clone(), keyed)
        .map_err(|e| CliError::Usage(anyhow::Error::new(e)))?;
    eprintln!("Dashboard: {}", server.url());
    Ok(Some(hub))
}

/// Points the broker's page at the broker's front socket, once it listens.
pub(super) fn set_broker(hub: &Hub, frontend: &str) {
    hub.set_cluster(Arc::new(BrokerView {
        front: frontend.to_owned(),
        lives: Arc::new(Mutex::new(BTreeMap::new())),
    }));
}

/// The most active runs the broker's page follows live at once.
const MAX_LIVE_VIEWS: usize = 16;

/// The broker's page, fed by asking the broker as `loads ping`, `runs` and `report` do.
struct BrokerView {
    front: String,
    /// The live views of active runs, by run id: each followed by a thread of its own.
    lives: Arc<Mutex<BTreeMap<String, Arc<Hub>>>>,
}

/// The stop button of a run the broker's page follows: asks the broker, as `loads stop` does.
struct BrokerStop {
    front: String,
    run_id: String,
}

impl Control for BrokerStop {
    fn stop(&self) -> Result<String, String> {
        let client = crate::transport::client::BrokerClient::connect(
            &self.front,
            std::time::Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())?;
        client
            .call(
                &crate::transport::CallerRequest::Stop {
                    run_id: self.run_id.clone(),
                },
                None,
            )
            .map_err(|e| e.to_string())?;
        Ok(format!("stopping run {}", self.run_id))
    }
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

    fn live(&self, run_id: &str) -> Result<Option<Arc<Hub>>, String> {
        let known = |lives: &BTreeMap<String, Arc<Hub>>| lives.get(run_id).cloned();
        if let Some(hub) = self.lives.lock().ok().and_then(|l| known(&l)) {
            return Ok(Some(hub));
        }
        let ping = crate::runner::distributed::ping(&self.front).map_err(|e| e.to_string())?;
        if !ping.active_runs.iter().any(|r| r == run_id) {
            return Ok(None);
        }
        let mut lives = self
            .lives
            .lock()
            .map_err(|_| "the page's live views failed".to_owned())?;
        if let Some(hub) = known(&lives) {
            return Ok(Some(hub));
        }
        lives.retain(|_, h| !h.finished());
        if lives.len() >= MAX_LIVE_VIEWS {
            return Err(format!(
                "the page follows {MAX_LIVE_VIEWS} active runs already: open this one when one of them has ended"
            ));
        }
        let hub = Arc::new(Hub::default());
        hub.set_control(Arc::new(BrokerStop {
            front: self.front.clone(),
            run_id: run_id.to_owned(),
        }));
        let (front, id, fed) = (self.front.clone(), run_id.to_owned(), hub.clone());
        let views = self.lives.clone();
        std::thread::Builder::new()
            .name("loads-web-follow".into())
            .spawn(move || {
                match crate::runner::distributed::watch(&front, &id, observer(fed.clone())) {
                    Ok(result) => fed.publish_finished(&result),
                    Err(e) => {
                        tracing::warn!("the broker's page could not follow run {id}: {e}");
                        // The next request follows it again.
                        fed.publish_failed();
                        if let Ok(mut v) = views.lock() {
                            v.remove(&id);
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        lives.insert(run_id.to_owned(), hub.clone());
        Ok(Some(hub))
    }
}
