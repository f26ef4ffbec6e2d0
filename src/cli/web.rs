//! `--web`: starts the live dashboard of a run (see [`crate::web`]) before the run, with the
//! controls of the run it serves, and prints its URL.

use std::sync::Arc;

use super::CliError;
use crate::config::WebArgs;
use crate::web::{Hub, WebServer, hub::StopByInterrupt};

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
