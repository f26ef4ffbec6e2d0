//! The loads page: one HTML page that is both the live dashboard of a run (`loads run --web`)
//! and the offline `html` report. The page and its charting library (uPlot, bundled from the
//! npm registry by `web/update.sh`) are embedded in the binary ([`assets`]); its data is the
//! page data ([`data::PageData`]): the run's JSON summary as the `json` output writes it, with
//! the whole run's latency spectrum, baseline deltas and, live, the run's state. So there is one
//! statistics model and one rendering, in the page's script.
//!
//! Data enters from a [`TestResult`](crate::result::TestResult): the html output renders it once
//! at the end ([`page::render`]); for a live run, a [`hub::Hub`] observer takes a snapshot at
//! most once a second on the collector's thread (never on the virtual users' path) and the
//! [`server`] (axum, on a thread and runtime of its own) pushes it to browsers over Server-Sent
//! Events. Control actions (stop, change the load) leave through the [`hub::Control`] that the
//! command installs.

pub mod assets;
pub mod data;
pub mod hub;
pub mod page;
pub mod server;
mod token;

pub use hub::{Hub, attach};
pub use server::WebServer;
