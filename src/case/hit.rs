//! Running one hit: [`run_hit`] calls a test (with its suite's set-up and tear-down) on a user's
//! state, and [`run_hook`] a user's `on_start` or `on_stop`; both turn panics into failures, quietly (the panic hook of [`install_panic_hook`] keeps
//! panics inside tests off stderr and remembers where they happened).

use futures_util::FutureExt as _;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use super::context::TestCase;
use super::outcome::{Outcome, TestError};
use super::registry::UserState;
use super::slot::FutureSlot;
use crate::result::ExcInfo;

thread_local! {
    static IN_HIT: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps panics inside tests quiet and remembers where they
/// happened; panics elsewhere go to the previous hook.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HIT.with(Cell::get) {
                let mut where_ = info
                    .location()
                    .map(|l| format!("at {}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let bt = std::backtrace::Backtrace::capture();
                if bt.status() == std::backtrace::BacktraceStatus::Captured {
                    where_.push_str(&format!("\n{bt}"));
                }
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(where_));
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks the thread as running test code for the duration of each poll.
struct InHit<F>(F);

impl<F: Future<Output = Outcome> + Unpin> Future for InHit<F> {
    type Output = Outcome;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_HIT.with(|f| f.set(self.0));
            }
        }
        let _reset = Reset(IN_HIT.with(|f| f.replace(true)));
        Pin::new(&mut self.0).poll(cx)
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

async fn guarded(fut: impl Future<Output = Outcome> + Unpin) -> Outcome {
    match AssertUnwindSafe(InHit(fut)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let traceback = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_default();
            Err(TestError::Failure(ExcInfo(
                message,
                "panic".into(),
                traceback,
            )))
        }
    }
}

/// Runs one hit: set-up, the test, tear-down. Panics become failures. A failing set-up skips
/// the test; the tear-down runs whenever the set-up succeeded, and its error is reported only
/// when the test itself succeeded. Each of the three futures is placed in `slot` in turn.
pub async fn run_hit(
    user: &mut dyn UserState,
    index: usize,
    t: &mut TestCase,
    slot: &mut FutureSlot,
) -> Outcome {
    install_panic_hook();
    if let Some(setup) = user.setup(t, slot) {
        guarded(setup).await?;
    }
    let outcome = guarded(user.run_test(index, t, slot)).await;
    let teardown = match user.teardown(t, slot) {
        Some(f) => guarded(f).await,
        None => Ok(()),
    };
    outcome.and(teardown)
}

/// A virtual user's lifecycle hook: `on_start` when it starts, `on_stop` when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Once, before the user's first hit.
    Start,
    /// Once, when a user whose `on_start` succeeded ends.
    Stop,
}

impl Hook {
    /// The hook's method name: `on_start` or `on_stop`.
    pub fn method(self) -> &'static str {
        match self {
            Hook::Start => "on_start",
            Hook::Stop => "on_stop",
        }
    }
}

/// Runs the user's `hook`, if its suite has one (`None` when it has not). Panics become
/// failures, as in a hit. Its future is placed in `slot`.
pub async fn run_hook(
    user: &mut dyn UserState,
    hook: Hook,
    t: &mut TestCase,
    slot: &mut FutureSlot,
) -> Option<Outcome> {
    install_panic_hook();
    let fut = match hook {
        Hook::Start => user.on_start(t, slot),
        Hook::Stop => user.on_stop(t, slot),
    }?;
    Some(guarded(fut).await)
}
