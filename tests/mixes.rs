//! Weighted test mixes, through the real binary against the real demo server on loopback:
//! each test of a mix gets its share of the hits (closed and open models), and bad mixes are
//! refused before any load.

mod common;

use common::{DemoServer, run_with_limit, stderr, summary_of};
use std::time::Duration;

/// Hits per test in the JSON summary written by `args` (plus the output options).
fn hits_by_test(name: &str, args: &[&str]) -> Vec<(String, u64)> {
    let summary = summary_of(&format!("mix-{name}"), args, 0);
    let mut v: Vec<(String, u64)> = summary["tests"]
        .as_object()
        .expect("tests")
        .iter()
        .map(|(k, t)| (k.clone(), t["hits"].as_u64().expect("hits")))
        .collect();
    v.sort();
    v
}

fn share_of(hits: &[(String, u64)], test: &str) -> f64 {
    let total: u64 = hits.iter().map(|(_, h)| h).sum();
    let mine = hits.iter().find(|(t, _)| t == test).map_or(0, |(_, h)| *h);
    mine as f64 / total as f64
}

#[test]
fn a_70_30_mix_gives_each_test_its_share() {
    let server = DemoServer::start();
    let mix = ["run", "example::get_root=70", "example::health=30"];
    let mut closed = mix.to_vec();
    closed.extend(["-u", "10", "--hits", "1000", "-s", &server.url]);
    let hits = hits_by_test("closed", &closed);
    assert_eq!(hits.iter().map(|(_, h)| h).sum::<u64>(), 10_000, "{hits:?}");
    let share = share_of(&hits, "example::get_root");
    assert!((0.68..=0.72).contains(&share), "closed model: {hits:?}");

    // The open model: every arrival picks by weight, one rate drives the mix.
    let mut open = mix.to_vec();
    open.extend(["--rate", "1000/s", "-d", "5s", "-s", &server.url]);
    let hits = hits_by_test("open", &open);
    let total: u64 = hits.iter().map(|(_, h)| h).sum();
    assert!(total >= 4_500, "open model: {hits:?}");
    let share = share_of(&hits, "example::get_root");
    assert!((0.67..=0.73).contains(&share), "open model: {hits:?}");
}

#[test]
fn bad_mixes_exit_2_before_any_load() {
    let server = DemoServer::start();
    for (args, needle) in [
        (vec!["example::get_root=0"], "invalid weight"),
        (vec!["example::get_root=many"], "invalid weight"),
        (vec!["example::get_root", "example::nope"], "no test named"),
        (vec!["example::health", "example::health=3"], "given twice"),
    ] {
        let mut all = vec!["run"];
        all.extend(args.iter().copied());
        all.extend(["-s", &server.url]);
        let out = run_with_limit(&all, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}
