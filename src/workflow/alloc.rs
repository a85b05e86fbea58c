//! The heap limit as an allocator: QuickJS allocates through [`CountingAllocator`],
//! which refuses any allocation past the limit and raises a sticky flag. QuickJS turns
//! the refusal into an "out of memory" error, which a script could catch; the flag
//! makes the interrupt handler stop the script at its next check, so passing the
//! limit always ends the run (with a message naming the heap limit).

use rquickjs::allocator::Allocator;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(crate) struct CountingAllocator {
    used: usize,
    limit: usize,
    tripped: Arc<AtomicBool>,
}

impl CountingAllocator {
    pub(crate) fn new(limit: usize, tripped: Arc<AtomicBool>) -> Self {
        CountingAllocator {
            used: 0,
            limit,
            tripped,
        }
    }

    /// Whether `extra` more bytes fit; raises the flag when they do not.
    fn fits(&self, extra: usize) -> bool {
        let ok = self
            .used
            .checked_add(extra)
            .is_some_and(|total| total <= self.limit);
        if !ok {
            self.tripped.store(true, Ordering::SeqCst);
        }
        ok
    }
}

// SAFETY: every pointer handed out comes from the C allocator (malloc, calloc,
// realloc), which aligns for any fundamental type (at least `usize`), and is only
// ever released or resized through the same allocator; `usable_size` asks that
// allocator about its own pointers.
unsafe impl Allocator for CountingAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if size == 0 || !self.fits(size) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain malloc of a non-zero size.
        let ptr = unsafe { libc::malloc(size) }.cast::<u8>();
        if !ptr.is_null() {
            // SAFETY: ptr was just returned by malloc.
            self.used += unsafe { Self::usable_size(ptr) };
        }
        ptr
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return std::ptr::null_mut();
        };
        if total == 0 || !self.fits(total) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain calloc; the product does not overflow.
        let ptr = unsafe { libc::calloc(count, size) }.cast::<u8>();
        if !ptr.is_null() {
            // SAFETY: ptr was just returned by calloc.
            self.used += unsafe { Self::usable_size(ptr) };
        }
        ptr
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: the caller hands back a pointer from this allocator.
        let size = unsafe { Self::usable_size(ptr) };
        self.used = self.used.saturating_sub(size);
        // SAFETY: as above; it is freed exactly once.
        unsafe { libc::free(ptr.cast()) };
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.alloc(new_size);
        }
        if new_size == 0 {
            // SAFETY: ptr comes from this allocator.
            unsafe { self.dealloc(ptr) };
            return std::ptr::null_mut();
        }
        // SAFETY: ptr comes from this allocator.
        let old = unsafe { Self::usable_size(ptr) };
        if new_size > old && !self.fits(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: ptr comes from this allocator; on failure it stays valid.
        let grown = unsafe { libc::realloc(ptr.cast(), new_size) }.cast::<u8>();
        if grown.is_null() {
            return grown;
        }
        // SAFETY: grown was just returned by realloc.
        let new = unsafe { Self::usable_size(grown) };
        self.used = self.used.saturating_sub(old) + new;
        grown
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        // SAFETY: the caller guarantees ptr comes from this allocator (the C heap).
        unsafe { libc::malloc_usable_size(ptr.cast()) }
    }
}
