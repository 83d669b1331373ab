//! Build-time proof that `redpoll-core` is `no_std` + `alloc`.
//!
//! This staticlib declares `#![no_std]`, brings its own `#[panic_handler]` and
//! `#[global_allocator]`, and exports C functions that run the RESP decoder and
//! both encoders, so that the codec is really compiled and monomorphised here,
//! not only type-checked. Nothing calls these functions; building is the test.
//!
//! Why this fails loudly when std creeps in: `std` defines the `panic_impl`
//! lang item itself, so if any crate in the graph (redpoll-core, `bytes`, or a
//! future dependency) links `std`, rustc stops with
//! `error[E0152]: found duplicate lang item `panic_impl``. Building with
//! `--features redpoll-core/std` shows exactly that error; `scripts/test.sh`
//! checks both the failing and the passing build.
//!
//! This is the only crate of the project that contains `unsafe`: a static
//! bump allocator and raw-pointer C entry points are what a `no_std` embedder
//! would write, and there is no safe way to provide either.

#![no_std]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::panic::PanicInfo;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use redpoll_core::resp::{Decoder, Frame, encode_command};

/// Size of the static heap; never reached in practice since nothing runs.
const HEAP_SIZE: usize = 64 * 1024;

/// The heap's backing store. `UnsafeCell` because the allocator hands out
/// mutable pointers into it from `&self`.
#[repr(C, align(16))]
struct Heap(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the only access is through `BumpAlloc`, which gives every caller a
// disjoint range (the atomic compare-exchange on `next` serialises the
// reservations), so no byte is ever reachable from two allocations.
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap(UnsafeCell::new([0; HEAP_SIZE]));

/// A bump allocator over [`HEAP`]: allocation moves a cursor forward,
/// deallocation is a no-op. Enough to prove that `alloc` is all the core
/// needs; an embedder would plug in its own allocator.
struct BumpAlloc {
    next: AtomicUsize,
}

// SAFETY: `alloc` returns either null or a pointer to `layout.size()` bytes
// inside `HEAP`, aligned to `layout.align()`, that no other live allocation
// overlaps (the cursor only moves forward and is advanced atomically).
// `dealloc` never touches memory, which is always sound.
unsafe impl GlobalAlloc for BumpAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = HEAP.0.get().cast::<u8>();
        let mut cursor = self.next.load(Ordering::Relaxed);
        loop {
            let misalign = (base as usize).wrapping_add(cursor) % layout.align();
            let start = if misalign == 0 {
                cursor
            } else {
                match cursor.checked_add(layout.align() - misalign) {
                    Some(start) => start,
                    None => return ptr::null_mut(),
                }
            };
            let end = match start.checked_add(layout.size()) {
                Some(end) if end <= HEAP_SIZE => end,
                _ => return ptr::null_mut(),
            };
            match self
                .next
                .compare_exchange_weak(cursor, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // `start + size <= HEAP_SIZE`, so the offset stays in bounds.
                Ok(_) => return base.wrapping_add(start),
                Err(current) => cursor = current,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: BumpAlloc = BumpAlloc {
    next: AtomicUsize::new(0),
};

/// Without std there is nowhere to report a panic and no unwinding
/// (`panic = "abort"`); spin, as a bare-metal target would before a watchdog
/// reset. This handler is also the tripwire: std brings its own.
#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Decodes every complete RESP frame in `len` bytes at `data`.
///
/// Returns the number of complete frames, or `-1` if the input is malformed.
///
/// # Safety
///
/// `data` must be valid for reads of `len` bytes (or `len` must be 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn redpoll_nostd_decode(data: *const u8, len: usize) -> isize {
    let input: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller, see `# Safety`.
        unsafe { core::slice::from_raw_parts(data, len) }
    };
    let mut buf = BytesMut::from(input);
    let mut decoder = Decoder::new();
    let mut frames: isize = 0;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(_frame)) => frames += 1,
            Ok(None) => return frames,
            Err(_) => return -1,
        }
    }
}

/// Encodes `SET key value` with [`encode_command`] and the reply `+OK` with
/// [`Frame::encode`] into `out`, and returns how many bytes that took.
///
/// Returns the needed length without writing if `cap` is too small.
///
/// # Safety
///
/// `out` must be valid for writes of `cap` bytes (or `cap` must be 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn redpoll_nostd_encode(out: *mut u8, cap: usize) -> usize {
    let mut buf = BytesMut::new();
    let args: [&[u8]; 3] = [b"SET", b"key", b"value"];
    encode_command(&mut buf, &args);
    let reply = Frame::Array(Vec::from([
        Frame::Simple(bytes::Bytes::from_static(b"OK")),
        Frame::Integer(42),
    ]));
    reply.encode(&mut buf);
    if buf.len() <= cap && !buf.is_empty() {
        // SAFETY: `out` is valid for `cap >= buf.len()` bytes (see `# Safety`)
        // and cannot overlap `buf`, which this function allocated.
        unsafe { ptr::copy_nonoverlapping(buf.as_ptr(), out, buf.len()) };
    }
    buf.len()
}
