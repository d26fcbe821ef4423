//! The per-connection shared writer buffer.
//!
//! Control packets and PUBLISH headers are encoded into `tail`; a PUBLISH
//! payload is pushed as its own chunk (a clone of the shared `Bytes`, never a
//! copy), after the tail so far is sealed into a chunk of its own. The
//! connection task writes the chunks, then what is left in the tail, with
//! vectored writes: a connection that only ever gets control packets (acks,
//! PINGRESP) never allocates a chunk queue. Whoever makes the buffer
//! non-empty wakes the task once; further pushes coalesce.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// How many chunks one vectored write takes at most.
pub(crate) const MAX_IOVECS: usize = 64;

/// Outbound bytes of one connection.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    queued: usize,
}

impl OutBuf {
    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queued + self.tail.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_empty()
    }

    /// The buffer headers and control packets are encoded into.
    pub(crate) fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Appends a shared payload after what is in `tail`.
    pub(crate) fn push_payload(&mut self, payload: Bytes) {
        if payload.is_empty() {
            return;
        }
        self.seal_tail();
        self.queued += payload.len();
        self.chunks.push_back(payload);
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let head = self.tail.split().freeze();
            self.queued += head.len();
            self.chunks.push_back(head);
        }
    }

    /// Gives back the memory of an empty buffer. Called for connections that
    /// have been idle for a sweep interval, so busy ones keep (and reuse) it.
    pub(crate) fn release_if_drained(&mut self) {
        if self.chunks.is_empty() && self.tail.is_empty() {
            self.tail = BytesMut::new();
            if self.chunks.capacity() > 64 {
                self.chunks = VecDeque::new();
            }
        }
    }

    /// Fills `slices` with the next chunks to write, the tail last; returns how many.
    pub(crate) fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_IOVECS]) -> usize {
        let mut n = 0;
        for chunk in self.chunks.iter().take(MAX_IOVECS) {
            slices[n] = IoSlice::new(chunk);
            n += 1;
        }
        if n < MAX_IOVECS && !self.tail.is_empty() {
            slices[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front: whole chunks, then the tail.
    pub(crate) fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let len = front.len();
            if len <= n {
                n -= len;
                self.queued -= len;
                self.chunks.pop_front();
            } else {
                front.advance(n);
                self.queued -= n;
                return;
            }
        }
        let n = n.min(self.tail.len());
        self.tail.advance(n);
        if self.tail.is_empty() {
            // Reuse the whole allocation for the next packets.
            self.tail.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn payload_is_shared_not_copied() {
        let payload = Bytes::from_static(b"0123456789");
        let mut out = OutBuf::default();
        out.tail().put_slice(b"hdr");
        out.push_payload(payload.clone());
        out.tail().put_slice(b"x");
        let empty = IoSlice::new(&[]);
        let mut slices = [empty; MAX_IOVECS];
        let n = out.io_slices(&mut slices);
        assert_eq!(n, 3);
        assert_eq!(&*slices[0], b"hdr");
        assert_eq!(slices[1].as_ptr(), payload.as_ptr());
        assert_eq!(&*slices[2], b"x");
    }

    #[test]
    fn drained_buffer_holds_no_memory() {
        let mut out = OutBuf::default();
        out.tail().put_slice(&[0u8; 3000]);
        out.push_payload(Bytes::from(vec![1u8; 10]));
        let empty = IoSlice::new(&[]);
        let mut slices = [empty; MAX_IOVECS];
        let n = out.io_slices(&mut slices);
        let total: usize = slices[..n].iter().map(|s| s.len()).sum();
        out.advance(total);
        assert!(out.is_empty());
        out.release_if_drained();
        assert_eq!(out.tail().capacity(), 0);
    }

    /// What one vectored write would send now, slice by slice.
    fn pending(out: &OutBuf) -> Vec<Vec<u8>> {
        let empty = IoSlice::new(&[]);
        let mut slices = [empty; MAX_IOVECS];
        let n = out.io_slices(&mut slices);
        slices[..n].iter().map(|s| s.to_vec()).collect()
    }

    #[test]
    fn control_packets_need_no_chunk_queue() {
        let mut out = OutBuf::default();
        out.tail().put_slice(b"\x20\x02\x00\x00");
        assert_eq!(pending(&out), [b"\x20\x02\x00\x00".to_vec()]);
        out.advance(3);
        assert_eq!(out.queued(), 1);
        out.tail().put_slice(b"\xd0\x00");
        assert_eq!(
            pending(&out),
            [b"\x00\xd0\x00".to_vec()],
            "a partial write keeps the rest in order"
        );
        out.advance(3);
        assert!(out.is_empty());
        assert_eq!(out.chunks.capacity(), 0, "no chunk queue was allocated");
    }

    #[test]
    fn tail_after_payload_keeps_order_across_partial_writes() {
        let mut out = OutBuf::default();
        out.tail().put_slice(b"h1");
        out.push_payload(Bytes::from_static(b"p1"));
        out.tail().put_slice(b"h2");
        assert_eq!(out.queued(), 6);
        let mut written = Vec::new();
        // Write one byte at a time, as a congested socket might.
        while !out.is_empty() {
            written.push(pending(&out)[0][0]);
            out.advance(1);
        }
        assert_eq!(written, b"h1p1h2");
        assert_eq!(out.queued(), 0);
    }

    #[test]
    fn advance_across_chunks() {
        let mut out = OutBuf::default();
        out.tail().put_slice(b"ab");
        out.push_payload(Bytes::from_static(b"cdef"));
        assert_eq!(out.queued(), 6);
        out.advance(3);
        assert_eq!(out.queued(), 3);
        let empty = IoSlice::new(&[]);
        let mut slices = [empty; MAX_IOVECS];
        let n = out.io_slices(&mut slices);
        assert_eq!(n, 1);
        assert_eq!(&*slices[0], b"def");
        out.advance(3);
        assert!(out.is_empty());
    }
}
