//! The `html` output: one self-contained HTML file, written when the run ends, that opens
//! offline in any browser. It is the live dashboard's page ([`crate::web`]) with the run's page
//! data embedded: the run's metadata, the summary figures, thresholds and baseline deltas,
//! interactive charts over time (uPlot, bundled: requests and hits per second, p50/p95/p99/max
//! request time, active users, failures and errors per second, WebSocket messages per second)
//! and the latency spectrum of the whole run, the per-URL table, the tables per test, per
//! scenario and per lifecycle hook, the failures and errors with their tracebacks, the custom
//! counters and the WebSocket figures. The data is the run's [`Summary`](crate::result::Summary),
//! as the `json` output writes it; the page's script renders it.

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;

use super::write_error;
use crate::result::{Observer, OutputError, TestResult};
use crate::web::data::PageData;
use crate::web::page::{Mode, render as render_page};

/// Writes the HTML report.
pub struct HtmlOutput {
    file: Option<File>,
    path: PathBuf,
}

impl HtmlOutput {
    /// An output writing to `file`, opened at `path`.
    pub fn new(file: File, path: PathBuf) -> Self {
        HtmlOutput {
            file: Some(file),
            path,
        }
    }
}

impl Observer for HtmlOutput {
    fn on_finish(&mut self, result: &TestResult) -> Result<(), OutputError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let page = render(result);
        file.write_all(page.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| write_error("html", &self.path, e))
    }
}

/// The whole page, with the run's data embedded.
pub fn render(result: &TestResult) -> String {
    let data = PageData::of(result, None).to_json();
    render_page(
        &format!("loads report: {}", result.meta().test),
        &data,
        Mode::Report,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Event, EventSink, RunMeta, Stats};

    #[test]
    fn report_embeds_the_summary_safely() {
        let mut r = TestResult::new(RunMeta {
            test: "s::<script>".into(),
            ..RunMeta::default()
        });
        let mut st = Stats::default();
        for sec in 0..5 {
            st.record_request("GET", "http://127.0.0.1:1/<a>", 200, 1000 + sec as u64, sec);
            st.record_start("s::<script>");
            st.record_success("s::<script>", sec);
        }
        st.record_hit(&crate::result::Hit {
            test: "s::<script>",
            scenario: Some("</script><b>admins"),
            micros: Some(12_000),
            second: 5,
            outcome: crate::result::HitOutcome::Success,
        });
        r.start();
        r.ingest(Event::Batch(Box::new(st)));
        r.finish();
        let page = render(&r);
        assert!(!page.contains("s::<script>") && !page.contains("</script><b>"));
        assert!(page.contains("<title>loads report: s::&lt;script&gt;</title>"));
        // The data is the summary: read it back from the page.
        let start = page.find("id=\"loads-data\">").expect("data") + "id=\"loads-data\">".len();
        let end = start + page[start..].find("</script>").expect("end");
        let data: serde_json::Value = serde_json::from_str(&page[start..end]).expect("json");
        assert_eq!(data["summary"]["hits"], 6);
        assert_eq!(
            data["summary"]["scenarios"]["</script><b>admins"]["hits"],
            1
        );
        assert_eq!(data["summary"]["urls"][0]["url"], "http://127.0.0.1:1/<a>");
        assert!(data["spectrum"].as_array().is_some_and(|s| s.len() > 10));
        assert!(data["live"].is_null());
        // Nothing is fetched: no external script, style or image.
        for bad in ["src=\"http", "href=\"http", "src=\"//", "@import"] {
            assert!(!page.contains(bad), "{bad}");
        }
    }
}
