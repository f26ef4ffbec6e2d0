//! The README's "Write a load test in your own crate" example, exactly as the README shows it
//! (`tests/readme.rs` keeps the two the same); `cargo test` runs its tests against the embedded
//! demo server, so the README's example passes as written.

use loads::prelude::*;

/// Per-virtual-user state: created once per user, kept across that user's hits.
#[derive(Default)]
struct Blog {
    posted: u64,
}

/// What this suite is about (shown by `loads list`)
// `server`: under `cargo test`, start the embedded demo server and test against it; for your
// own service write `#[loads::suite(server_url = "http://127.0.0.1:8080")]` (the default of
// `--server-url`, and of `cargo test` unless LOADS_SERVER_URL is set).
#[loads::suite(server = loads::demo::test_server_url)]
impl Blog {
    /// Read the article list, then post a comment
    async fn read_and_post(&mut self, t: &mut TestCase) -> Outcome {
        let res = t.app.get("/api/items").send().await?; // `?` on an error: an *error*
        ensure_eq!(res.status(), 200); // does not hold: a *failure*
        let res = t
            .app
            .post("/api/items")
            .json(&json!({"comment": "nice"}))
            .send()
            .await?;
        ensure!(res.status().is_success(), "post answered {}", res.status());
        self.posted += 1;
        t.incr_counter("comments");
        Ok(())
    }

    /// Echo over a WebSocket
    async fn chat(&mut self, t: &mut TestCase) -> Outcome {
        let mut ws = t.ws("/ws").await?; // relative to --server-url
        ws.send("hello").await?;
        ensure_eq!(ws.recv_text().await?, "hello");
        ws.close().await?;
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    loads::main() // the whole `loads` command line, with your suites registered
}
