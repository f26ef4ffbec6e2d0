//! The `html` output: one self-contained HTML file, written when the run ends, that opens
//! offline in any browser. It holds the run's metadata, the summary figures, thresholds and
//! baseline deltas, charts over time (SVG drawn by the `plotters` crate: requests and hits per
//! second, p50/p95/p99 request time, active users, failures and errors per second, WebSocket
//! messages per second), the per-URL table, the tables per test, per scenario and per lifecycle
//! hook (counts and hit durations), the failures and errors with their tracebacks, the custom
//! counters and the WebSocket figures. The data comes from the run's [`Summary`]; a few
//! lines of inline JavaScript make the tables sortable.

use plotters::prelude::*;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;

use super::format::{format_bytes, format_micros};
use super::write_error;
use crate::result::{Observer, OutputError, ProblemKind, TestResult};

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

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

fn ms(v: f64) -> String {
    format_micros(v * 1000.0)
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#1d2430;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header .meta{color:#c8ced8;font-size:13px}
main{padding:18px 28px;max-width:1280px}
section{background:#fff;border-radius:6px;padding:14px 18px;margin:0 0 18px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:17px;margin:0 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #e1e4ea;border-radius:6px;padding:8px 14px;min-width:120px}
.card .v{font-size:20px;font-weight:600}
.card .k{font-size:12px;color:#5b6577}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid #e8eaef;text-align:right;vertical-align:top}
th{background:#f0f2f5;cursor:pointer;user-select:none}
td.l,th.l{text-align:left}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.chart svg{width:100%;height:auto}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px;margin:6px 0}
.url{word-break:break-all}
"#;

const SCRIPT: &str = r#"
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.dataset.dir !== 'asc';
      th.dataset.dir = asc ? 'asc' : 'desc';
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v || a.cells[col].textContent;
        var y = b.cells[col].dataset.v || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.body.dataset.ready = '1';
"#;

/// One line of a chart: its name, colour and points (seconds since start, value).
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// The whole page.
pub fn render(result: &TestResult) -> String {
    let s = result.summary();
    let mut o = String::with_capacity(64 * 1024);
    let title = format!("loads report: {}", s.test);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let verdict = if s.interrupted {
        ("INTERRUPTED", "bad")
    } else if s.aborted.is_some() {
        ("ABORTED", "bad")
    } else if s.success {
        ("OK", "ok")
    } else {
        ("FAILED", "bad")
    };
    let _ = write!(
        o,
        "<header><h1>{} <span class=\"{}\" id=\"verdict\">{}</span></h1><div class=\"meta\">",
        esc(&s.test),
        verdict.1,
        verdict.0
    );
    let mut meta = vec![
        format!("plan: {}", s.plan),
        format!("agents: {}", s.agents),
        format!("started: {}", s.started),
        format!("duration: {:.2} s", s.duration),
        format!("run: {}", s.run_id),
    ];
    if let Some(p) = &s.project_name {
        meta.insert(0, format!("project: {p}"));
    }
    if let Some(u) = &s.server_url {
        meta.push(format!("server: {u}"));
    }
    o.push_str(&meta.iter().map(|m| esc(m)).collect::<Vec<_>>().join(" · "));
    o.push_str("</div></header><main>");

    // Summary figures.
    o.push_str("<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">");
    let cards = [
        ("hits", s.hits.to_string()),
        ("hits/s", format!("{:.1}", s.hits_per_second)),
        ("successes", s.successes.to_string()),
        ("failures", s.failures.to_string()),
        ("errors", s.errors.to_string()),
        ("requests", s.requests.to_string()),
        ("requests/s", format!("{:.1}", s.rps)),
        ("mean", ms(s.latency.mean)),
        ("p50", ms(s.latency.p50)),
        ("p95", ms(s.latency.p95)),
        ("p99", ms(s.latency.p99)),
        ("max", ms(s.latency.max)),
    ];
    for (k, v) in cards {
        let _ = write!(
            o,
            "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
            esc(&v),
            esc(k)
        );
    }
    o.push_str("</div>");
    if let Some(om) = &s.open_model {
        let u = &om.latency_uncorrected;
        let _ = write!(
            o,
            "<p id=\"open-model\">Open model: the request times above count from each hit's intended start \
             (coordinated omission corrected). Uncorrected: mean {} · p50 {} · p95 {} · p99 {} · max {}. \
             Hit time p99 {} (uncorrected {}). Dropped starts: <b>{}</b>.</p>",
            esc(&ms(u.mean)),
            esc(&ms(u.p50)),
            esc(&ms(u.p95)),
            esc(&ms(u.p99)),
            esc(&ms(u.max)),
            esc(&ms(om.hit_time.p99)),
            esc(&ms(om.hit_time_uncorrected.p99)),
            om.dropped
        );
    }
    if let Some(why) = &s.aborted {
        let _ = write!(o, "<p class=\"bad\">Aborted: {}</p>", esc(why));
    }
    for p in &s.run_problems {
        let _ = write!(o, "<p class=\"bad\">{}</p>", esc(p));
    }
    o.push_str("</section>");

    if !s.thresholds.is_empty() {
        o.push_str(
            "<section id=\"thresholds\"><h2>Thresholds</h2><table><thead><tr>\
             <th class=\"l\">verdict</th><th class=\"l\">threshold</th><th>actual</th>\
             </tr></thead><tbody>",
        );
        for v in &s.thresholds {
            let _ = write!(
                o,
                "<tr><td class=\"l {}\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
                if v.pass { "ok" } else { "bad" },
                if v.pass { "pass" } else { "FAIL" },
                esc(&v.expression),
                esc(&v.actual_text)
            );
        }
        o.push_str("</tbody></table></section>");
    }

    if let Some(b) = result.baseline() {
        let _ = write!(
            o,
            "<section id=\"baseline\"><h2>Against the baseline</h2><p>Baseline: run {} of {}, started {}.</p>\
             <table><thead><tr><th class=\"l\">figure</th><th>now</th><th>baseline</th><th>change</th></tr></thead><tbody>",
            esc(&b.run_id),
            esc(&b.test),
            esc(&b.started)
        );
        for d in crate::result::summary::compare(&s, b) {
            let fmt = |v: f64| match d.unit.as_str() {
                "ms" => ms(v),
                "/s" => format!("{v:.1}/s"),
                _ => format!("{v:.0}"),
            };
            let class = match d.better {
                Some(true) => "ok",
                Some(false) => "bad",
                None => "",
            };
            let _ = write!(
                o,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
                esc(&d.name),
                esc(&fmt(d.current)),
                esc(&fmt(d.baseline)),
                esc(&d.change_text())
            );
        }
        o.push_str("</tbody></table></section>");
    }

    // Charts over time.
    o.push_str("<section id=\"charts\"><h2>Over time</h2><div class=\"charts\">");
    let t0 = s.timeline.first().map_or(0, |x| x.time);
    let xs =
        |f: &dyn Fn(&crate::result::summary::SecondSummary) -> Option<f64>| -> Vec<(f64, f64)> {
            s.timeline
                .iter()
                .filter_map(|x| f(x).map(|v| ((x.time - t0) as f64, v)))
                .collect()
        };
    let charts: [(&str, &str, Vec<Series>); 5] = [
        (
            "Throughput",
            "per second",
            vec![
                ("requests/s", BLUE, xs(&|x| Some(x.requests as f64))),
                ("hits/s", GREEN, xs(&|x| Some(x.hits as f64))),
            ],
        ),
        (
            "Request time",
            "ms",
            vec![
                ("p50", GREEN, xs(&|x| x.p50)),
                ("p95", RGBColor(230, 140, 0), xs(&|x| x.p95)),
                ("p99", RED, xs(&|x| x.p99)),
            ],
        ),
        (
            "Active users",
            "users",
            vec![("users", BLUE, xs(&|x| Some(x.users as f64)))],
        ),
        (
            "Failures and errors",
            "per second",
            vec![
                (
                    "failures/s",
                    RGBColor(230, 140, 0),
                    xs(&|x| Some(x.failures as f64)),
                ),
                ("errors/s", RED, xs(&|x| Some(x.errors as f64))),
            ],
        ),
        (
            "WebSocket messages",
            "per second",
            vec![(
                "messages/s",
                MAGENTA,
                xs(&|x| Some(x.socket_messages as f64)),
            )],
        ),
    ];
    for (i, (name, unit, series)) in charts.iter().enumerate() {
        let svg = line_chart(name, unit, series).unwrap_or_else(|e| {
            format!(
                "<p class=\"bad\">chart {} could not be drawn: {}</p>",
                esc(name),
                esc(&e)
            )
        });
        let points: usize = series.iter().map(|s| s.2.len()).sum();
        let _ = write!(
            o,
            "<div class=\"chart\" id=\"chart-{i}\" data-points=\"{points}\">{svg}</div>"
        );
    }
    o.push_str("</div></section>");

    // Per-URL table.
    o.push_str(
        "<section id=\"urls\"><h2>Requests by URL</h2><table class=\"sortable\"><thead><tr>\
         <th class=\"l\">method</th><th class=\"l\">URL</th><th>requests</th><th>req/s</th>\
         <th>HTTP errors</th><th class=\"l\">statuses</th><th>mean</th><th>p50</th><th>p90</th>\
         <th>p95</th><th>p99</th><th>max</th></tr></thead><tbody>",
    );
    for u in &s.urls {
        let statuses = u
            .statuses
            .iter()
            .map(|(k, n)| {
                if k == "0" {
                    format!("none×{n}")
                } else {
                    format!("{k}×{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let l = &u.latency;
        let _ = write!(
            o,
            "<tr><td class=\"l\">{}</td><td class=\"l url\">{}</td><td>{}</td><td>{:.1}</td><td>{}</td>\
             <td class=\"l\">{}</td>",
            esc(&u.method),
            esc(&u.url),
            u.requests,
            u.rps,
            u.http_errors,
            esc(&statuses)
        );
        for v in [l.mean, l.p50, l.p90, l.p95, l.p99, l.max] {
            let _ = write!(o, "<td data-v=\"{v}\">{}</td>", esc(&ms(v)));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table></section>");

    // Tests, scenarios and the users' lifecycle hooks.
    per_test_section(
        &mut o,
        "tests",
        "Tests",
        "test",
        "hits",
        "Hit durations: each hit's whole time, set-up and tear-down included.",
        &s.tests,
    );
    if !s.scenarios.is_empty() {
        per_test_section(
            &mut o,
            "scenarios",
            "Scenarios",
            "scenario",
            "hits",
            "Hit durations of the scenario's hits.",
            &s.scenarios,
        );
    }
    if !s.lifecycle.is_empty() {
        per_test_section(
            &mut o,
            "lifecycle",
            "Users (lifecycle hooks)",
            "hook",
            "runs",
            "Each virtual user's on_start and on_stop: reported apart, not counted as hits.",
            &s.lifecycle,
        );
    }

    // Failures and errors.
    o.push_str("<section id=\"problems\"><h2>Failures and errors</h2>");
    if s.problems.is_empty() {
        o.push_str("<p>None.</p>");
    } else {
        o.push_str(
            "<table><thead><tr><th>count</th><th class=\"l\">outcome</th><th class=\"l\">test</th>\
             <th class=\"l\">kind</th><th class=\"l\">message and traceback</th></tr></thead><tbody>",
        );
        let mut problems = s.problems.clone();
        problems.sort_by_key(|p| std::cmp::Reverse(p.count));
        for p in &problems {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td class=\"l\"><pre>{}</pre>",
                p.count,
                if p.outcome == ProblemKind::Failure {
                    "failure"
                } else {
                    "error"
                },
                esc(&p.test),
                esc(&p.kind),
                esc(&p.message)
            );
            if !p.traceback.is_empty() {
                let _ = write!(
                    o,
                    "<details><summary>traceback</summary><pre>{}</pre></details>",
                    esc(&p.traceback)
                );
            }
            o.push_str("</td></tr>");
        }
        o.push_str("</tbody></table>");
        if s.problems_dropped > 0 {
            let _ = write!(
                o,
                "<p>{} more failures and errors with other messages were counted but not kept.</p>",
                s.problems_dropped
            );
        }
    }
    o.push_str("</section>");

    // Counters and WebSockets.
    o.push_str("<section id=\"counters\"><h2>Counters</h2>");
    if s.counters.is_empty() {
        o.push_str("<p>None.</p>");
    } else {
        o.push_str("<table><thead><tr><th class=\"l\">name</th><th>value</th></tr></thead><tbody>");
        for (k, v) in &s.counters {
            let _ = write!(o, "<tr><td class=\"l\">{}</td><td>{v}</td></tr>", esc(k));
        }
        o.push_str("</tbody></table>");
    }
    o.push_str("</section>");
    let k = &s.sockets;
    let _ = write!(
        o,
        "<section id=\"websockets\"><h2>WebSockets</h2><p>{} opened · {} closed · {} messages received ({}) · {} sent ({})</p></section>",
        k.opened,
        k.closed,
        k.messages_received,
        esc(&format_bytes(k.bytes_received)),
        k.messages_sent,
        esc(&format_bytes(k.bytes_sent))
    );
    let _ = writeln!(
        o,
        "<footer style=\"padding:0 28px 18px;color:#5b6577;font-size:12px\">Generated by loads {}.</footer></main><script>{SCRIPT}</script></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    o
}

/// A section with a sortable table of per-test figures (tests, scenarios or hooks).
fn per_test_section(
    o: &mut String,
    id: &str,
    title: &str,
    what: &str,
    runs: &str,
    note: &str,
    m: &std::collections::BTreeMap<String, crate::result::summary::TestSummary>,
) {
    let _ = write!(
        o,
        "<section id=\"{id}\"><h2>{}</h2><p>{}</p><table class=\"sortable\"><thead><tr>\
         <th class=\"l\">{}</th><th>started</th><th>{}</th><th>{}/s</th><th>successes</th>\
         <th>failures</th><th>errors</th><th>mean</th><th>p50</th><th>p90</th><th>p95</th>\
         <th>p99</th><th>max</th></tr></thead><tbody>",
        esc(title),
        esc(note),
        esc(what),
        esc(runs),
        esc(runs)
    );
    for (name, t) in m {
        let c = &t.counts;
        let _ = write!(
            o,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(name),
            c.started,
            c.hits,
            t.hits_per_second,
            c.successes,
            c.failures,
            c.errors
        );
        let d = &t.duration;
        for v in [d.mean, d.p50, d.p90, d.p95, d.p99, d.max] {
            if d.count == 0 {
                o.push_str("<td data-v=\"0\">-</td>");
            } else {
                let _ = write!(o, "<td data-v=\"{v}\">{}</td>", esc(&ms(v)));
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table></section>");
}

/// One SVG line chart of `series` (name, colour, points (seconds since start, value)).
fn line_chart(title: &str, unit: &str, series: &[Series]) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let max_x = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let max_y = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let max_y = if max_y > 0.0 { max_y * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc(unit)
            .light_line_style(RGBColor(235, 237, 241))
            .draw()
            .map_err(|e| err(&e))?;
        for (name, color, points) in series {
            let color = *color;
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Event, EventSink, RunMeta, Stats};

    #[test]
    fn report_escapes_and_draws() {
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
            scenario: Some("<b>admins"),
            micros: Some(12_000),
            second: 5,
            outcome: crate::result::HitOutcome::Success,
        });
        st.record_hook("s::<i>on_start", 3_000, &crate::result::HitOutcome::Success);
        r.start();
        r.ingest(Event::Batch(Box::new(st)));
        r.finish();
        let page = render(&r);
        assert!(!page.contains("<script>\"") && !page.contains("s::<script>"));
        assert!(page.contains("s::&lt;script&gt;"));
        assert!(!page.contains("<b>admins") && page.contains("&lt;b&gt;admins"));
        assert!(!page.contains("<i>on_start") && page.contains("s::&lt;i&gt;on_start"));
        for id in ["tests", "scenarios", "lifecycle"] {
            assert!(page.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        // The hit durations of the one measured hit (3 significant figures).
        let at = page.find("<section id=\"scenarios\">").expect("scenarios");
        let section = &page[at..at + page[at..].find("</section>").expect("end")];
        assert_eq!(section.matches(">12.0").count(), 6, "{section}");
        assert_eq!(page.matches("<svg").count(), 5);
        assert!(page.contains("<polyline") || page.contains("<path"));
    }
}
