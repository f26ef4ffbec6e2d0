//! The seed system's config files: Loads v1 read an INI file with a `[loads]` section (keys
//! `fqn`, `users`, `hits`, `duration`, `agents`, `broker`, `include_file`…). loads reads TOML;
//! [`toml_equivalent`] recognises a v1 file and writes the TOML that says the same, so that the
//! refusal shows what to write instead. Text enters; the equivalent TOML (or `None` for a file
//! that is not a v1 one) leaves.

/// The TOML equivalent of `text` when it is a Loads v1 INI config file (a `[loads]` section),
/// else `None`.
pub(super) fn toml_equivalent(text: &str) -> Option<String> {
    let mut in_loads = false;
    let mut seen_loads = false;
    // The `[loads]` section's keys and values, in order; an indented line continues the value
    // above it (INI as Python's configparser reads it: v1's `include_file` over several lines).
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut continues = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if indented
            && continues
            && let Some((_, value)) = entries.last_mut()
        {
            value.push('\n');
            value.push_str(line);
            continue;
        }
        continues = false;
        if line.starts_with('[') && line.ends_with(']') {
            in_loads = line[1..line.len() - 1].trim() == "loads";
            seen_loads |= in_loads;
            continue;
        }
        if !in_loads {
            continue;
        }
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            continue;
        };
        entries.push((key.trim().replace('-', "_"), value.trim().to_owned()));
        continues = true;
    }
    let mut out = String::new();
    for (key, value) in &entries {
        out.push_str(&entry(key, value));
        out.push('\n');
    }
    seen_loads.then_some(out)
}

/// One v1 key and its value as TOML (or as a comment saying what became of it).
fn entry(key: &str, value: &str) -> String {
    let text = |k: &str| format!("{k} = {}", quoted(value));
    let number_or_text = |k: &str| match value.parse::<f64>() {
        Ok(_) => format!("{k} = {value}"),
        Err(_) => text(k),
    };
    match key {
        "fqn" => format!(
            "test = {}   # v1's Python path: give SUITE::TEST (`loads list` shows them)",
            quoted(value)
        ),
        "users" | "hits" => text(key),
        "duration" => number_or_text("duration"),
        "agents" => number_or_text("agents"),
        "broker" => text("broker"),
        "server_url" => text("server-url"),
        "test_runner" => text("test-runner"),
        "project_name" => text("project-name"),
        "output" => list("output", value),
        "observer" => list("notify", value),
        "include_file" => list("include-file", value),
        "detach" => "# detach: give --detach on the command line".to_owned(),
        "python_dep" => {
            format!("# python_dep = {value}: not needed (the worker is your test binary)")
        }
        other => format!("# {other} = {value}: no loads equivalent (see `loads run --help`)"),
    }
}

/// A value as a TOML string.
fn quoted(value: &str) -> String {
    format!("{:?}", value.trim_matches('"'))
}

/// A v1 value of several words (spaces, commas or newlines) as a TOML list.
fn list(key: &str, value: &str) -> String {
    let items: Vec<String> = value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(quoted)
        .collect();
    format!("{key} = [{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_file_gets_its_toml_equivalent() {
        let v1 = "[loads]\nfqn = example.TestWebSite.test_something\nusers = 10:20\nhits = 5\nagents = 2\n\
                  broker = tcp://127.0.0.1:7780\ninclude_file = *.py data.json\nserver_url = http://localhost:8080\n\
                  python_dep = requests\n";
        let toml_text = toml_equivalent(v1).expect("a v1 file");
        assert!(
            toml_text.contains("test = \"example.TestWebSite.test_something\""),
            "{toml_text}"
        );
        assert!(toml_text.contains("users = \"10:20\""), "{toml_text}");
        assert!(
            toml_text.contains("include-file = [\"*.py\", \"data.json\"]"),
            "{toml_text}"
        );
        assert!(
            toml_text.contains("server-url = \"http://localhost:8080\""),
            "{toml_text}"
        );
        assert!(toml_text.contains("agents = 2"), "{toml_text}");
        // What it writes is TOML.
        let parsed: toml::Table = toml::from_str(&toml_text).expect("TOML");
        assert_eq!(parsed["hits"].as_str(), Some("5"));
        assert!(toml_equivalent("users = 3\n").is_none());
    }

    #[test]
    fn indented_lines_continue_the_value_above() {
        // INI (Python's configparser, which v1 read its file with): an indented line goes on
        // with the value of the key above it; it was dropped, and its files with it.
        let v1 = "[loads]\ninclude_file = *.py\n    data/*.json\n\tfixtures.csv\nusers = 5\n";
        let toml_text = toml_equivalent(v1).expect("a v1 file");
        assert!(
            toml_text.contains("include-file = [\"*.py\", \"data/*.json\", \"fixtures.csv\"]"),
            "{toml_text}"
        );
        assert!(toml_text.contains("users = \"5\""), "{toml_text}");
        let parsed: toml::Table = toml::from_str(&toml_text).expect("TOML");
        assert_eq!(parsed["include-file"].as_array().map(Vec::len), Some(3));
    }
}
