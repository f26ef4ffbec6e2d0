//! A load test written the way a user writes one in their own crate: a suite with per-user
//! state, set-up and tear-down, `app` and `session`, a WebSocket with a callback, custom
//! counters, and `main` handing over to the whole `loads` command line.
//!
//! In your own crate, `Cargo.toml` needs `loads` and `serde_json`; this file is then your
//! `src/main.rs`. Here it runs as a cargo example against the demo server:
//!
//! ```text
//! cargo run --release -- demo-server --bind 127.0.0.1:8080 &
//! cargo run --release --example blog -- list
//! cargo run --release --example blog -- run blog::read_and_post -u 10 --hits 20 --server-url http://127.0.0.1:8080
//! cargo test --example blog          # the same tests as functional tests (one user, one hit)
//! ```

use loads::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Per-virtual-user state: created once per user, kept across that user's hits.
#[derive(Default)]
struct Blog {
    /// Set by `setup` before every hit.
    logged_in: bool,
    /// Items this user has posted so far (kept between hits).
    posted: u64,
}

/// A blog-like scenario against the loads demo server
#[loads::suite(server = loads::demo::test_server_url)]
impl Blog {
    /// Runs before each hit: logs in with basic auth.
    async fn setup(&mut self, t: &mut TestCase) -> Outcome {
        let res = t
            .app
            .get("/basic-auth/writer/s3cret")
            .basic_auth("writer", Some("s3cret"))
            .send()
            .await?;
        ensure_eq!(res.status(), 200, "login refused");
        self.logged_in = true;
        Ok(())
    }

    /// Runs after each hit whose set-up succeeded.
    async fn teardown(&mut self, _t: &mut TestCase) -> Outcome {
        self.logged_in = false;
        Ok(())
    }

    /// Read the article list and one article, then post a comment
    async fn read_and_post(&mut self, t: &mut TestCase) -> Outcome {
        ensure!(self.logged_in);
        let items: Vec<serde_json::Value> = t.app.get("/api/items").send().await?.json()?;
        ensure!(!items.is_empty(), "the list is empty");
        let id = 1 + (t.status().current_hit % 20);
        let item = t
            .app
            .get(&format!("/api/items/{id}"))
            .name("/api/items/{id}")
            .send()
            .await?;
        ensure_eq!(item.status(), 200);
        let res = t
            .app
            .post("/api/items")
            .json(&json!({"comment": "nice", "user": t.status().current_user}))
            .send()
            .await?;
        ensure_eq!(res.status(), StatusCode::CREATED);
        self.posted += 1;
        t.incr_counter("comments-posted");
        Ok(())
    }

    /// Chat over a WebSocket, counting received messages in a callback
    async fn chat(&mut self, t: &mut TestCase) -> Outcome {
        let received = Arc::new(AtomicUsize::new(0));
        let mut ws = t.ws("/ws").await?;
        let counter = received.clone();
        ws.on_message(move |_msg| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        for text in ["hello", "how are you?", "bye"] {
            ws.send(text).await?;
            ensure_eq!(ws.recv_text().await?, text);
        }
        ws.close().await?;
        ensure_eq!(received.load(Ordering::Relaxed), 3);
        Ok(())
    }

    /// An absolute URL through `session` (same cookies and connections as `app`)
    async fn absolute_url(&mut self, t: &mut TestCase) -> Outcome {
        let base = t.server_url().map(|u| u.to_string()).unwrap_or_default();
        let res = t.session.get(&format!("{base}health")).send().await?;
        ensure!(res.status().is_success());
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    loads::main()
}
