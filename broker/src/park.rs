//! Parked connections: an idle connection has no task.
//!
//! A connection whose task would wait with nothing to write and no read
//! buffer (right after its CONNACK, or once the idle sweep released its
//! buffers) hands its `Link` to the worker's [`ParkingLot`] and its task
//! ends. What stays is the `ConnShared`, the registered socket and one entry
//! here. The connection's task is started again ([`resume`]) when:
//!
//! - the socket becomes readable (data, EOF, error): the socket's read
//!   readiness is registered with the connection's [`ParkWaker`] *before* it
//!   is parked;
//! - something is queued for it or it is asked to close (takeover,
//!   shutdown): `ConnShared::wake` wakes the same waker, since parking puts
//!   it in `ConnShared::waker`;
//! - its keep-alive deadline has passed ([`ParkingLot::expire`], from the
//!   worker's 500 ms tick).
//!
//! Parking happens synchronously inside one poll of the task, so nothing
//! can slip between the last check and the registration: every later event
//! goes through the waker. A waker woken after its connection was resumed
//! finds no entry and is ignored (each parking gets a fresh id).

use crate::deliver::ConnCell;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Instant;

/// What a connection task leaves behind when it parks: everything it held
/// (the connection task's transport state, which knows its cell and key).
/// The lot keeps it type-erased, so it does not depend on the connection
/// task that implements it.
pub(crate) trait Parkable {
    /// Registers `cx`'s waker for read readiness of the socket; ready means
    /// the connection must not park.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> std::task::Poll<std::io::Result<()>>;
    /// The connection's shared state.
    fn cell(&self) -> Option<&Rc<ConnCell>>;
    /// Starts the connection's task again.
    fn resume(self: Box<Self>);
}

/// A parked connection: everything its task held.
type Parked = Box<dyn Parkable>;

/// Ids of parked connections whose waker was woken, and the wake-up of the
/// worker's resume loop.
#[derive(Debug, Default)]
struct Ready {
    ids: Mutex<Vec<u64>>,
    notify: tokio::sync::Notify,
}

/// The waker of one parked connection: queues its id for the resume loop.
#[derive(Debug)]
struct ParkWaker {
    id: u64,
    ready: Arc<Ready>,
    /// Set once queued, so repeated wake-ups queue it once.
    queued: AtomicBool,
}

impl Wake for ParkWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        self.ready
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.id);
        self.ready.notify.notify_one();
    }
}

/// The parked connections of one worker.
#[derive(Default)]
pub(crate) struct ParkingLot {
    parked: RefCell<HashMap<u64, Parked, ahash::RandomState>>,
    next_id: Cell<u64>,
    ready: Arc<Ready>,
}

impl std::fmt::Debug for ParkingLot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParkingLot")
            .field("parked", &self.len())
            .finish_non_exhaustive()
    }
}

impl ParkingLot {
    /// How many connections are parked.
    pub(crate) fn len(&self) -> usize {
        self.parked.try_borrow().map_or(0, |p| p.len())
    }

    /// Parks a connection whose task is about to end. Gives the link back
    /// when the connection has something to do after all (readable socket,
    /// bytes to write, a close request): its task must go on.
    pub(crate) fn park<P: Parkable + 'static>(&self, link: Box<P>) -> Result<(), Box<P>> {
        let Some(cell) = link.cell().cloned() else {
            return Err(link);
        };
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let waker = Waker::from(Arc::new(ParkWaker {
            id,
            ready: Arc::clone(&self.ready),
            queued: AtomicBool::new(false),
        }));
        // Readiness first: from here on a readable socket wakes `waker`.
        if link
            .poll_read_ready(&mut Context::from_waker(&waker))
            .is_ready()
        {
            return Err(link);
        }
        {
            let Ok(mut cs) = cell.try_borrow_mut() else {
                return Err(link);
            };
            if !cs.out.is_empty() || cs.close.is_some() || cs.conn.is_none() {
                return Err(link);
            }
            cs.waker = Some(waker);
            cs.parked = true;
        }
        self.parked.borrow_mut().insert(id, link);
        Ok(())
    }

    /// Starts the task of every parked connection whose waker was woken;
    /// runs for the worker's life.
    pub(crate) async fn run(&self) {
        let mut batch = Vec::new();
        loop {
            std::mem::swap(
                &mut batch,
                &mut *self.ready.ids.lock().unwrap_or_else(|e| e.into_inner()),
            );
            if batch.is_empty() {
                self.ready.notify.notified().await;
                continue;
            }
            for id in batch.drain(..) {
                self.resume(id);
            }
        }
    }

    /// Resumes the parked connections whose keep-alive deadline has passed:
    /// their task closes them.
    pub(crate) fn expire(&self, now: Instant) {
        let due: Vec<u64> = self
            .parked
            .borrow()
            .iter()
            .filter(|(_, p)| {
                p.cell().is_some_and(|cell| {
                    cell.try_borrow().is_ok_and(|cs| {
                        cs.conn
                            .as_ref()
                            .and_then(|c| c.poll_timeout())
                            .is_some_and(|deadline| deadline <= now)
                    })
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.resume(id);
        }
    }

    /// Drops every parked connection (the worker is stopping): their guards
    /// detach them as if the network had failed.
    pub(crate) fn clear(&self) {
        let all: Vec<Parked> = self.parked.borrow_mut().drain().map(|(_, p)| p).collect();
        drop(all);
    }

    /// Starts the task of parked connection `id`, if it is still parked.
    fn resume(&self, id: u64) {
        let Some(p) = self.parked.borrow_mut().remove(&id) else {
            return;
        };
        p.resume();
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    // What every parked connection keeps: keep it from growing unnoticed.
    #[test]
    fn parked_state_stays_small() {
        assert!(size_of::<super::Parked>() <= 24);
    }
}
