//! The page's files, embedded at build time from `web/` (sources of the page) and
//! `web/vendor/uplot/` (the charting library, updated by `web/update.sh`): nothing is loaded
//! from the network when the page opens.

/// The page's template (placeholders `{{NAME}}`, filled by [`super::page::render`]).
pub const PAGE_HTML: &str = include_str!("../../web/page.html");
/// The page's script: renders the page data, live updates, controls.
pub const APP_JS: &str = include_str!("../../web/app.js");
/// The page's style.
pub const APP_CSS: &str = include_str!("../../web/app.css");
/// uPlot, minified (MIT licence: [`UPLOT_LICENSE`]).
pub const UPLOT_JS: &str = include_str!("../../web/vendor/uplot/uPlot.iife.min.js");
/// uPlot's style.
pub const UPLOT_CSS: &str = include_str!("../../web/vendor/uplot/uPlot.min.css");
/// uPlot's licence, shipped with it.
pub const UPLOT_LICENSE: &str = include_str!("../../web/vendor/uplot/LICENSE");
/// The bundled uPlot's version.
pub const UPLOT_VERSION: &str = include_str!("../../web/vendor/uplot/VERSION");
/// The broker's page (`loads broker --web`).
pub const BROKER_HTML: &str = include_str!("../../web/broker.html");
/// The broker page's script.
pub const BROKER_JS: &str = include_str!("../../web/broker.js");
