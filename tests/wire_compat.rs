//! The JSON that travels to agents (a job and its run arguments) and the JSON summary keep their
//! fields across refactors: both are compared with ones produced by an earlier version, checked
//! into `tests/fixtures/` (the job file of a real cluster run, the `json` output of a real local
//! run with the same options).

mod common;

use common::{DemoServer, run_with_limit, stderr};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

/// Every path of object keys in `v` (`a.b.c`; the elements of an array share the path `a[]`;
/// maps keyed by data — URLs, seconds, tests, scenarios, hooks, statuses — are entered but
/// their keys are not names, so they are written `*`).
fn key_paths(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    const DATA_KEYED: [&str; 8] = [
        "urls",
        "timeline",
        "tests",
        "scenarios",
        "lifecycle",
        "statuses",
        "counters",
        "methods",
    ];
    match v {
        Value::Object(m) => {
            let data = DATA_KEYED.iter().any(|k| at.ends_with(k));
            for (k, child) in m {
                let name = if data { "*" } else { k.as_str() };
                let p = format!("{at}.{name}");
                out.insert(p.clone());
                key_paths(child, &p, out);
            }
        }
        Value::Array(a) => {
            for child in a {
                key_paths(child, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_job_that_travels_to_agents_reads_and_writes_back_unchanged() {
    let old = fixture("job.json");
    let job: loads::__private::internals::Job =
        serde_json::from_value(old.clone()).expect("an old job reads");
    let new = serde_json::to_value(&job).expect("json");
    assert_eq!(new, old, "the job's JSON changed");
}

#[test]
fn the_json_summary_keeps_every_field() {
    let server = DemoServer::start();
    let dir = std::env::temp_dir().join(format!("loads-wire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("summary.json");
    // The options the fixture was made with.
    let out = run_with_limit(
        &[
            "run",
            "example::health",
            "-u",
            "2",
            "-d",
            "2s",
            "--ramp-up",
            "1s",
            "--think-time",
            "10ms",
            "--threshold",
            "p95<1s",
            "-o",
            "json",
            "--output-json-path",
            path.to_str().expect("utf8"),
            "--project-name",
            "proj",
            "--request-timeout",
            "5s",
            "-s",
            &server.url,
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let new: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("summary")).expect("json");
    let (mut old_keys, mut new_keys) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&fixture("summary.json"), "", &mut old_keys);
    key_paths(&new, "", &mut new_keys);
    let lost: Vec<&String> = old_keys.difference(&new_keys).collect();
    assert!(lost.is_empty(), "fields the summary lost: {lost:?}");
    assert_eq!(new["format"], fixture("summary.json")["format"]);
    let _ = std::fs::remove_dir_all(&dir);
}
