//! The cancellation of the run and of each step of its plan: a [`Cancel`] is a tokio-util
//! token, whose waiters are woken when it fires, with a flag beside it that virtual users read
//! between and during hits without the token's lock (`CancellationToken::is_cancelled` locks a
//! mutex: two of those per request were about 70 instructions of the request path). The run's
//! cancel is the root; each step's is a child ([`Cancel::child`]), cancelled with the run's.
//! Cancellations enter through [`Cancel::cancel`] (Ctrl-C, the run's end, a step's end or its
//! grace period) and leave as [`Cancel::is_cancelled`] and the futures of [`Cancel::cancelled`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::{
    CancellationToken, WaitForCancellationFuture, WaitForCancellationFutureOwned,
};

/// The run's or a step's cancellation.
#[derive(Clone)]
pub(super) struct Cancel {
    token: CancellationToken,
    /// Set (before the token fires) when this one is cancelled.
    own: Arc<AtomicBool>,
    /// The run's flag (the root's own, shared by its children).
    run: Arc<AtomicBool>,
}

impl Cancel {
    /// The run's cancellation (the root).
    pub(super) fn new() -> Self {
        let own = Arc::new(AtomicBool::new(false));
        Cancel {
            token: CancellationToken::new(),
            run: own.clone(),
            own,
        }
    }

    /// A step's cancellation: cancelled by its own [`cancel`](Self::cancel) or the run's.
    /// Children of children are not made (a step is a child of the run).
    pub(super) fn child(&self) -> Self {
        debug_assert!(
            Arc::ptr_eq(&self.own, &self.run),
            "a step's cancel has no children"
        );
        Cancel {
            token: self.token.child_token(),
            own: Arc::new(AtomicBool::new(false)),
            run: self.run.clone(),
        }
    }

    /// Cancels this one and its children: the flag first, so that a task its token wakes
    /// sees it.
    pub(super) fn cancel(&self) {
        self.own.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// Whether this one or the run was cancelled: two atomic loads, no lock.
    pub(super) fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::Acquire) || self.run.load(Ordering::Acquire)
    }

    /// Fires when this one or the run is cancelled.
    pub(super) fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// [`cancelled`](Self::cancelled), owning a clone of the token.
    pub(super) fn cancelled_owned(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_cancelled_by_its_own_cancel_or_the_runs_and_the_run_by_its_own_only() {
        let run = Cancel::new();
        let a = run.child();
        let b = run.child();
        assert!(!run.is_cancelled() && !a.is_cancelled() && !b.is_cancelled());
        a.cancel();
        assert!(a.is_cancelled() && a.token.is_cancelled());
        assert!(!run.is_cancelled() && !b.is_cancelled() && !b.token.is_cancelled());
        run.cancel();
        assert!(run.is_cancelled() && b.is_cancelled() && b.token.is_cancelled());
        let late = run.child();
        assert!(late.is_cancelled() && late.token.is_cancelled());
    }

    #[tokio::test]
    async fn the_futures_fire_on_cancel() {
        let run = Cancel::new();
        let step = run.child();
        let owned = step.cancelled_owned();
        let waiter = tokio::spawn(owned);
        run.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the step's future fires when the run is cancelled")
            .expect("the waiter does not panic");
        tokio::time::timeout(std::time::Duration::from_secs(5), step.cancelled())
            .await
            .expect("a cancelled step's future is ready");
    }
}
