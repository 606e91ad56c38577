//! The component's allocator (feature `fast-alloc`): talc, with small blocks recycled by
//! size class in front of it.
//!
//! Operators allocate and free a few small blocks per record (a word, its key, a field):
//! in word count, talc's own bookkeeping was 15 % of the CPU. A freed block of up to
//! [`MAX_SMALL`] bytes goes on the free list of its class instead, and the next block of
//! that class comes off it: a push and a pop. Blocks on a list are not returned to talc, so
//! the small blocks an instance holds stay at their peak; the host's memory limit of the
//! instance bounds that as any other use.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Classes are this many bytes apart (and blocks this aligned).
const STEP: usize = 16;
/// Classes of 16, 32, …, 128 bytes.
const CLASSES: usize = 8;
/// The largest block recycled.
const MAX_SMALL: usize = STEP * CLASSES;

/// `inner`, with freed small blocks kept for reuse.
pub(crate) struct Recycling<A> {
    inner: A,
    /// Per class, the first free block; each free block holds the address of the next.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

impl<A> Recycling<A> {
    pub(crate) const fn new(inner: A) -> Self {
        Recycling { inner, free: UnsafeCell::new([ptr::null_mut(); CLASSES]) }
    }
}

// SAFETY: installed only where there are no threads (single-threaded wasm, see lib.rs), so
// no two calls ever touch the free lists at once.
unsafe impl<A: Sync> Sync for Recycling<A> {}

/// The class of a block of `layout`, if it is small enough to recycle.
#[inline(always)]
fn class(layout: Layout) -> Option<usize> {
    (layout.size() != 0 && layout.size() <= MAX_SMALL && layout.align() <= STEP).then(|| (layout.size() - 1) / STEP)
}

/// What a block of class `c` is allocated as.
#[inline(always)]
fn class_layout(c: usize) -> Layout {
    Layout::from_size_align((c + 1) * STEP, STEP).expect("a valid class")
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for Recycling<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            // SAFETY: the caller's layout, passed on.
            return unsafe { self.inner.alloc(layout) };
        };
        // SAFETY: no other call runs at the same time (see `Sync`); a listed block is a
        // freed block of class `c`, at least STEP bytes and pointer-aligned, whose first
        // bytes hold the next one.
        unsafe {
            let free = &mut *self.free.get();
            let head = free[c];
            if head.is_null() {
                return self.inner.alloc(class_layout(c));
            }
            free[c] = head.cast::<*mut u8>().read();
            head
        }
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            // SAFETY: allocated by `inner` with this layout (`alloc` sends it there).
            return unsafe { self.inner.dealloc(block, layout) };
        };
        // SAFETY: `block` is a block of class `c` (`alloc` gave it for a layout of this
        // class), no longer in use, and large enough and aligned for an address.
        unsafe {
            let free = &mut *self.free.get();
            block.cast::<*mut u8>().write(free[c]);
            free[c] = block;
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid layout for `new_size` with the old alignment.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            // Same class: the block already has room.
            (Some(a), Some(b)) if a == b => block,
            // SAFETY: a block of `inner` on both sides.
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: a fresh block of the new layout; the old one is valid for its size.
                unsafe {
                    let moved = self.alloc(new);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn small_blocks_come_back_by_class_and_keep_their_bytes_across_realloc() {
        let a = Recycling::new(System);
        unsafe {
            let l = Layout::from_size_align(20, 1).unwrap();
            let p = a.alloc(l);
            a.dealloc(p, l);
            // Another size of the same class (17 to 32 bytes) gets the same block back.
            let l2 = Layout::from_size_align(32, 8).unwrap();
            assert_eq!(a.alloc(l2), p);
            // Growing within the class keeps the block; past it, moves it with its bytes.
            p.copy_from(b"0123456789abcdef0123456789abcdef".as_ptr(), 32);
            assert_eq!(a.realloc(p, l2, 30), p);
            let q = a.realloc(p, l2, 200);
            assert_ne!(q, p);
            assert_eq!(std::slice::from_raw_parts(q, 32), b"0123456789abcdef0123456789abcdef");
            // The freed block went back to its class; large blocks are the inner allocator's.
            assert_eq!(a.alloc(l), p);
            let big = Layout::from_size_align(200, 8).unwrap();
            let r = a.realloc(q, big, 16);
            assert_eq!(std::slice::from_raw_parts(r, 16), b"0123456789abcdef");
            a.dealloc(r, Layout::from_size_align(16, 1).unwrap());
            a.dealloc(p, l);
            // Over-aligned blocks skip the classes.
            let aligned = Layout::from_size_align(16, 64).unwrap();
            let s = a.alloc(aligned);
            assert_eq!(s as usize % 64, 0);
            a.dealloc(s, aligned);
        }
    }
}
