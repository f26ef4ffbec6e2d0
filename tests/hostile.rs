//! Hostile input to the message decoders: every crash the fuzz target (`fuzz/`) ever found is a
//! file in `fuzz/regressions/` and replayed here, with hand-made hostile messages beside them.
//! Each must be decoded (or refused) without a panic, and the memory bombs (tiny messages that
//! claim huge histograms, or batches of very many histograms) within a stated memory bound.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};

fn hostile_messages() -> Vec<Vec<u8>> {
    let mut m: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"{}".to_vec(),
        b"{\"data_type\":\"add_hit\",\"url\":\"u\",\"method\":\"GET\",\"status\":70000,\"started\":\"2026-11-26T05:00:00Z\",\"elapsed\":1e308,\"loads_status\":[1,1,1,1]}".to_vec(),
        b"{\"data_type\":\"add_hit\",\"url\":\"u\",\"method\":\"GET\",\"status\":200,\"started\":\"2026-11-26T05:00:00Z\",\"elapsed\":-5,\"loads_status\":[1e300,1,1,1]}".to_vec(),
        b"{\"data_type\":\"add_hit\",\"url\":\"u\",\"method\":\"GET\",\"status\":200,\"started\":\"9999-99-99\",\"elapsed\":0.1,\"loads_status\":[1,1,1,1]}".to_vec(),
        b"{\"data_type\":\"socket_message\",\"size\":18446744073709551615}".to_vec(),
        b"{\"data_type\":\"batch\",\"tests\":{\"t\":{\"started\":18446744073709551615,\"hits\":18446744073709551615}},\"counters\":{\"c\":18446744073709551615}}".to_vec(),
        // Histograms that are not histograms.
        b"{\"data_type\":\"batch\",\"requests\":{\"count\":1,\"statuses\":{\"200\":1},\"latency\":\"AAAA\"}}".to_vec(),
        b"{\"data_type\":\"batch\",\"requests\":{\"count\":1,\"statuses\":{\"x\":1},\"latency\":\"!!\"}}".to_vec(),
        b"{\"command\":\"run\",\"args\":{\"users\":\"0\"}}".to_vec(),
        b"{\"command\":\"need_binary\",\"sha256\":\"../../etc/passwd\",\"offset\":18446744073709551615}".to_vec(),
        b"{\"type\":\"events\",\"first\":18446744073709551615,\"envelopes\":[{\"data_type\":\"socket_open\"}]}".to_vec(),
        // v1 producers' forms (read by the external runners' receiver).
        b"{\"data_type\":\"batch\",\"run_id\":null,\"counts\":{\"batch\":[{\"counts\":{}}],\"add_hit\":[1,null,{\"started\":\"2026-11-26 05:00:00.9999999999\",\"elapsed\":[1e308,1e308]}]}}".to_vec(),
        b"{\"data_type\":\"batch\",\"counts\":{\"startTest\":{}}}".to_vec(),
        b"{\"data_type\":\"addFailure\",\"test\":\"t\",\"exc_info\":[\"<class ''>\",\"<type 'exceptions.'>\",\"\"],\"loads_status\":\"18446744073709551616,,,\"}".to_vec(),
        b"{\"data_type\":\"addError\",\"test\":\"t\",\"exc_info\":[\"JSError\",\"\\\"\",\"\"],\"loads_status\":[\"1\",\"-1\",\"x\",null]}".to_vec(),
    ];
    // Deep nesting.
    m.push(
        std::iter::repeat_n(b'[', 100_000)
            .chain(std::iter::repeat_n(b']', 100_000))
            .collect(),
    );
    // A huge field.
    let mut huge = b"{\"data_type\":\"incr_counter\",\"test\":\"t\",\"name\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 8 * 1024 * 1024));
    huge.extend(b"\",\"loads_status\":[1,1,1,1]}");
    m.push(huge);
    // A histogram bomb: a valid V2-deflate histogram that claims the widest range there is.
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, u64::MAX / 2, 5).expect("h");
    h.record(u64::MAX / 4).expect("record");
    let mut buf = Vec::new();
    use hdrhistogram::serialization::Serializer as _;
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(&h, &mut buf)
        .expect("serialize");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&buf);
    m.push(
        format!(
            "{{\"data_type\":\"batch\",\"requests\":{{\"count\":1,\"statuses\":{{\"200\":1}},\"latency\":\"{b64}\"}}}}"
        )
        .into_bytes(),
    );
    m
}

#[test]
fn hostile_messages_and_fuzz_regressions_never_panic() {
    let mut inputs = hostile_messages();
    for sub in ["fuzz/regressions", "fuzz/seeds"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(sub);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    inputs.push(std::fs::read(e.path()).expect("input file"));
                }
            }
        }
    }
    for input in &inputs {
        loads::__private::internals::decode_any(input);
    }
}

/// Base64 of `h` in loads' wire form (V2 + deflate).
fn wire(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serialize");
    base64::engine::general_purpose::STANDARD.encode(&buf)
}

/// A V2-deflate histogram whose (inner) V2 header claims a `claimed`-byte payload.
fn claimed_payload_bomb(claimed: u32) -> String {
    let mut v2 = Vec::new();
    v2.extend(0x1c84_9313u32.to_be_bytes()); // V2 cookie
    v2.extend(claimed.to_be_bytes()); // payload length
    v2.extend(0u32.to_be_bytes()); // normalizing offset
    v2.extend(3u32.to_be_bytes()); // significant figures
    v2.extend(1u64.to_be_bytes()); // lowest discernible value
    v2.extend(3_600_000_000u64.to_be_bytes()); // highest trackable value
    v2.extend(1.0f64.to_be_bytes()); // integer-to-double ratio
    v2.extend([2u8; 16]); // a few counts, then the stream ends
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&v2).expect("deflate");
    let deflated = z.finish().expect("deflate");
    let mut out = Vec::new();
    out.extend(0x1c84_9314u32.to_be_bytes()); // V2-deflate cookie
    out.extend((deflated.len() as u32).to_be_bytes());
    out.extend(deflated);
    base64::engine::general_purpose::STANDARD.encode(&out)
}

fn batch_with_urls(entries: impl Iterator<Item = (String, String)>) -> Vec<u8> {
    let mut s = String::from("{\"data_type\":\"batch\",\"run_id\":\"r\",\"urls\":{");
    for (i, (url, b64)) in entries.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "\"{url}\":{{\"GET\":{{\"count\":1,\"statuses\":{{\"200\":1}},\"latency\":\"{b64}\"}}}}"
        ));
    }
    s.push_str("}}");
    s.into_bytes()
}

/// The memory bombs, by name (also in `fuzz/seeds/`, as `bomb-NAME.json`).
fn memory_bombs() -> Vec<(&'static str, Vec<u8>)> {
    let mut bombs = Vec::new();
    // ~300 bytes whose histogram header claims a 1 GiB payload.
    let b64 = claimed_payload_bomb(1 << 30);
    bombs.push((
        "claimed-1gib",
        format!(
            "{{\"data_type\":\"batch\",\"run_id\":\"r\",\"requests\":{{\"count\":1,\"statuses\":{{\"200\":1}},\"latency\":\"{b64}\"}}}}"
        )
        .into_bytes(),
    ));
    // Valid 5-significant-digit histograms spanning 1..2^62 (each ~50 MB of counters).
    let mut h = Histogram::<u64>::new_with_bounds(1, 1 << 62, 5).expect("h");
    h.record(1 << 61).expect("record");
    let b64 = wire(&h);
    bombs.push((
        "sigfig5-wide",
        batch_with_urls((0..12).map(|i| (format!("/w{i}"), b64.clone()))),
    ));
    // Very many full-range histograms (1 µs to a day, 3 significant digits: 224 KiB each),
    // more than a batch may carry.
    let mut h = Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 3).expect("h");
    h.record(86_400_000_000).expect("record");
    let b64 = wire(&h);
    bombs.push((
        "many-histograms",
        batch_with_urls((0..1100).map(|i| (format!("/m{i}"), b64.clone()))),
    ));
    // Very many timeline seconds, each with a full-range per-second histogram, more than a
    // batch may carry.
    let mut h = Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 2).expect("h");
    h.record(86_400_000_000).expect("record");
    let b64 = wire(&h);
    let mut s = String::from("{\"data_type\":\"batch\",\"run_id\":\"r\",\"timeline\":{");
    for i in 0..700 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"{}\":{{\"hits\":1,\"successes\":1,\"failures\":0,\"errors\":0,\"requests\":1,\"socket_messages\":0,\"users\":1,\"latency\":\"{b64}\"}}", 1_700_000_000 + i));
    }
    s.push_str("}}");
    bombs.push(("many-seconds", s.into_bytes()));
    bombs
}

/// The bound on the peak RSS of a process that decodes every bomb as the broker and the caller
/// do ([`loads::__private::internals::decode_any`]). Refused before their histograms are allocated, except
/// `many-histograms`: up to `MAX_BATCH_REQUEST_STATS` (1017) full-range histograms of 224 KiB
/// (223 MiB, some 270 MiB with the allocator's rounding) are decoded before the entry over the
/// bound is refused; see `loads::result::stats`.
/// Before the bounds, the first bomb alone (167 bytes) took the process from 135 MiB to over
/// 1.1 GiB.
const BOMB_RSS_LIMIT_MIB: u64 = 320;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn bomb_seeds() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fuzz/seeds")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("bomb-")
                .then(|| (name, std::fs::read(e.path()).expect("seed")))
        })
        .collect();
    seeds.sort();
    seeds
}

/// Runs in a child process of [`memory_bombs_stay_under_the_bound`] (a peak RSS of its own):
/// decodes every bomb of `fuzz/seeds/` and prints the peak RSS after each.
#[test]
#[ignore = "run by memory_bombs_stay_under_the_bound, in a process of its own"]
fn memory_bombs_child() {
    if std::env::var_os("LOADS_BOMB_CHILD").is_none() {
        return;
    }
    let bombs = bomb_seeds();
    println!("BOMB before {} {}", bombs.len(), vm_hwm_kib());
    for (name, bomb) in &bombs {
        loads::__private::internals::decode_any(bomb);
        println!("BOMB {name} {} {}", bomb.len(), vm_hwm_kib());
    }
}

#[test]
fn memory_bombs_stay_under_the_bound() {
    let seeds = bomb_seeds();
    let generated = memory_bombs();
    assert_eq!(seeds.len(), generated.len(), "run write_bomb_seeds");
    for (name, bomb) in &generated {
        assert!(
            serde_json::from_slice::<loads::__private::internals::Envelope>(bomb).is_err(),
            "{name} decodes"
        );
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "memory_bombs_child", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("LOADS_BOMB_CHILD", "1")
        .output()
        .expect("child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find("BOMB ").map(|i| &l[i..]))
        .collect();
    eprintln!("{}", lines.join("\n"));
    assert_eq!(lines.len(), seeds.len() + 1, "{stdout}");
    let peak: u64 = lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .max()
        .expect("kB");
    assert!(
        peak < BOMB_RSS_LIMIT_MIB * 1024,
        "peak RSS {peak} KiB over {BOMB_RSS_LIMIT_MIB} MiB:\n{stdout}"
    );
}

/// Writes the memory bombs into `fuzz/seeds/` (run once by hand: `cargo test --test hostile
/// write_bomb_seeds -- --ignored`).
#[test]
#[ignore = "writes fuzz/seeds/bomb-*.json"]
fn write_bomb_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, bomb) in memory_bombs() {
        std::fs::write(dir.join(format!("bomb-{name}.json")), bomb).expect("seed");
    }
}
