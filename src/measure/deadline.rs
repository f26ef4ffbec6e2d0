//! The timer that bounds a virtual user's requests and WebSocket receives: one tokio timer per
//! HTTP client or WebSocket, registered with the runtime once and moved only when it fires or
//! when a wait needs an earlier deadline. A timer per wait (`tokio::time::timeout`) was an
//! insertion into and a removal from the runtime's timer wheel per request or per message
//! (about 1 300 instructions of a WebSocket message's path). The timer is armed at or before
//! the deadline of the wait in progress; when it fires before that deadline (it was armed for
//! an earlier wait), it is moved to it.
//!
//! The timer is polled only when it must be: to register the waker of the task that waits
//! (the first time, after a reset, or from another task), or when it has fired. Polled on
//! every wake-up of the wait instead, it re-registered the same waker each time.
//!
//! Deadlines enter through [`Timer::reuse`] (the timer a client or socket kept, or a new one);
//! [`Timer::within`] runs a wait's future until it ends or its deadline passes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

/// A wait's deadline on this runtime's timer, kept between waits.
pub(super) struct Timer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The thread (so the runtime: workers are single-threaded) whose time driver it is on.
    thread: usize,
    /// The waker the timer was last polled with, while it is armed for the same deadline.
    waker: Option<Waker>,
}

thread_local! {
    static THREAD_MARK: u8 = const { 0 };
}

/// An address that tells the current thread apart from the other live ones.
#[inline]
fn thread_mark() -> usize {
    THREAD_MARK.with(|m| std::ptr::from_ref(m) as usize)
}

/// `start + timeout`; a timeout beyond what the clock can express waits a year.
#[inline]
pub(super) fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    start
        .checked_add(timeout)
        .or_else(|| start.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(start)
}

impl Timer {
    /// A timer on this thread's runtime, armed at `deadline`.
    fn new(deadline: Instant) -> Self {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            thread: thread_mark(),
            waker: None,
        }
    }

    /// `kept` armed at or before `deadline` if it is on this thread's runtime, else a new one.
    #[inline]
    pub(super) fn reuse(kept: Option<Timer>, deadline: Instant) -> Self {
        match kept {
            Some(mut t) if t.thread == thread_mark() => {
                t.arm(deadline);
                t
            }
            // None (the first wait, or another wait has it), or another runtime's.
            _ => Timer::new(deadline),
        }
    }

    /// Arms the timer at or before `deadline` (moved only if it is later).
    #[inline]
    fn arm(&mut self, deadline: Instant) {
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
            self.waker = None;
        }
    }

    /// Runs `fut` until it ends (`Some`) or `deadline` passes (`None`). The future is polled
    /// first, the timer only while the future is pending. It is borrowed pinned, not moved:
    /// the caller's future holds it in place (moved into this one instead, an HTTP exchange's
    /// future cost about 200 instructions a request in copies).
    #[inline]
    pub(super) fn within<'a, F: Future>(
        &'a mut self,
        deadline: Instant,
        mut fut: Pin<&'a mut F>,
    ) -> impl Future<Output = Option<F::Output>> + 'a {
        // A poll_fn, not an async fn: no state machine of its own around the two polls.
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if self.poll_expired(deadline, cx) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
    }

    /// Whether `deadline` has passed, polled when the wait's own future is pending: registers
    /// the task's waker when it must, and moves the timer to `deadline` when it fired for an
    /// earlier one.
    #[inline]
    fn poll_expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        loop {
            let registered = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
            if registered && !self.sleep.is_elapsed() {
                return false;
            }
            // With the task's budget spent, the poll returns Pending without registering.
            let budget = tokio::task::coop::has_budget_remaining();
            if self.sleep.as_mut().poll(cx).is_pending() {
                self.waker = budget.then(|| cx.waker().clone());
                return false;
            }
            if self.sleep.deadline() >= deadline {
                return true;
            }
            // Armed for an earlier wait: move it to this one's deadline.
            self.sleep.as_mut().reset(deadline);
            self.waker = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits for `deadline` on `timer`, with a wait that never ends of its own.
    async fn expired(timer: &mut Timer, deadline: Instant) {
        let never = std::pin::pin!(std::future::pending::<()>());
        assert!(timer.within(deadline, never).await.is_none());
    }

    #[tokio::test]
    async fn a_timer_kept_from_an_earlier_wait_fires_at_the_later_deadline_not_before() {
        let t0 = Instant::now();
        let earlier = deadline_after(t0, Duration::from_millis(50));
        let later = deadline_after(t0, Duration::from_millis(200));
        // The timer is still armed for the earlier wait's deadline.
        let mut timer = Timer::reuse(Some(Timer::new(earlier)), later);
        expired(&mut timer, later).await;
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(200),
            "fired early: {waited:?}"
        );
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // Kept for a third wait, it fires at that one's deadline.
        let third = deadline_after(Instant::now(), Duration::from_millis(50));
        let start = Instant::now();
        let mut timer = Timer::reuse(Some(timer), third);
        expired(&mut timer, third).await;
        assert!(
            start.elapsed() >= Duration::from_millis(40),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn an_earlier_deadline_moves_the_timer_back() {
        let t0 = Instant::now();
        let late = deadline_after(t0, Duration::from_secs(60));
        let early = deadline_after(t0, Duration::from_millis(50));
        let mut timer = Timer::reuse(Some(Timer::new(late)), early);
        expired(&mut timer, early).await;
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(
            waited < Duration::from_secs(5),
            "it waited for the later deadline: {waited:?}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_that_starts_with_the_tasks_budget_spent_still_expires() {
        // A task that has used its whole coop budget (128 ready I/O operations without
        // yielding, e.g. 128 WebSocket sends): the timer's first poll returns Pending without
        // registering it, and must not be taken for registered.
        tokio::task::yield_now().await;
        for _ in 0..128 {
            tokio::task::consume_budget().await;
        }
        let t0 = Instant::now();
        let deadline = deadline_after(t0, Duration::from_millis(50));
        let mut timer = Timer::reuse(None, deadline);
        let r = tokio::time::timeout(Duration::from_secs(5), expired(&mut timer, deadline)).await;
        assert!(r.is_ok(), "the timer never fired");
        assert!(
            t0.elapsed() >= Duration::from_millis(50),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn a_huge_timeout_waits_a_year() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let t0 = Instant::now();
            let d = deadline_after(t0, Duration::MAX);
            assert!(d > t0 && d - t0 <= Duration::from_secs(365 * 86_400));
        });
    }
}
