//! `deliver` at QoS 0 allocates nothing once the transmit queue has capacity.
//! A counting global allocator needs `unsafe impl GlobalAlloc`; it only
//! forwards to `System`. This binary holds a single test so no other test
//! allocates concurrently.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use tern_codec::QoS;
use tern_session::{DeliverOutcome, Offer};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn qos0_deliver_does_not_allocate_after_warm_up() {
    let mut conn = open_v5("c");
    let message = msg("t", b"x");
    // Warm up: grow the transmit queue once.
    for _ in 0..64 {
        conn.deliver(
            at_ms(1),
            &Offer {
                subscription_identifiers: &[1],
                ..Offer::new(&message, at_ms(1), QoS::AtMostOnce)
            },
        );
    }
    drain(&mut conn);
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..64 {
        let o = conn.deliver(
            at_ms(2),
            &Offer {
                subscription_identifiers: &[1],
                ..Offer::new(&message, at_ms(2), QoS::AtMostOnce)
            },
        );
        assert_eq!(o, DeliverOutcome::Sent);
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "QoS 0 deliver allocated");
    let mut n = 0;
    while conn.poll_transmit().is_some() {
        n += 1;
    }
    assert_eq!(n, 64);
}
