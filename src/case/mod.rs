//! Writing tests: the test context ([`TestCase`]), outcomes ([`Outcome`], [`TestError`]), the
//! assertion macros, the [`Suite`] trait that `#[loads::suite]` implements, and the registry of
//! suites linked into the binary.
//!
//! A test is an `async fn(&mut self, t: &mut TestCase) -> Outcome` on a suite's per-user state.
//! Its outcome is a success, a **failure** (an assertion macro of this crate, or a panic such as
//! `assert_eq!`) or an **error** (anything returned with `?`). The runner calls
//! [`run_hit`] for every hit; panics are caught there and never take the run down.
//!
//! Files: `outcome` (outcomes and assertion macros), `context` ([`TestCase`]), `registry`
//! (suites, tests by name), `hit` (running one hit), `slot` (the block a user's test futures
//! live in, one at a time).

mod context;
mod hit;
mod mix;
mod outcome;
mod registry;
mod slot;

pub use context::TestCase;
pub(crate) use hit::panic_message;
pub use hit::{Hook, run_hit, run_hook};
pub use mix::{Mix, MixError, NamedMix, draw};
pub use outcome::{Outcome, TestError};
pub use registry::{
    Suite, SuiteEntry, TestInfo, TestRef, UnknownTest, UserState, all_tests, suites,
};
pub use slot::{FutureSlot, Placed};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunArgs;
    use crate::result::UserRecorder;
    use crate::{ensure, ensure_eq, fail};
    use registry::{find_in, new_user_boxed};
    use std::sync::Arc;

    #[derive(Default)]
    struct Demo {
        setups: u32,
        teardowns: u32,
    }

    fn assert_eq_panics() -> Outcome {
        let two = 1 + 1;
        assert_eq!(two, 3, "arithmetic");
        Ok(())
    }

    fn io_error() -> Outcome {
        let e = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        Err(e)?;
        Ok(())
    }

    fn ensure_fails() -> Outcome {
        let status = 500;
        ensure_eq!(status, 200);
        Ok(())
    }

    fn ensure_with_message() -> Outcome {
        let n = 1;
        ensure!(n > 2, "only {n} items");
        Ok(())
    }

    fn fail_now() -> Outcome {
        fail!("nope {}", 7);
    }

    impl Suite for Demo {
        const NAME: &'static str = "demo";
        const DOC: &'static str = "";
        const TESTS: &'static [TestInfo] = &[];
        fn new_user() -> Self {
            Demo::default()
        }
        fn run_test<'a>(
            &'a mut self,
            index: usize,
            _t: &'a mut TestCase,
            slot: &'a mut FutureSlot,
        ) -> Placed<'a, Outcome> {
            slot.place(async move {
                match index {
                    0 => Ok(()),
                    1 => ensure_fails(),
                    2 => assert_eq_panics(),
                    3 => io_error(),
                    4 => ensure_with_message(),
                    5 => fail_now(),
                    _ => panic!("boxed {}", "panic"),
                }
            })
        }
        fn setup<'a>(
            &'a mut self,
            _t: &'a mut TestCase,
            slot: &'a mut FutureSlot,
        ) -> Option<Placed<'a, Outcome>> {
            self.setups += 1;
            Some(slot.place(async { Ok(()) }))
        }
        fn teardown<'a>(
            &'a mut self,
            _t: &'a mut TestCase,
            _slot: &'a mut FutureSlot,
        ) -> Option<Placed<'a, Outcome>> {
            self.teardowns += 1;
            None
        }
    }

    fn outcome_of(index: usize) -> (Outcome, Demo) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let rec = UserRecorder::new(Arc::new(crate::result::Recorder::new(1)), 0);
        let mut t =
            TestCase::new("demo::x".into(), Arc::new(RunArgs::default()), rec).expect("case");
        let mut user = Demo::default();
        let out = rt.block_on(run_hit(&mut user, index, &mut t, &mut FutureSlot::new()));
        (out, user)
    }

    #[test]
    fn outcomes_map_to_success_failure_and_error() {
        let (ok, user) = outcome_of(0);
        assert_eq!(ok, Ok(()));
        assert_eq!((user.setups, user.teardowns), (1, 1));

        let Err(TestError::Failure(e)) = outcome_of(1).0 else {
            panic!("ensure_eq must fail")
        };
        assert_eq!(e.kind(), "ensure_eq");
        assert!(e.message().contains("left: 500"), "{}", e.message());
        assert!(
            e.traceback().starts_with("at src/case/mod.rs:"),
            "{}",
            e.traceback()
        );

        let Err(TestError::Failure(e)) = outcome_of(2).0 else {
            panic!("assert_eq! must fail")
        };
        assert_eq!(e.kind(), "panic");
        assert!(e.message().contains("arithmetic"), "{}", e.message());
        assert!(
            e.traceback().contains("at src/case/mod.rs:"),
            "{}",
            e.traceback()
        );

        let Err(TestError::Error(e)) = outcome_of(3).0 else {
            panic!("io error must be an error")
        };
        assert_eq!(e.kind(), "Error");
        assert_eq!(e.message(), "refused");
        // The message holds the source chain; it is not repeated as a traceback.
        assert_eq!(e.traceback(), "");

        let Err(TestError::Failure(e)) = outcome_of(4).0 else {
            panic!("ensure! must fail")
        };
        assert_eq!(e.message(), "only 1 items");

        let Err(TestError::Failure(e)) = outcome_of(5).0 else {
            panic!("fail! must fail")
        };
        assert_eq!(e.message(), "nope 7");

        let Err(TestError::Failure(e)) = outcome_of(6).0 else {
            panic!("panic must fail")
        };
        assert_eq!(e.message(), "boxed panic");
    }

    #[test]
    fn websocket_handshake_carries_the_users_cookies() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let rec = UserRecorder::new(Arc::new(crate::result::Recorder::new(1)), 0);
        let args = RunArgs {
            plan: crate::config::PlanArgs {
                server_url: Some(crate::demo::test_server_url()),
                ..Default::default()
            },
            ..RunArgs::default()
        };
        let t = TestCase::new("demo::x".into(), Arc::new(args), rec).expect("case");
        rt.block_on(async {
            let res = t
                .app
                .get("/cookies/set?session=abc")
                .send()
                .await
                .expect("set");
            assert_eq!(res.status(), 200);
            let mut ws = t.ws("/ws/cookies").await.expect("ws");
            let first = ws.recv_text().await.expect("cookies");
            assert_eq!(first, r#"{"session":"abc"}"#);
            ws.close().await.expect("close");
        });
    }

    #[test]
    fn unknown_names_get_suggestions() {
        static A: SuiteEntry = SuiteEntry {
            name: "example",
            doc: "",
            tests: &[
                TestInfo {
                    name: "get_root",
                    doc: "",
                    weight: 1,
                    data: &[],
                },
                TestInfo {
                    name: "health",
                    doc: "",
                    weight: 1,
                    data: &[],
                },
            ],
            new_user: new_user_boxed::<Demo>,
            server_url: None,
        };
        static B: SuiteEntry = SuiteEntry {
            name: "other",
            doc: "",
            tests: &[TestInfo {
                name: "health",
                doc: "",
                weight: 1,
                data: &[],
            }],
            new_user: new_user_boxed::<Demo>,
            server_url: None,
        };
        let tests = [
            TestRef {
                suite: &A,
                index: 0,
            },
            TestRef {
                suite: &A,
                index: 1,
            },
            TestRef {
                suite: &B,
                index: 0,
            },
        ];
        assert_eq!(
            find_in(&tests, "example::health")
                .expect("found")
                .full_name(),
            "example::health"
        );
        assert_eq!(
            find_in(&tests, "get_root").expect("bare").full_name(),
            "example::get_root"
        );
        let amb = find_in(&tests, "health").expect_err("ambiguous");
        assert!(amb.ambiguous);
        let e = find_in(&tests, "example::get_rot").expect_err("unknown");
        assert_eq!(e.suggestions[0], "example::get_root");
        assert!(e.to_string().contains("closest names"), "{e}");
    }
}
