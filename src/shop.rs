//! The bundled `shop` suite: virtual users that log in once (`on_start`), then browse, search
//! and check out by weight (70/25/5: `loads run shop`), and log out when they end (`on_stop`),
//! against the embedded demo server. It is the example of the README's "Scenarios and test
//! data" section and what the lifecycle and scenario tests run.

use loads::prelude::*;

/// Per-virtual-user state of the shop suite.
#[derive(Default)]
pub struct Shop {
    /// Set by `on_start`, once per user.
    logged_in: bool,
    /// Orders this user placed.
    orders: u64,
}

/// A shop: log in once per user, browse 70 %, search 25 %, check out 5 %, log out at the end
#[loads::suite(name = "shop", server = loads::demo::test_server_url)]
impl Shop {
    /// Once per virtual user, before its first hit: log in (basic auth) and keep a session
    /// cookie.
    async fn on_start(&mut self, t: &mut TestCase) -> Outcome {
        let res = t
            .app
            .get("/basic-auth/shopper/s3cret")
            .basic_auth("shopper", Some("s3cret"))
            .send()
            .await?;
        ensure_eq!(res.status(), 200, "login refused");
        let session = format!("user-{}", t.status().current_user);
        t.app
            .get(&format!("/cookies/set?session={session}"))
            .name("/cookies/set")
            .send()
            .await?;
        self.logged_in = true;
        t.incr_counter("logins");
        Ok(())
    }

    /// Once per virtual user that logged in, when it ends: log out (drop the session cookie).
    async fn on_stop(&mut self, t: &mut TestCase) -> Outcome {
        let res = t
            .app
            .get("/cookies/set?session=")
            .name("/cookies/set")
            .send()
            .await?;
        ensure!(
            res.status().is_success(),
            "logout answered {}",
            res.status()
        );
        t.incr_counter("logouts");
        Ok(())
    }

    /// List the items (the most common action)
    #[loads(weight = 70)]
    async fn browse(&mut self, t: &mut TestCase) -> Outcome {
        ensure!(self.logged_in, "not logged in: on_start did not run");
        let items: Vec<serde_json::Value> = t.app.get("/api/items").send().await?.json()?;
        ensure_eq!(items.len(), 20);
        Ok(())
    }

    /// Look one item up
    #[loads(weight = 25)]
    async fn search(&mut self, t: &mut TestCase) -> Outcome {
        ensure!(self.logged_in, "not logged in: on_start did not run");
        let id = t.status().current_hit % 20 + 1;
        let res = t
            .app
            .get(&format!("/api/items/{id}"))
            .name("/api/items/{id}")
            .send()
            .await?;
        ensure_eq!(res.status(), 200);
        Ok(())
    }

    /// Place an order
    #[loads(weight = 5)]
    async fn checkout(&mut self, t: &mut TestCase) -> Outcome {
        ensure!(self.logged_in, "not logged in: on_start did not run");
        let res = t
            .app
            .post("/api/items")
            .json(&json!({"name": "order", "by": t.status().current_user}))
            .send()
            .await?;
        ensure_eq!(res.status(), 201);
        self.orders += 1;
        Ok(())
    }
}
