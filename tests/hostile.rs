//! Hostile input to the message decoders: every crash the fuzz target (`fuzz/`) ever found is a
//! file in `fuzz/regressions/` and replayed here, with hand-made hostile messages beside them.
//! Each must be decoded (or refused) without a panic.

use std::path::Path;

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
        loads::transport::decode_any(input);
    }
}
