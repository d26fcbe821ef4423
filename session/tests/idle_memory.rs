//! What an idle connection costs: its own size, and the heap it keeps after
//! `release_memory`. A counting global allocator needs `unsafe impl
//! GlobalAlloc`; it only forwards to `System`. This binary holds a single
//! test so no other test allocates concurrently.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use tern_codec::{Packet, QoS, ReasonCode};
use tern_session::{Connection, Offer, Session, SessionConfig, Transmit};

struct Counting;
/// Bytes currently allocated.
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[test]
fn an_idle_connection_keeps_no_heap_and_stays_small() {
    // The structs every connection carries inline.
    let conn_size = size_of::<Connection>();
    let session_size = size_of::<Session>();
    eprintln!("size_of: Connection {conn_size} B, Session {session_size} B");
    assert!(conn_size <= 576, "Connection grew to {conn_size} bytes");
    assert!(session_size <= 320, "Session grew to {session_size} bytes");

    // A fresh v5 connection: after its CONNACK is drained and memory
    // released, it holds nothing on the heap beyond its client id (shared
    // with the broker's maps; the first clone makes it shareable).
    let connect = v5("idle-client", true, None);
    let _shared_id = connect.client_id.clone();
    // The broker shares one config among its connections.
    let cfg = std::sync::Arc::new(SessionConfig::default());
    let before = live();
    let check = Connection::check_connect(&connect, &cfg).expect("connect accepted");
    let mut conn = Connection::new(t0(), connect, None, check, std::sync::Arc::clone(&cfg));
    assert!(
        matches!(
            conn.poll_transmit(),
            Some(Transmit::Packet(Packet::ConnAck(_)))
        ),
        "CONNACK first"
    );
    assert!(live() > before, "the CONNACK was queued on the heap");
    conn.release_memory();
    assert_eq!(live() - before, 0, "an idle connection kept heap memory");

    // After traffic: a subscription stays (it is state), the drained
    // inflight map, transmit and event queues do not.
    conn.handle_packet(at_ms(1), subscribe(1, &[("a/b", QoS::AtLeastOnce)]))
        .unwrap();
    let _ = events(&mut conn);
    conn.complete_subscribe(pid(1), vec![ReasonCode(1)]);
    let message = msg("a/b", b"x");
    conn.deliver(at_ms(2), &Offer::new(&message, at_ms(2), QoS::AtLeastOnce));
    drain(&mut conn);
    conn.handle_packet(at_ms(3), puback(1)).unwrap();
    drain(&mut conn);
    let _ = events(&mut conn);
    drop(message);
    let busy = live();
    conn.release_memory();
    let idle = live();
    assert!(idle < busy, "release_memory freed nothing");
    assert_eq!(conn.session().inflight_len(), 0);
    assert_eq!(conn.session().subscriptions().count(), 1, "state is kept");
    // The subscription still works after the release.
    let again = msg("a/b", b"y");
    conn.deliver(at_ms(4), &Offer::new(&again, at_ms(4), QoS::AtLeastOnce));
    assert!(matches!(
        drain(&mut conn).as_slice(),
        [Transmit::Publish(p)] if p.packet_id == Some(pid(2))
    ));
    // A PINGREQ is still answered.
    conn.release_memory();
    conn.handle_packet(at_ms(5), Packet::PingReq).unwrap();
    assert_eq!(drain(&mut conn).len(), 1);
}
