//! Several scenarios in one run, from the config file's `[[scenario]]` tables, through the real
//! binary against the real demo server on loopback: each scenario keeps its own load model and
//! start delay, the results show each one, and bad scenarios are refused before any load.

mod common;

use common::{DemoServer, run_with_limit, stderr, stdout};
use std::path::PathBuf;
use std::time::Duration;

/// A scratch directory of this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loads-scen-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Runs `loads run -c FILE ARGS` with `config` as the file; returns the output.
fn run_config(dir: &std::path::Path, config: &str, args: &[&str]) -> std::process::Output {
    let path = dir.join("loads.toml");
    std::fs::write(&path, config).expect("config");
    let mut all = vec!["run", "-c", path.to_str().expect("utf8")];
    all.extend(args);
    run_with_limit(&all, Duration::from_secs(90))
}

#[test]
fn two_scenarios_keep_their_own_models_and_both_are_reported() {
    let server = DemoServer::start();
    let dir = scratch("two");
    let json = dir.join("summary.json");
    let config = format!(
        r#"
server-url = "{url}"

[[scenario]]
name = "shoppers"
tests = {{ "shop::browse" = 70, "shop::checkout" = 30 }}
rate = "100/s"
duration = "4s"

[[scenario]]
name = "admins"
tests = "example::health"
users = 2
duration = "3s"
think-time = "100ms"
start-after = "3s"
"#,
        url = server.url
    );
    let out = run_config(
        &dir,
        &config,
        &[
            "-o",
            "json",
            "-o",
            "stdout",
            "--output-json-path",
            json.to_str().expect("utf8"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("shoppers"), "{text}");
    assert!(text.contains("admins"), "{text}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("summary")).expect("json");
    let _ = std::fs::remove_dir_all(&dir);

    let scenario = |name: &str| s["scenarios"][name].clone();
    // The open scenario: 100 arrivals a second for 4 s, whatever the closed one does.
    let shoppers = scenario("shoppers")["hits"]
        .as_u64()
        .expect("shoppers hits");
    assert!(
        (380..=401).contains(&shoppers),
        "shoppers: {shoppers} in {s}"
    );
    // The closed one: 2 users pausing 100 ms between hits for 3 s, after 3 s.
    let admins = scenario("admins")["hits"].as_u64().expect("admins hits");
    assert!((40..=62).contains(&admins), "admins: {admins} in {s}");
    // The run lasts until the delayed scenario ends (3 s + 3 s), not the open one's 4 s.
    let secs = s["duration"].as_f64().expect("duration");
    assert!((5.8..=8.0).contains(&secs), "duration {secs} in {s}");
    // Per second: the open scenario alone at its rate first (seconds 1 and 2 of the run, whole
    // seconds before the closed one starts), then the closed one alone at its own pace
    // (second 5, after the open one ended).
    let timeline: Vec<u64> = s["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|t| t["hits"].as_u64().expect("hits"))
        .collect();
    assert!(timeline.len() >= 6, "{timeline:?}");
    for (i, n) in timeline.iter().enumerate().take(3).skip(1) {
        assert!((85..=115).contains(n), "second {i}: {n} in {timeline:?}");
    }
    assert!(
        (12..=24).contains(&timeline[5]),
        "second 5 (the closed scenario alone): {timeline:?}"
    );
    assert_eq!(
        timeline.iter().sum::<u64>(),
        shoppers + admins,
        "{timeline:?}"
    );
    // The tests of each scenario are counted under their names too.
    assert_eq!(
        s["tests"]["example::health"]["hits"].as_u64(),
        Some(admins),
        "{s}"
    );
}

#[test]
fn bad_scenarios_are_refused_before_any_load() {
    let dir = scratch("bad");
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "[[scenario]]\ntests = \"example::health\"\n",
            &[],
            "no name",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"example::health\"\n[[scenario]]\nname = \"a\"\ntests = \"example::health\"\n",
            &[],
            "two scenarios are named \"a\"",
        ),
        ("[[scenario]]\nname = \"a\"\n", &[], "has no tests"),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"example::nope\"\n",
            &[],
            "example::nope",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = { \"example::health\" = 0 }\n",
            &[],
            "invalid weight",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"example::health shop::browse\"\n",
            &[],
            "different suites",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"example::health\"\nrate = \"10/s\"\n",
            &[],
            "scenario \"a\"",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"example::health\"\nthink_time = \"1s\"\n",
            &[],
            "did you mean `think-time`",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"example::health\"\n",
            &["-u", "3"],
            "each scenario has its own load model",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"example::health\"\n",
            &["example::health"],
            "takes its tests from them",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"example::health\"\nstart-after = \"soon\"\n",
            &[],
            "start-after",
        ),
        (
            "raw-events = true\n[[scenario]]\nname = \"a\"\ntests = \"example::health\"\n",
            &[],
            "raw events carry no scenario",
        ),
        (
            "[[scenario]]\nname = \"shoppers\"\ntests = \"example::health\"\n",
            &["--threshold", "scenario=shopers hits>0"],
            "names scenario \"shopers\", which this run does not have (the run's scenarios: shoppers)",
        ),
        (
            "[[scenario]]\nname = \"a\"\ntests = \"shop::browse\"\n",
            &["--threshold", "test=shop::chekout p95<1s"],
            "names test \"shop::chekout\"",
        ),
    ];
    for (config, args, expected) in cases {
        let out = run_config(&dir, config, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{config}\n{err}");
        assert!(
            err.contains(expected),
            "{config}: expected {expected:?} in\n{err}"
        );
        assert!(!err.contains("Hits:"), "{config}: a load ran\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_example_runs_as_written() {
    let server = DemoServer::start();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = scratch("example");
    let json = dir.join("summary.json");
    // The command line's server URL wins over the file's (a demo server on a free port).
    let out = common::run_in(
        repo,
        &[
            "run",
            "-c",
            "examples/scenarios.toml",
            "-s",
            &server.url,
            "-q",
            "-o",
            "json",
            "--output-json-path",
            json.to_str().expect("utf8"),
        ],
        Duration::from_secs(90),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("summary")).expect("json");
    let _ = std::fs::remove_dir_all(&dir);
    for name in ["shoppers", "admins", "members"] {
        assert!(
            s["scenarios"][name]["hits"].as_u64().unwrap_or(0) > 0,
            "{name} in {s}"
        );
    }
    assert_eq!(s["lifecycle"]["shop::on_start"]["failures"], 0, "{s}");
    // Per-user accounts: three users, three accounts, each used by one user only.
    for account in ["alice", "bob", "carol"] {
        assert!(
            s["counters"][format!("account {account}")]
                .as_u64()
                .unwrap_or(0)
                > 0,
            "{s}"
        );
    }
}
