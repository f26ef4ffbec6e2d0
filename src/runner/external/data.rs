//! The data endpoint of an external run: the test runners' processes get the rows of the run's
//! data sources (`--data`) by asking for them, one request per row, on a ZeroMQ ROUTER bound on
//! loopback (`LOADS_DATA_ENDPOINT`; a process connects a REQ socket). The rows come from the
//! same [`DataSet`] as a native run's, so the strategies are the same — and on a cluster the
//! unique rows are leased from the broker as for native workers.
//!
//! A request is one JSON object, `{"name": "accounts", "user": "LOADS_DATA_USER"}`; the answer
//! is `{"row": {...}, "index": 12}` or `{"error": "...", "exhausted": true|false, "stop":
//! true|false}`. A `per-user` source gives each `user` (one per process: its cycle step and user
//! number) one row, the same at every request. The protocol is in `docs/external-runners.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Strategy;
use crate::data::{DataError, DataSet, Row};
use crate::runner::RunError;

/// Largest request accepted (a name and a user key).
const MAX_REQUEST: i64 = 4096;

/// Binds the data endpoint: the context (keep it alive while the socket is used), the socket
/// and its endpoint for the processes (`LOADS_DATA_ENDPOINT`).
pub(super) fn bind() -> Result<(zmq::Context, zmq::Socket, String), RunError> {
    let ctx = zmq::Context::new();
    let sys = |e: zmq::Error| RunError::System(std::io::Error::other(e));
    let socket = ctx.socket(zmq::ROUTER).map_err(sys)?;
    socket.set_maxmsgsize(MAX_REQUEST).map_err(sys)?;
    socket.set_linger(0).map_err(sys)?;
    socket.bind("tcp://127.0.0.1:*").map_err(sys)?;
    let endpoint = socket
        .get_last_endpoint()
        .map_err(sys)?
        .map_err(|_| RunError::System(std::io::Error::other("the endpoint is not UTF-8")))?;
    Ok((ctx, socket, endpoint))
}

/// The key of a process's user (`LOADS_DATA_USER`): its cycle step and user number.
pub(super) fn user_key(step: usize, user: u64) -> String {
    format!("{}-{user}", step + 1)
}

/// Answers the processes' requests on `socket` until `done` is set.
pub(super) fn serve(socket: &zmq::Socket, data: &Arc<DataSet>, done: &AtomicBool) {
    // The rows of per-user sources, by (user, source): at most one per row of the sources.
    let mut own: HashMap<(String, String), Row> = HashMap::new();
    while !done.load(Ordering::SeqCst) {
        let mut items = [socket.as_poll_item(zmq::POLLIN)];
        if crate::transport::poll(&mut items, 100).is_err() {
            return;
        }
        if !items[0].is_readable() {
            continue;
        }
        while let Ok(frames) = socket.recv_multipart(zmq::DONTWAIT) {
            // [identity, empty delimiter, request] from a REQ socket.
            let [id, empty, body] = frames.as_slice() else {
                continue;
            };
            if !empty.is_empty() {
                continue;
            }
            let answer = answer(body, data, &mut own);
            let _ = socket.send_multipart([id.as_slice(), b"", answer.as_bytes()], zmq::DONTWAIT);
        }
    }
}

/// The answer to one request.
fn answer(body: &[u8], data: &DataSet, own: &mut HashMap<(String, String), Row>) -> String {
    #[derive(serde::Deserialize)]
    struct Request {
        name: String,
        #[serde(default)]
        user: String,
    }
    let fail = |message: String, exhausted: bool, stop: bool| {
        serde_json::json!({"error": message, "exhausted": exhausted, "stop": stop}).to_string()
    };
    let request: Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                format!(
                    "bad data request ({e}): send {{\"name\": \"NAME\", \"user\": LOADS_DATA_USER}}"
                ),
                false,
                false,
            );
        }
    };
    let strategy = data.strategy(&request.name);
    let taken = if strategy == Some(Strategy::PerUser) {
        let key = (request.user, request.name.clone());
        match own.get(&key) {
            Some(r) => Ok(r.clone()),
            None => data.take(&request.name).inspect(|r| {
                own.insert(key, r.clone());
            }),
        }
    } else {
        data.take(&request.name)
    };
    match taken {
        Ok(row) => serde_json::json!({"row": row.to_json(), "index": row.index()}).to_string(),
        Err(e @ DataError::Exhausted { .. }) => {
            fail(e.to_string(), true, strategy == Some(Strategy::QueueStop))
        }
        Err(e) => fail(e.to_string(), false, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_rows_by_strategy() {
        let dir = std::env::temp_dir().join(format!("loads-ext-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("a.csv"), "id\n0\n1\n").expect("write");
        let specs: Vec<crate::config::DataSpec> = ["q=a.csv:queue-stop", "p=a.csv:per-user"]
            .iter()
            .map(|s| s.parse().expect("spec"))
            .collect();
        let data = DataSet::load(&specs, &dir, (0, 1)).expect("load");
        let mut own = HashMap::new();
        let ask = |name: &str, user: &str, own: &mut HashMap<_, _>| -> serde_json::Value {
            let body = serde_json::json!({"name": name, "user": user}).to_string();
            serde_json::from_str(&answer(body.as_bytes(), &data, own)).expect("json")
        };
        assert_eq!(ask("q", "1-1", &mut own)["row"]["id"], "0");
        assert_eq!(ask("q", "1-1", &mut own)["row"]["id"], "1");
        let end = ask("q", "1-1", &mut own);
        assert_eq!(
            (end["exhausted"].as_bool(), end["stop"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(ask("p", "1-1", &mut own)["index"], 0);
        assert_eq!(ask("p", "1-2", &mut own)["index"], 1);
        assert_eq!(
            ask("p", "1-1", &mut own)["index"],
            0,
            "the same row for the same user"
        );
        assert_eq!(ask("p", "1-3", &mut own)["exhausted"], true);
        let e = ask("nope", "1-1", &mut own);
        assert!(
            e["error"].as_str().expect("error").contains("not declared"),
            "{e}"
        );
        let bad: serde_json::Value =
            serde_json::from_str(&answer(b"x", &data, &mut own)).expect("json");
        assert!(
            bad["error"]
                .as_str()
                .expect("error")
                .contains("bad data request")
        );
    }
}
