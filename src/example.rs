//! The bundled example suite, `example`: tests that exercise the embedded demo server. They are
//! what `loads demo` runs, what the benchmarks use (`example::get_root`), and, under
//! `cargo test`, functional tests against a demo server started for the purpose.

use loads::prelude::*;

/// Messages echoed per hit of `websocket_echo_loop` (the reference client `bench/ws-echo` sends
/// as many per socket).
const ECHOES_PER_HIT: usize = 100;

/// The text `websocket_echo_loop` sends (23 bytes, one frame; the same as `bench/ws-echo`'s).
const ECHO_TEXT: &str = "loads websocket echo 23";

/// Per-virtual-user state of the example suite.
#[derive(Default)]
pub struct Example {
    /// Items this user created in the volume test.
    created: u64,
    /// The WebSocket this user keeps open across hits in `websocket_hold`.
    held: Option<loads::measure::WebSocket>,
}

/// The bundled examples, written for the embedded demo server (`loads demo-server`)
#[loads::suite(
    name = "example",
    server = loads::demo::test_server_url,
    data = "accounts=examples/data/accounts.csv"
)]
impl Example {
    /// GET the server URL's root and expect a 2xx (minimal: the benchmark test)
    async fn get_root(&mut self, t: &mut TestCase) -> Outcome {
        let res = t.app.get("/").send().await?;
        ensure!(res.status().is_success(), "GET / answered {}", res.status());
        Ok(())
    }

    /// GET /health and check that the JSON says {"status": "ok"}
    async fn health(&mut self, t: &mut TestCase) -> Outcome {
        let res = t.app.get("/health").send().await?;
        ensure_eq!(res.status(), 200);
        let body: serde_json::Value = res.json()?;
        ensure_eq!(body["status"], "ok");
        Ok(())
    }

    /// GET /delay/1000: a response that takes one second (for tests with many waiting users)
    async fn slow_1s(&mut self, t: &mut TestCase) -> Outcome {
        let res = t.app.get("/delay/1000").send().await?;
        ensure_eq!(res.status(), 200);
        Ok(())
    }

    /// A heavier hit: list items, read five, create one, download 64 KiB
    async fn volume(&mut self, t: &mut TestCase) -> Outcome {
        let items: Vec<serde_json::Value> = t.app.get("/api/items").send().await?.json()?;
        ensure_eq!(items.len(), 20);
        for id in 1..=5 {
            let res = t
                .app
                .get(&format!("/api/items/{id}"))
                .name("/api/items/{id}")
                .send()
                .await?;
            ensure_eq!(res.status(), 200);
        }
        let res = t
            .app
            .post("/api/items")
            .json(&json!({"name": "new", "by": t.status().current_user}))
            .send()
            .await?;
        ensure_eq!(res.status(), 201);
        self.created += 1;
        t.incr_counter("items-created");
        let blob = t.app.get("/bytes/65536").send().await?;
        ensure_eq!(blob.bytes().len(), 65536);
        Ok(())
    }

    #[loads(expected = "failure")]
    /// Always fails: expects 200 from /status/503 (shows how failures are reported)
    async fn failing(&mut self, t: &mut TestCase) -> Outcome {
        let res = t.app.get("/status/503").send().await?;
        ensure_eq!(res.status(), 200, "the service is unavailable");
        Ok(())
    }

    #[loads(expected = "error")]
    /// Always errors: parses the HTML root page as JSON (shows how errors are reported)
    async fn erroring(&mut self, t: &mut TestCase) -> Outcome {
        let res = t.app.get("/").send().await?;
        let _: serde_json::Value = res.json()?;
        Ok(())
    }

    /// Open a WebSocket on /ws, send three messages and check their echoes
    async fn websocket_echo(&mut self, t: &mut TestCase) -> Outcome {
        let mut ws = t.ws("/ws").await?;
        for i in 0..3 {
            let text = format!("hello {i} from user {}", t.status().current_user);
            ws.send(text.clone()).await?;
            ensure_eq!(ws.recv_text().await?, text);
        }
        ws.close().await?;
        Ok(())
    }

    /// Open a WebSocket on /ws and echo one small text message 100 times, checking each echo (the
    /// WebSocket benchmark: `bench/run.sh wsecho`, against `bench/ws-echo`)
    async fn websocket_echo_loop(&mut self, t: &mut TestCase) -> Outcome {
        let mut ws = t.ws("/ws").await?;
        for _ in 0..ECHOES_PER_HIT {
            ws.send(ECHO_TEXT).await?;
            ensure_eq!(ws.recv_text().await?, ECHO_TEXT);
        }
        ws.close().await?;
        Ok(())
    }

    /// Keep one WebSocket per user open across hits: echo one small message, then wait a second
    async fn websocket_hold(&mut self, t: &mut TestCase) -> Outcome {
        if self.held.is_none() {
            self.held = Some(t.ws("/ws").await?);
        }
        if let Some(ws) = self.held.as_mut() {
            ws.send("ping").await?;
            ensure_eq!(ws.recv_text().await?, "ping");
        }
        t.sleep(std::time::Duration::from_secs(1)).await;
        Ok(())
    }

    /// GET /delay/20: a response that takes 20 ms (for arrival-rate runs)
    async fn delay_20ms(&mut self, t: &mut TestCase) -> Outcome {
        let res = t.app.get("/delay/20").send().await?;
        ensure_eq!(res.status(), 200);
        Ok(())
    }

    /// Count 10 custom counters and make no request: measures the event pipeline itself (the
    /// broker's ingest with --raw-events)
    async fn counters(&mut self, t: &mut TestCase) -> Outcome {
        for _ in 0..10 {
            t.incr_counter("ticks");
        }
        // No I/O here: let the other users of this thread run.
        tokio::task::yield_now().await;
        Ok(())
    }

    /// Log in with an account of the `accounts` data (--data accounts=FILE: columns user,
    /// password) and count each account used
    async fn login_from_data(&mut self, t: &mut TestCase) -> Outcome {
        let row = t.data("accounts")?;
        let (user, password) = (&row["user"], &row["password"]);
        let res = t
            .app
            .get(&format!("/basic-auth/{user}/{password}"))
            .name("/basic-auth/{user}/{password}")
            .basic_auth(user, Some(password))
            .send()
            .await?;
        ensure_eq!(res.status(), 200, "account {user} was refused");
        t.incr_counter(&format!("account {user}"));
        Ok(())
    }

    /// Set a cookie and see it sent back, then log in with basic auth
    async fn cookies_and_auth(&mut self, t: &mut TestCase) -> Outcome {
        let user = format!("u{}", t.status().current_user);
        let res = t
            .app
            .get(&format!("/cookies/set?user={user}"))
            .send()
            .await?;
        let body: serde_json::Value = res.json()?;
        ensure_eq!(
            body["cookies"]["user"],
            user.as_str(),
            "the cookie jar did not send the cookie back"
        );
        let denied = t.app.get("/basic-auth/alice/secret").send().await?;
        ensure_eq!(denied.status(), 401);
        let res = t
            .app
            .get("/basic-auth/alice/secret")
            .basic_auth("alice", Some("secret"))
            .send()
            .await?;
        ensure_eq!(res.status(), 200);
        t.incr_counter("logins");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Example;

    #[test]
    fn failing_and_erroring_are_reported_as_such() {
        let server = Some(loads::demo::test_server_url as fn() -> String);
        let e = loads::__private::try_run_test::<Example>("failing", server).expect_err("fails");
        assert!(e.is_failure(), "{e}");
        assert!(e.exc_info().message().contains("unavailable"), "{e}");
        let e = loads::__private::try_run_test::<Example>("erroring", server).expect_err("errors");
        assert!(!e.is_failure(), "{e}");
        let stats = loads::__private::try_run_test::<Example>("volume", server).expect("volume");
        assert_eq!(stats.requests.count, 8);
        assert_eq!(stats.counters["items-created"], 1);
    }
}
