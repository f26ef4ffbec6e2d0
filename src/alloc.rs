//! The global allocator of every binary built on loads (the default `mimalloc` feature):
//! mimalloc, asked in the way that keeps it on its fast path.
//!
//! Nothing enters or leaves but memory. The `mimalloc` crate's own allocator asks for every
//! block with `mi_malloc_aligned(size, align)`, which for a block above 1 KiB (a virtual user's
//! hit future is one, allocated and freed on every hit) leaves for mimalloc's generic aligned
//! path and over-allocates, even when the alignment asked is one that every mimalloc block has
//! anyway. This allocator asks plain `mi_malloc` for those alignments and mimalloc's aligned
//! calls for the others. Measured: about 75 user-space instructions less per request
//! (`bench/run.sh instructions`). Build loads with `default-features = false` to keep your own
//! allocator.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc, with plain calls where the alignment asked is one it always gives.
pub struct Allocator;

/// The alignment of every mimalloc block of at least this many bytes (`MI_MAX_ALIGN_SIZE`);
/// smaller blocks are aligned to the machine word.
const ALWAYS_ALIGNED: usize = 16;

/// Whether a plain mimalloc block is aligned enough for `layout`.
fn plain(layout: &Layout) -> bool {
    layout.align() <= std::mem::size_of::<usize>()
        || (layout.align() <= ALWAYS_ALIGNED && layout.size() >= ALWAYS_ALIGNED)
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes blocks of both
// kinds of call); a plain block is used only for layouts whose alignment it is known to have.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(&layout) {
            // SAFETY: mimalloc's C API; the size is the layout's.
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: as above, with the layout's alignment (a power of two).
            unsafe { libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(&layout) {
            // SAFETY: as in `alloc`.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: as in `alloc`.
            unsafe { libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { libmimalloc_sys::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The block keeps the layout's alignment at its new size.
        let grown = Layout::from_size_align(new_size, layout.align());
        if grown.as_ref().is_ok_and(plain) && plain(&layout) {
            // SAFETY: `ptr` came from mimalloc; the new block is aligned as the old one.
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: as above, with the layout's alignment.
            unsafe {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked() {
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1usize, 3, 8, 15, 16, 24, 100, 1025, 5000, 70_000] {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // SAFETY: a non-zero size; the block is written within its size, then freed.
                unsafe {
                    let p = Allocator.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xAB, size);
                    let q = Allocator.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    assert_eq!(*q, 0xAB);
                    Allocator.dealloc(q, Layout::from_size_align(size * 3, align).expect("layout"));
                    let z = Allocator.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    Allocator.dealloc(z, layout);
                }
            }
        }
    }
}
