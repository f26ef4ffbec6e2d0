//! Renders the page: the template of [`super::assets`] with the scripts, styles and (for a
//! report, or the first paint of a live page) the page data inlined, so that the result is one
//! self-contained file.

use super::assets;

/// What the page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A finished run's report, its data embedded; no server.
    Report,
    /// A live run's dashboard: the data comes over `api/events`.
    Live,
}

/// JSON text made safe inside a `<script>` element: `<`, `>` and `&` (which only occur inside
/// JSON strings) become `\u003c`-style escapes, so no `</script>` can end the element early.
pub fn script_json(json: &str) -> String {
    let mut o = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => o.push_str("\\u003c"),
            '>' => o.push_str("\\u003e"),
            '&' => o.push_str("\\u0026"),
            '\u{2028}' => o.push_str("\\u2028"),
            '\u{2029}' => o.push_str("\\u2029"),
            c => o.push(c),
        }
    }
    o
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The whole page, titled `title`, with `data_json` (page data as JSON text, or empty) inlined.
pub fn render(title: &str, data_json: &str, mode: Mode) -> String {
    let data = script_json(data_json);
    let tpl = assets::PAGE_HTML;
    let mut o = String::with_capacity(
        tpl.len() + data.len() + assets::UPLOT_JS.len() + assets::APP_JS.len() + 8192,
    );
    // One pass over the template: text put in is never searched for placeholders again.
    let mut rest = tpl;
    while let Some(at) = rest.find("{{") {
        o.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find("}}") else {
            o.push_str(&rest[at..]);
            rest = "";
            break;
        };
        match &after[..end] {
            "TITLE" => o.push_str(&esc(title)),
            "MODE" => o.push_str(match mode {
                Mode::Report => "report",
                Mode::Live => "live",
            }),
            "VERSION" => o.push_str(env!("CARGO_PKG_VERSION")),
            "UPLOT_VERSION" => o.push_str(assets::UPLOT_VERSION.trim()),
            "UPLOT_CSS" => o.push_str(assets::UPLOT_CSS),
            "APP_CSS" => o.push_str(assets::APP_CSS),
            "UPLOT_JS" => o.push_str(assets::UPLOT_JS),
            "APP_JS" => o.push_str(assets::APP_JS),
            "DATA" => o.push_str(&data),
            other => {
                o.push_str("{{");
                o.push_str(other);
                o.push_str("}}");
            }
        }
        rest = &after[end + 2..];
    }
    o.push_str(rest);
    o
}

/// The broker's page (`loads broker --web`): agents, runs, comparisons; it fetches its data.
pub fn render_broker() -> String {
    assets::BROKER_HTML
        .replace("{{APP_CSS}}", assets::APP_CSS)
        .replace("{{BROKER_JS}}", assets::BROKER_JS)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_its_script() {
        let page = render(
            "t<b>",
            r#"{"test":"</script><script>alert(1)</script>"}"#,
            Mode::Report,
        );
        assert!(!page.contains("</script><script>alert"));
        assert!(page.contains("\\u003c/script\\u003e"));
        assert!(page.contains("<title>t&lt;b&gt;</title>"));
        assert!(!page.contains("{{"), "every placeholder is filled");
        assert!(page.contains("data-mode=\"report\""));
        // The bundled library and its version are in.
        assert!(page.contains("uPlot"));
        assert!(assets::UPLOT_LICENSE.contains("MIT"));
    }

    #[test]
    fn placeholders_in_the_data_stay_data() {
        let page = render("t", r#"{"x":"{{APP_JS}}"}"#, Mode::Live);
        assert!(page.contains(r#"{"x":"{{APP_JS}}"}"#));
    }
}
