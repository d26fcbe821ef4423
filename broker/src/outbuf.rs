//! The per-connection shared writer buffer.
//!
//! Control packets and PUBLISH headers are encoded into `tail`, one
//! contiguous buffer; a PUBLISH payload is pushed as a chunk of its own (a
//! clone of the shared `Bytes`, never a copy), after a marker saying how many
//! bytes of `tail` go out before it. The connection task writes the chunks in
//! order — header runs as slices of `tail` — then the rest of the tail, with
//! vectored writes. Headers are never split off into chunks of their own, so
//! the tail keeps (and reuses) one allocation: no allocation, reference count
//! or free per message. A connection that only ever gets control packets
//! (acks, PINGRESP) never allocates a chunk queue. Whoever makes the buffer
//! non-empty wakes the task once; further pushes coalesce.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;

/// How many chunks one vectored write takes at most.
pub(crate) const MAX_IOVECS: usize = 64;

/// One entry of the write order.
#[derive(Debug)]
enum Chunk {
    /// The next this many bytes of `tail`.
    Head(usize),
    /// A shared payload.
    Payload(Bytes),
    /// A whole frame shared by the receivers of one worker (a QoS 0
    /// PUBLISH encoded once), from byte `at` on. Its count is not atomic.
    Frame(Rc<Bytes>, usize),
}

/// Outbound bytes of one connection.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    chunks: VecDeque<Chunk>,
    /// Every unwritten header byte, in write order; the first `sealed` of
    /// them are claimed by `Head` chunks, the rest go out after all chunks.
    tail: BytesMut,
    sealed: usize,
    /// Bytes of the payload chunks.
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

    /// The buffer headers and control packets are appended to. Only ever
    /// append: bytes already in it may be claimed by a chunk.
    pub(crate) fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Appends a shared payload after what is in `tail`.
    pub(crate) fn push_payload(&mut self, payload: Bytes) {
        if payload.is_empty() {
            return;
        }
        self.seal_head();
        self.queued += payload.len();
        self.chunks.push_back(Chunk::Payload(payload));
    }

    /// Appends a whole frame shared with other connections of this worker.
    pub(crate) fn push_frame(&mut self, frame: &Rc<Bytes>) {
        if frame.is_empty() {
            return;
        }
        self.seal_head();
        self.queued += frame.len();
        self.chunks.push_back(Chunk::Frame(Rc::clone(frame), 0));
    }

    /// Claims the tail bytes not yet claimed as a `Head` chunk, so they go
    /// out before the chunk pushed next.
    fn seal_head(&mut self) {
        let unsealed = self.tail.len() - self.sealed;
        if unsealed > 0 {
            self.chunks.push_back(Chunk::Head(unsealed));
            self.sealed = self.tail.len();
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
        let mut rest: &[u8] = &self.tail;
        for chunk in self.chunks.iter().take(MAX_IOVECS) {
            slices[n] = match chunk {
                Chunk::Head(len) => {
                    let (head, after) = rest.split_at(*len);
                    rest = after;
                    IoSlice::new(head)
                }
                Chunk::Payload(p) => IoSlice::new(p),
                Chunk::Frame(f, at) => IoSlice::new(&f[*at..]),
            };
            n += 1;
        }
        if n < MAX_IOVECS && !rest.is_empty() {
            slices[n] = IoSlice::new(rest);
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front: whole chunks, then the tail.
    pub(crate) fn advance(&mut self, mut n: usize) {
        let mut header_bytes = 0;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            match front {
                Chunk::Head(len) if *len <= n => {
                    n -= *len;
                    header_bytes += *len;
                    self.sealed -= *len;
                    self.chunks.pop_front();
                }
                Chunk::Head(len) => {
                    *len -= n;
                    header_bytes += n;
                    self.sealed -= n;
                    n = 0;
                }
                Chunk::Payload(p) if p.len() <= n => {
                    n -= p.len();
                    self.queued -= p.len();
                    self.chunks.pop_front();
                }
                Chunk::Payload(p) => {
                    p.advance(n);
                    self.queued -= n;
                    n = 0;
                }
                Chunk::Frame(f, at) if f.len() - *at <= n => {
                    let left = f.len() - *at;
                    n -= left;
                    self.queued -= left;
                    self.chunks.pop_front();
                }
                Chunk::Frame(_, at) => {
                    *at += n;
                    self.queued -= n;
                    n = 0;
                }
            }
        }
        if self.chunks.is_empty() {
            // Only unclaimed tail bytes are left to write.
            header_bytes += n.min(self.tail.len() - header_bytes);
        }
        self.tail.advance(header_bytes);
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
    fn shared_frames_survive_partial_writes_in_order() {
        let frame = Rc::new(Bytes::from_static(b"FRAME"));
        let mut out = OutBuf::default();
        out.tail().put_slice(b"ab");
        out.push_frame(&frame);
        out.push_frame(&frame);
        out.tail().put_slice(b"z");
        assert_eq!(
            Rc::strong_count(&frame),
            3,
            "the frame is shared, not copied"
        );
        let mut written = Vec::new();
        // Write one byte at a time: every chunk boundary is crossed partially.
        while !out.is_empty() {
            let empty = IoSlice::new(&[]);
            let mut slices = [empty; MAX_IOVECS];
            let n = out.io_slices(&mut slices);
            let first = slices[..n].iter().find(|s| !s.is_empty()).unwrap();
            written.push(first[0]);
            out.advance(1);
        }
        assert_eq!(written, b"abFRAMEFRAMEz");
        assert_eq!(out.queued(), 0);
        assert_eq!(Rc::strong_count(&frame), 1);
    }

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

    /// Writes at most `k` bytes the way the connection task does: one
    /// vectored write of the current slices, then `advance`.
    fn write_some(out: &mut OutBuf, k: usize, sink: &mut Vec<u8>) {
        let before = out.queued();
        let mut take = k;
        for slice in pending(out) {
            let n = slice.len().min(take);
            sink.extend_from_slice(&slice[..n]);
            take -= n;
        }
        let written = k - take;
        out.advance(written);
        assert_eq!(out.queued(), before - written);
    }

    #[test]
    fn partial_writes_of_every_size_keep_the_stream_in_order() {
        let pushes: [(&[u8], &[u8]); 4] = [
            (b"h1", b"pay1"),
            (b"h2h2", b""),
            (b"h3", b"p3"),
            (b"ctl", b"payload4"),
        ];
        let expected: Vec<u8> = pushes
            .iter()
            .flat_map(|(h, p)| [*h, *p])
            .flatten()
            .copied()
            .collect();
        for k in 1..=expected.len() {
            let mut out = OutBuf::default();
            let mut sink = Vec::new();
            // Half the packets first, the rest while the first are being written.
            for (h, p) in &pushes[..2] {
                out.tail().put_slice(h);
                out.push_payload(Bytes::from_static(p));
            }
            write_some(&mut out, k, &mut sink);
            for (h, p) in &pushes[2..] {
                out.tail().put_slice(h);
                out.push_payload(Bytes::from_static(p));
            }
            while !out.is_empty() {
                write_some(&mut out, k, &mut sink);
            }
            assert_eq!(sink, expected, "writes of {k} bytes");
            assert_eq!(out.queued(), 0);
        }
    }

    #[test]
    fn headers_reuse_one_allocation() {
        let mut out = OutBuf::default();
        out.tail().reserve(256);
        let base = out.tail().as_ptr() as usize;
        let payload = Bytes::from_static(b"shared");
        for _round in 0..10 {
            for _ in 0..4 {
                out.tail().put_slice(b"\x32\x0c\x00\x01t\x00\x01");
                out.push_payload(payload.clone());
            }
            let at = out.tail().as_ptr() as usize;
            assert!(
                (base..base + 256).contains(&at),
                "headers left the allocation"
            );
            let mut sink = Vec::new();
            while !out.is_empty() {
                write_some(&mut out, 5, &mut sink);
            }
            assert_eq!(sink.len(), 4 * (7 + 6));
        }
    }
}
