//! A virtual user's reusable place for the future of the test (or hook) it is running:
//! [`FutureSlot`] and the [`Placed`] future that lives in it.
//!
//! The `#[loads::suite]` macro's `run_test` puts each test's future here instead of in a new
//! box. A box per hit cost one allocation and one free on every hit (about 160 user-space
//! instructions per request with mimalloc, whose one-block-in, one-block-out pattern takes
//! its slow path every time: `bench/run.sh instructions`). The slot keeps one block per user,
//! grown to the largest future the user has run, and writes each new future into it.
//!
//! Futures enter by [`FutureSlot::place`], which moves the future into the block; they leave
//! when the [`Placed`] handle is dropped, which drops the future in place. The block is freed
//! with the slot.
//!
//! Soundness: a [`Placed`] borrows the slot mutably for its whole life, so no other future
//! can be placed while it lives; its future, once polled, is pinned in the block until
//! [`Placed`] drops it. A [`Placed`] that is forgotten (`mem::forget`) never drops its
//! future; the slot sees that (`busy` still set) and gives the block up, leaked, instead of
//! writing over memory that may still be pinned.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// One heap block, reused for each future a virtual user runs, one at a time.
pub struct FutureSlot {
    /// The block (dangling when `layout` has size 0).
    block: NonNull<u8>,
    /// The layout the block was allocated with.
    layout: Layout,
    /// A future lives in the block (or its [`Placed`] was forgotten without being dropped).
    busy: bool,
}

// SAFETY: the slot owns its block. When no future lives in it, the block is plain memory;
// when one does, it is a `Send` future (`place` asks for it) that only the `Placed` handle,
// which borrows the slot mutably, can reach.
unsafe impl Send for FutureSlot {}
// SAFETY: a shared reference to the slot gives access to nothing.
unsafe impl Sync for FutureSlot {}

impl Default for FutureSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FutureSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FutureSlot")
            .field("bytes", &self.layout.size())
            .field("busy", &self.busy)
            .finish()
    }
}

impl FutureSlot {
    /// An empty slot (it allocates on the first [`place`](Self::place)).
    pub const fn new() -> Self {
        FutureSlot {
            block: NonNull::dangling(),
            layout: Layout::new::<()>(),
            busy: false,
        }
    }

    /// The size of the block the slot holds, in bytes (0 before the first future).
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// Moves `future` into the slot's block (growing it first if the future does not fit)
    /// and returns the handle that polls it and drops it.
    pub fn place<'a, F>(&'a mut self, future: F) -> Placed<'a, F::Output>
    where
        F: Future + Send + 'a,
    {
        let need = Layout::new::<F>();
        if self.busy {
            // The last future's handle was forgotten: its memory may still be pinned, so it
            // is left as it is (leaked) and a new block is taken.
            self.block = NonNull::dangling();
            self.layout = Layout::new::<()>();
            self.busy = false;
        }
        let at = if need.size() == 0 {
            // A zero-sized future needs no memory, only an aligned address.
            NonNull::<F>::dangling()
        } else {
            if need.size() > self.layout.size() || need.align() > self.layout.align() {
                self.grow(need);
            }
            self.block.cast::<F>()
        };
        // SAFETY: `at` is valid for writes of an `F` and aligned for it (the block is at
        // least `need` in size and alignment, or `F` is zero-sized and `at` aligned), and
        // holds no value (`busy` was false, or its old block was given up above).
        unsafe { at.as_ptr().write(future) };
        self.busy = true;
        let future: NonNull<dyn Future<Output = F::Output> + Send + 'a> = at;
        Placed {
            future,
            busy: &mut self.busy,
        }
    }

    /// Replaces the block with one that fits `need` (not zero-sized) as well as everything
    /// placed before.
    fn grow(&mut self, need: Layout) {
        self.release();
        let layout = Layout::from_size_align(
            need.size().max(self.layout.size()),
            need.align().max(self.layout.align()),
        )
        .unwrap_or_else(|_| handle_alloc_error(need));
        // SAFETY: `layout` is not zero-sized (`need` is not).
        let block = unsafe { alloc(layout) };
        self.block = NonNull::new(block).unwrap_or_else(|| handle_alloc_error(layout));
        self.layout = layout;
    }

    /// Frees the block, if the slot holds one and no future lives in it.
    fn release(&mut self) {
        if self.layout.size() > 0 && !self.busy {
            // SAFETY: the block was allocated with `self.layout` and holds no value.
            unsafe { dealloc(self.block.as_ptr(), self.layout) };
        }
        self.block = NonNull::dangling();
    }
}

impl Drop for FutureSlot {
    fn drop(&mut self) {
        // A block still busy (a forgotten `Placed`) is leaked, never freed under a future.
        self.release();
    }
}

/// A future living in a [`FutureSlot`]: polling it polls the future in place; dropping it
/// drops the future and leaves the block to the slot for the next one.
pub struct Placed<'a, T> {
    future: NonNull<dyn Future<Output = T> + Send + 'a>,
    busy: &'a mut bool,
}

// SAFETY: the future behind the pointer is `Send` (`place` asks for it) and only this handle
// reaches it.
unsafe impl<T> Send for Placed<'_, T> {}

impl<T> Future for Placed<'_, T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // SAFETY: the future is valid until this handle drops it, is reached only through
        // this handle, and never moves (it stays in the slot's block, which the slot neither
        // frees nor reuses while this handle borrows it).
        unsafe { Pin::new_unchecked(self.future.as_mut()) }.poll(cx)
    }
}

impl<T> Drop for Placed<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the future is valid and dropped once, here; nothing reaches it afterwards.
        unsafe { self.future.as_ptr().drop_in_place() };
        *self.busy = false;
    }
}

impl<T> std::fmt::Debug for Placed<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Placed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn futures_run_in_one_block_that_grows_to_the_largest() {
        let mut slot = FutureSlot::new();
        assert_eq!(slot.capacity(), 0);
        let small = [1u8; 16];
        assert_eq!(
            block_on(slot.place(async move { small.iter().map(|&b| u32::from(b)).sum::<u32>() })),
            16
        );
        let first = slot.capacity();
        assert!(first >= 16);
        let block = slot.block;
        let big = [2u8; 4096];
        let sum = block_on(slot.place(async move {
            tokio::task::yield_now().await;
            big.iter().map(|&b| u32::from(b)).sum::<u32>()
        }));
        assert_eq!(sum, 8192);
        assert!(slot.capacity() >= 4096);
        let grown = slot.block;
        // A smaller future again: the same (grown) block.
        assert_eq!(block_on(slot.place(async { 7 })), 7);
        assert_eq!(slot.block, grown);
        assert_ne!(first, slot.capacity(), "{block:?}");
    }

    #[test]
    fn a_future_dropped_unfinished_is_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut slot = FutureSlot::new();
        let c = Counted(drops.clone());
        let placed = slot.place(async move {
            let _c = c;
            std::future::pending::<()>().await;
        });
        drop(placed);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // The slot is free again.
        assert_eq!(block_on(slot.place(async { 1 })), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_forgotten_future_keeps_its_memory() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut slot = FutureSlot::new();
        let c = Counted(drops.clone());
        let mut placed = slot.place(async move {
            let _c = c;
            std::future::pending::<()>().await;
        });
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut placed).poll(&mut cx).is_pending());
        let pinned = slot_block_of(&placed);
        std::mem::forget(placed);
        // The next future gets another block; the forgotten one is neither freed nor
        // reused, and its future is never dropped.
        assert_eq!(block_on(slot.place(async { 2 })), 2);
        assert_ne!(slot.block.as_ptr().cast_const(), pinned);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
    }

    fn slot_block_of<T>(p: &Placed<'_, T>) -> *const u8 {
        p.future.as_ptr().cast::<u8>().cast_const()
    }

    #[test]
    fn zero_sized_and_aligned_futures() {
        #[repr(align(64))]
        struct Aligned([u8; 64]);
        let mut slot = FutureSlot::new();
        assert_eq!(block_on(slot.place(std::future::ready(3))), 3);
        let a = Aligned([5; 64]);
        let got = block_on(slot.place(async move {
            let r = &a;
            tokio::task::yield_now().await;
            (std::ptr::from_ref(r) as usize % 64, r.0[63])
        }));
        assert_eq!(got, (0, 5));
        // A panic inside a placed future leaves the slot usable.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            block_on(slot.place(async { panic!("inside") }))
        }));
        assert!(caught.is_err());
        assert_eq!(block_on(slot.place(async { 4 })), 4);
    }
}
