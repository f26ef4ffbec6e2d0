//! The options of the live web dashboard (`loads run --web`, `loads broker --web`), declared
//! once: the command line (clap) and the config file (serde, the long names as keys) read this
//! struct. They stay with the caller: they are not part of the [`RunArgs`](super::RunArgs) that
//! travel to agents.

use clap::Args;
use serde::{Deserialize, Serialize};

use super::Secs;

/// Where the dashboard listens when `--web` is given without an address.
pub const DEFAULT_WEB_ADDR: &str = "127.0.0.1:8089";

/// `--web`, `--web-token`, `--web-linger`.
#[derive(Args, Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct WebArgs {
    /// Serve the live dashboard at ADDR (host:port; port 0 picks one) and print its URL
    /// [default ADDR: 127.0.0.1:8089]; an address beyond loopback requires a token
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_WEB_ADDR
    )]
    pub web: Option<String>,
    /// The token the dashboard requires on every request (`?token=` or `Authorization: Bearer`);
    /// without it, a bind beyond loopback gets a generated one, printed at start
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LOADS_WEB_TOKEN",
        hide_env_values = true
    )]
    pub web_token: Option<String>,
    /// Keep serving the dashboard this long after the run ends (e.g. 5m)
    #[arg(long, value_name = "DURATION")]
    pub web_linger: Option<Secs>,
}
