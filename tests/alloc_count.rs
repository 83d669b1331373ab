//! Heap allocations made by the RESP decoder, counted by a global allocator.
//!
//! The performance stance (DESIGN.md) promises no allocation for simple
//! replies and no copy of bulk payloads. These tests hold the decoder to it:
//! they fail when a change makes simple replies allocate, or makes an
//! aggregate allocate per element.
//!
//! `cargo test --test alloc_count -- --nocapture` also prints allocations per
//! frame for inputs (a), (b), (d) of `benches/codec.rs`, for redpoll and for
//! each peer (the peers' figures are reported, not asserted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;

#[path = "../benches/inputs/mod.rs"]
mod inputs;

use inputs::Input;
use inputs::impls::{self, Impl};

/// Counts `alloc`, `alloc_zeroed` and `realloc` calls made by the current
/// thread while counting is on; otherwise forwards to `System` untouched.
/// Thread-local, so tests running in parallel do not see each other's
/// allocations.
struct CountingAllocator;

thread_local! {
    // `const` and `Cell` of a `Copy` type: no lazy initialisation, no
    // destructor, so it is safe to touch from inside the allocator.
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

fn bump() {
    let _ = COUNT.try_with(|count| {
        if let Some(n) = count.get() {
            count.set(Some(n + 1));
        }
    });
}

// SAFETY: every call forwards to `System` with the same arguments.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f`, returning its result and the allocations it made on this thread.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    COUNT.with(|c| c.set(Some(0)));
    let result = f();
    let n = COUNT.with(|c| c.replace(None)).expect("counting was on");
    (result, n)
}

/// A fresh copy of `input`, promoted to a shared buffer.
///
/// A `BytesMut` filled by a socket read starts out as a unique, Vec-backed
/// buffer. The first frame sliced out of it promotes it to a shared buffer:
/// one allocation (bytes' reference-count header) per read buffer, not per
/// frame. A client pays it once per buffer; promoting first, outside the
/// count, leaves exactly what decoding costs per frame.
/// `promotion_costs_one_allocation_per_buffer` checks that cost separately.
fn promoted(input: &Input) -> BytesMut {
    let mut buf = input.bytes.clone();
    drop(buf.split_to(0));
    buf
}

/// Decodes all of `input` with `imp`; returns the allocations made.
fn decode_counting(imp: Impl, input: &Input) -> u64 {
    let buf = promoted(input);
    let (frames, allocations) = count_allocations(|| imp.decode(input, buf));
    assert_eq!(frames, input.frames, "{} on {}", imp.id(), input.name);
    allocations
}

#[test]
fn simple_replies_allocate_nothing() {
    let input = inputs::simple_only();
    assert_eq!(
        decode_counting(Impl::Redpoll, &input),
        0,
        "+OK, :int and $-1 must not allocate"
    );
}

#[test]
fn promotion_costs_one_allocation_per_buffer() {
    // Same as above without promoting first: the only allocation left is the
    // promotion of the read buffer itself.
    let input = inputs::simple_only();
    let buf = input.bytes.clone();
    let (frames, allocations) = count_allocations(|| impls::redpoll(buf));
    assert_eq!(frames, input.frames);
    assert!(
        allocations <= 1,
        "{allocations} allocations for one buffer of simple replies"
    );
}

#[test]
fn a_small_mixed_allocates_nothing() {
    // Bulks are slices of the shared buffer, so the whole mix of (a) is free
    // too: 0 for 10,000 frames.
    let input = inputs::a_small_mixed();
    assert_eq!(decode_counting(Impl::Redpoll, &input), 0);
}

#[test]
fn b_array_allocations_do_not_grow_with_elements() {
    // One array of 1,000 bulks. Measured: 2 allocations in all (the element
    // Vec, and one more while it is filled), i.e. O(1). Bound 4 = measured +
    // a margin of 2. It fails on any per-element cost (>= 1,000) and also on
    // plain doubling growth from an empty Vec (about 9 for 1,000 elements),
    // which would be a regression from what the decoder does today.
    const BOUND_B: u64 = 4;
    let input = inputs::b_array_1000x100();
    let allocations = decode_counting(Impl::Redpoll, &input);
    assert!(
        allocations <= BOUND_B,
        "(b): {allocations} allocations for 1 array of 1,000 bulks"
    );
}

#[test]
fn d_resp3_mix_allocates_only_for_aggregates() {
    // Only maps, sets and pushes allocate (their element Vec); scalars,
    // doubles, booleans, nulls and bulks do not. The mix has 4,066 of them
    // (1..=5 elements each) in 10,000 frames. Measured: 5,186 allocations,
    // 1.28 per aggregate: one Vec each, plus a second allocation for maps of
    // several fields (a `%4` costs 2, a `%1`, `~5` or `>4` costs 1).
    // Bound 1.4 per aggregate (5,692) = measured + ~10%. An allocation per
    // element (~3 per aggregate) or per scalar frame (+5,934) fails it.
    let input = inputs::d_resp3_mix();
    let allocations = decode_counting(Impl::Redpoll, &input);
    let bound = input.aggregates as u64 * 14 / 10;
    assert!(
        allocations <= bound,
        "(d): {allocations} allocations for {} aggregates in {} frames (bound {bound})",
        input.aggregates,
        input.frames
    );
}

/// Prints allocations per frame (per element for (b)) for redpoll and the
/// peers; asserts nothing.
#[test]
fn report() {
    let inputs = [
        inputs::a_small_mixed(),
        inputs::b_array_1000x100(),
        inputs::d_resp3_mix(),
    ];
    println!("allocations per unit (buffer promoted first), unit = frame, element for (b)");
    println!("| impl | a per frame | b per element | b total | d per frame | d total |");
    for imp in Impl::ALL {
        let [a, b, d] = inputs.each_ref().map(|input| decode_counting(imp, input));
        println!(
            "| {} | {:.3} | {:.3} | {b} | {:.3} | {d} |",
            imp.id(),
            a as f64 / inputs[0].elements as f64,
            b as f64 / inputs[1].elements as f64,
            d as f64 / inputs[2].elements as f64,
        );
    }
    println!(
        "(d) has {} aggregates in {} frames",
        inputs[2].aggregates, inputs[2].frames
    );
}
