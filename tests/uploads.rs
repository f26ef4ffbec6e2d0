//! Uploads of blobs (test binaries, included files) to a real broker: two callers sending the
//! same new blob at once both succeed, and a caller's unfinished uploads have a quota.

mod common;

use common::cluster::{Cluster, noise};
use common::{DemoServer, figure, loads, stderr, stdout};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The broker's chunk size (`loads::transport::BINARY_CHUNK`).
const CHUNK: usize = 4 * 1024 * 1024;

/// A caller's REQ socket on the broker's front socket, each request bounded in time.
struct Caller {
    socket: zmq::Socket,
    _ctx: zmq::Context,
}

impl Caller {
    fn connect(front: &str) -> Caller {
        assert!(front.starts_with("tcp://127.0.0.1:"), "{front}");
        let ctx = zmq::Context::new();
        let socket = ctx.socket(zmq::REQ).expect("socket");
        socket.set_linger(0).expect("linger");
        socket.connect(front).expect("connect");
        Caller { socket, _ctx: ctx }
    }

    /// Sends `req` (and `bytes` as a second frame) and returns the broker's JSON answer.
    fn call(&self, req: &Value, bytes: Option<&[u8]>) -> Value {
        let frame = serde_json::to_vec(req).expect("json");
        match bytes {
            Some(b) => self.socket.send_multipart([frame.as_slice(), b], 0),
            None => self.socket.send(frame, 0),
        }
        .expect("send");
        let mut items = [self.socket.as_poll_item(zmq::POLLIN)];
        zmq::poll(&mut items, 60_000).expect("poll");
        assert!(items[0].is_readable(), "no answer to {req}");
        let reply = self.socket.recv_bytes(0).expect("recv");
        serde_json::from_slice(&reply).expect("JSON answer")
    }

    fn put(&self, sha: &str, offset: usize, total: usize, bytes: &[u8]) -> Value {
        self.call(
            &json!({"command": "put_binary", "sha256": sha, "offset": offset, "total": total}),
            Some(bytes),
        )
    }

    fn has(&self, sha: &str) -> bool {
        let v = self.call(&json!({"command": "has_binary", "sha256": sha}), None);
        assert_eq!(v["ok"], true, "{v}");
        v["present"].as_bool().expect("present")
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn two_callers_uploading_the_same_new_blob_at_once_both_succeed() {
    let cluster = Cluster::start("same-blob", 0);
    let blob = noise(&mut 0x5eed_u64, 10 * 1024 * 1024);
    let sha = sha256_hex(&blob);
    let (a, b) = (
        Caller::connect(&cluster.front),
        Caller::connect(&cluster.front),
    );
    assert!(!a.has(&sha));
    // Chunk by chunk, in turn: a's first, b's first, a's second...
    let mut offset = 0;
    while offset < blob.len() {
        let end = (offset + CHUNK).min(blob.len());
        for (name, c) in [("a", &a), ("b", &b)] {
            let v = c.put(&sha, offset, blob.len(), &blob[offset..end]);
            assert_eq!(v["ok"], true, "caller {name}, chunk at {offset}: {v}");
            if end == blob.len() {
                assert_eq!(v["complete"], true, "caller {name}: {v}");
            }
        }
        offset = end;
    }
    assert!(a.has(&sha) && b.has(&sha));
    let stored = std::fs::read(cluster.dir.join("binaries").join(&sha)).expect("stored blob");
    assert!(stored == blob, "the stored blob is the one sent");
    // No part file is left behind.
    let parts: Vec<_> = std::fs::read_dir(cluster.dir.join("binaries"))
        .expect("binaries")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");

    // Once a blob is there, another upload of it is accepted and leaves it as it was, whatever
    // its bytes (a completed blob is never replaced).
    let c = Caller::connect(&cluster.front);
    let v = c.put(&sha, 0, blob.len(), &blob[..CHUNK]);
    assert_eq!(v["ok"], true, "{v}");
    let v = c.put(&sha, CHUNK, blob.len(), &vec![0u8; CHUNK]);
    assert_eq!(v["ok"], true, "{v}");
    let stored = std::fs::read(cluster.dir.join("binaries").join(&sha)).expect("stored blob");
    assert!(stored == blob, "the stored blob is untouched");
}

#[test]
fn a_callers_unfinished_uploads_have_a_quota() {
    let cluster = Cluster::start("quota", 0);
    let caller = Caller::connect(&cluster.front);
    let mut seed = 7u64;
    // Four unfinished uploads of small blobs are taken; a fifth is refused, naming the limit.
    let blobs: Vec<Vec<u8>> = (0..5).map(|_| noise(&mut seed, 2000)).collect();
    for blob in &blobs[..4] {
        let v = caller.put(&sha256_hex(blob), 0, blob.len(), &blob[..1000]);
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["complete"], false, "{v}");
    }
    let fifth = &blobs[4];
    let v = caller.put(&sha256_hex(fifth), 0, fifth.len(), &fifth[..1000]);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["code"], "upload_quota", "{v}");
    let e = v["error"].as_str().expect("error");
    assert!(e.contains("at most 4 unfinished uploads"), "{e}");

    // Another caller is not held back by this one's uploads.
    let other = Caller::connect(&cluster.front);
    let v = other.put(&sha256_hex(fifth), 0, fifth.len(), fifth);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["complete"], true, "{v}");

    // Finishing an upload frees its place.
    let first = &blobs[0];
    let v = caller.put(&sha256_hex(first), 1000, first.len(), &first[1000..]);
    assert_eq!(v["complete"], true, "{v}");
    let second = &blobs[1];
    let v = caller.put(&sha256_hex(&blobs[3]), 0, 1 << 20, &second[..10]);
    assert_eq!(v["ok"], true, "a restarted upload takes no new place: {v}");
    let sixth = noise(&mut seed, 100);
    let v = caller.put(&sha256_hex(&sixth), 0, sixth.len(), &sixth[..50]);
    assert_eq!(v["ok"], true, "{v}");

    // Bytes: an upload that would take the caller's unfinished uploads beyond 8 GiB in all
    // is refused before any byte is stored.
    let big = 4usize << 30;
    for i in 0..2 {
        let v = other.put(&format!("{i:064x}"), 0, big, &[0u8; 10]);
        assert_eq!(v["ok"], true, "{v}");
    }
    let v = other.put(&"ab".repeat(32), 0, 1 << 30, &[0u8; 10]);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["code"], "upload_quota", "{v}");
    let e = v["error"].as_str().expect("error");
    assert!(e.contains("8 GiB"), "{e}");
}

#[test]
fn two_runs_started_at_once_on_a_fresh_broker_both_succeed() {
    let server = DemoServer::start();
    let cluster = Cluster::start("two-runs", 2);
    let args = |_: usize| {
        vec![
            "run".to_owned(),
            "example::health".into(),
            "--agents".into(),
            "1".into(),
            "-u".into(),
            "1".into(),
            "--hits".into(),
            "2".into(),
            "-s".into(),
            server.url.clone(),
            "--broker".into(),
            cluster.front.clone(),
        ]
    };
    // Both upload the (large) test binary at the same time.
    let runs: Vec<_> = (0..2)
        .map(|i| {
            loads()
                .args(args(i))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start loads run")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    for mut child in runs {
        let pid = child.id();
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
                panic!("loads run {pid} did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().expect("output");
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
        assert_eq!(figure(&text, "Hits:"), 2, "{text}");
    }
}
