//! MQTT over WebSocket (RFC 6455), server side, as a byte stream.
//!
//! [`accept`] runs the HTTP upgrade on any inner stream and returns a
//! [`WsStream`] over it, which reads and writes MQTT bytes: binary frames
//! in, binary frames out. The inner stream is generic, so `ws` is a
//! `WsStream` over TCP and `wss` the same over TLS.
//!
//! Why our own framing rather than tungstenite's: tungstenite's API is
//! messages (`Message::Binary(Vec<u8>)` / `Bytes`), which copies every
//! payload into a message on the way out and re-frames on the way in. Tern's
//! fan-out writes one shared payload to many subscribers with vectored
//! writes; here the frame header is one more small slice in front of the
//! caller's slices, so the payload is never copied (and a frame may carry
//! several MQTT packets, or a packet several frames, at no cost). The
//! server side of RFC 6455 is small: the handshake is `httparse` + `sha1` +
//! `base64` (see `handshake`), the framing a few hundred lines (`frame`),
//! both sans-IO and fuzzed (`fuzz/fuzz_targets/ws_frames.rs`).
//!
//! Reading: client frames must be masked; binary and continuation frames
//! give their payload; pings are answered with pongs, a close with a close
//! (then end of stream); a text frame closes with 1003, an oversize frame
//! with 1009, anything else malformed with 1002, each an `InvalidData`
//! error. Writing: every `poll_write_vectored` call becomes at most one
//! unmasked binary frame whose header goes out as the first slice. Once a
//! frame's header is out, the frame is finished before anything else is
//! written (control frames wait for it): the caller must go on writing at
//! least the bytes it offered (Tern's writers keep what they have not
//! written in their buffer and offer it again).

mod frame;
mod handshake;
#[cfg(test)]
mod tests;

pub use frame::{
    close_code, encode_header, Control, Decoded, FrameDecoder, FrameError, MAX_HEADER,
};
pub use handshake::{accept_key, parse_request, Accepted, UpgradeError, SUBPROTOCOLS};

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// WebSocket settings of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// The one HTTP path upgraded (a query string is ignored), e.g. `/mqtt`.
    pub path: String,
    /// The longest data frame payload a client may send.
    pub max_frame_size: u64,
    /// The longest upgrade request (request line and headers) read.
    pub max_request_size: usize,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            path: "/mqtt".into(),
            max_frame_size: 1 << 20,
            max_request_size: 8 * 1024,
        }
    }
}

/// Streams that can say, without reading, whether a read would make
/// progress (see [`crate::Stream::poll_read_ready`]).
pub trait ReadReady {
    /// Ready when a read would make progress now.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// Pongs queued beyond this many bytes of control frames are dropped.
const MAX_CONTROL_QUEUE: usize = 1024;
/// Reads of the inner stream in one `poll_read` that produced no payload
/// (control frames only) before it yields.
const MAX_READS_PER_POLL: usize = 4;

/// How much is read from the inner stream at a time: what the caller has
/// room for, within these bounds.
const MIN_READ_CHUNK: usize = 1024;
const MAX_READ_CHUNK: usize = 64 * 1024;

/// Runs the server side of the opening handshake on `io`: reads the
/// upgrade request (at most `settings.max_request_size` bytes), answers
/// `101` with the chosen subprotocol, or an HTTP error (404 for another
/// path, 400 without an MQTT subprotocol, …) and returns why. Bytes the
/// client sent after its request are kept as the start of the frame
/// stream. No timeout: the caller bounds it.
pub async fn accept<S>(mut io: S, settings: &WsSettings) -> Result<WsStream<S>, UpgradeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    let accepted = loop {
        let err = match parse_request(&buf, &settings.path) {
            Ok(Some(a)) => break a,
            Ok(None) if buf.len() >= settings.max_request_size => UpgradeError::TooLarge,
            Ok(None) => {
                let room = settings.max_request_size - buf.len();
                buf.reserve(room.min(1024));
                let mut limited = (&mut io).take(room as u64);
                match limited.read_buf(&mut buf).await {
                    Ok(0) => {
                        return Err(UpgradeError::Io(io::ErrorKind::UnexpectedEof.into()));
                    }
                    Ok(_) => continue,
                    Err(e) => return Err(UpgradeError::Io(e)),
                }
            }
            Err(e) => e,
        };
        // Best effort: the connection closes either way.
        let _ = io.write_all(err.response().as_bytes()).await;
        let _ = io.shutdown().await;
        return Err(err);
    };
    io.write_all(accepted.response.as_bytes()).await?;
    io.flush().await?;
    buf.advance(accepted.consumed);
    Ok(WsStream::with_buffered(io, settings.max_frame_size, buf))
}

/// The read side's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Open,
    /// The peer's close frame arrived (or the stream ended): end of stream.
    Closed,
    /// A protocol error was answered with a close frame: every read fails.
    Failed,
}

/// A WebSocket connection, server side, presented as a byte stream. See the
/// module documentation for what it reads and writes.
#[derive(Debug)]
pub struct WsStream<S> {
    inner: S,
    /// Bytes read from `inner`, not yet decoded.
    raw: BytesMut,
    decoder: FrameDecoder,
    read: ReadState,
    /// Payload bytes the data frame being written still owes.
    frame_left: u64,
    /// Its header and how much of it is out.
    head: [u8; MAX_HEADER],
    head_len: u8,
    head_sent: u8,
    /// Whole control frames (pong, close) waiting for the current data
    /// frame to finish.
    control: BytesMut,
    close_queued: bool,
}

impl<S> WsStream<S> {
    /// A stream over an upgraded connection whose first frame bytes
    /// (`buffered`) were read with the request.
    pub fn with_buffered(inner: S, max_frame_size: u64, buffered: BytesMut) -> Self {
        Self {
            inner,
            raw: buffered,
            decoder: FrameDecoder::new(max_frame_size),
            read: ReadState::Open,
            frame_left: 0,
            head: [0; MAX_HEADER],
            head_len: 0,
            head_sent: 0,
            control: BytesMut::new(),
            close_queued: false,
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The same connection over another inner stream (the same connection
    /// detached from or attached to a runtime), with all framing state: a
    /// partly read or written frame, its masking key, queued control frames.
    pub fn map_inner<T, E>(self, f: impl FnOnce(S) -> Result<T, E>) -> Result<WsStream<T>, E> {
        Ok(WsStream {
            inner: f(self.inner)?,
            raw: self.raw,
            decoder: self.decoder,
            read: self.read,
            frame_left: self.frame_left,
            head: self.head,
            head_len: self.head_len,
            head_sent: self.head_sent,
            control: self.control,
            close_queued: self.close_queued,
        })
    }

    /// Queues a close frame with `code` unless one is queued or sent.
    fn queue_close(&mut self, code: u16) {
        if !self.close_queued {
            self.close_queued = true;
            frame::push_control(&mut self.control, frame::OP_CLOSE, &code.to_be_bytes());
        }
    }
}

impl<S: ReadReady> WsStream<S> {
    /// Ready when a read would make progress: decoded-but-unread bytes (or a
    /// whole frame) in the buffer count, as do end of stream and errors.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.read != ReadState::Open || self.decoder.ready(&self.raw) {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_read_ready(cx)
    }
}

impl<S: AsyncWrite + Unpin> WsStream<S> {
    /// Writes queued control frames, unless a data frame is unfinished.
    fn poll_control(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.frame_left > 0 {
            return Poll::Ready(Ok(()));
        }
        while !self.control.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.control) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.control.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.control.capacity() > 0 {
            self.control = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut reads = 0;
        loop {
            match this.read {
                ReadState::Open => {}
                ReadState::Closed => return Poll::Ready(Ok(())),
                ReadState::Failed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket protocol error",
                    )))
                }
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            match this.decoder.decode(&mut this.raw, buf.remaining()) {
                Ok(Decoded::Data(n)) => {
                    buf.put_slice(&this.raw[..n]);
                    this.raw.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Decoded::Control(Control::Ping(payload))) => {
                    // A peer that pings faster than it reads gets pongs for
                    // some of its pings only (RFC 6455 §5.5.3 allows
                    // answering the latest), so the queue stays bounded.
                    if !this.close_queued && this.control.len() < MAX_CONTROL_QUEUE {
                        frame::push_control(&mut this.control, frame::OP_PONG, &payload);
                    }
                    // Sent now if nothing is in the way, else after the
                    // frame being written; a full socket is retried later.
                    let _ = this.poll_control(cx);
                }
                Ok(Decoded::Control(Control::Pong)) => {}
                Ok(Decoded::Control(Control::Close(code))) => {
                    // Echo the status (RFC 6455 §5.5.1), then end of stream.
                    this.queue_close(code.unwrap_or(close_code::NORMAL));
                    let _ = this.poll_control(cx);
                    this.read = ReadState::Closed;
                }
                Ok(Decoded::NeedMore) => {
                    if reads == MAX_READS_PER_POLL {
                        // Only control frames so far: let the other tasks
                        // of this thread run, then go on.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    reads += 1;
                    // As much as the caller takes (bounded), so a busy
                    // reader needs no more reads than over plain TCP.
                    this.raw
                        .reserve(buf.remaining().clamp(MIN_READ_CHUNK, MAX_READ_CHUNK));
                    match tokio_util::io::poll_read_buf(
                        Pin::new(&mut this.inner),
                        cx,
                        &mut this.raw,
                    ) {
                        Poll::Ready(Ok(0)) => {
                            this.read = ReadState::Closed;
                            if this.decoder.mid_message() {
                                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                            }
                        }
                        Poll::Ready(Ok(_)) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            // Nothing buffered: an idle connection keeps no
                            // read buffer (it may park for a long time).
                            if this.raw.is_empty() {
                                this.raw = BytesMut::new();
                            }
                            return Poll::Pending;
                        }
                    }
                }
                Err(e) => {
                    this.queue_close(e.close_code());
                    let _ = this.poll_control(cx);
                    this.read = ReadState::Failed;
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
            }
        }
    }
}

/// The most caller slices framed by one write.
const MAX_SLICES: usize = 64;

impl<S: AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.frame_left == 0 {
            if let Poll::Ready(Err(e)) = this.poll_control(cx) {
                return Poll::Ready(Err(e));
            }
            if !this.control.is_empty() {
                return Poll::Pending;
            }
            if this.close_queued {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let bufs = &bufs[..bufs.len().min(MAX_SLICES)];
            let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
            if total == 0 {
                return Poll::Ready(Ok(0));
            }
            this.head_len = encode_header(frame::OP_BINARY, total, &mut this.head) as u8;
            this.head_sent = 0;
            this.frame_left = total;
        }
        loop {
            // The rest of the header, then the caller's bytes up to the
            // frame's end.
            let mut slices = [IoSlice::new(&[]); MAX_SLICES + 1];
            let mut n = 0;
            let head = &this.head[usize::from(this.head_sent)..usize::from(this.head_len)];
            if !head.is_empty() {
                slices[0] = IoSlice::new(head);
                n = 1;
            }
            let mut left = this.frame_left;
            for b in bufs.iter().take(MAX_SLICES) {
                if left == 0 {
                    break;
                }
                let take = (b.len() as u64).min(left) as usize;
                if take > 0 {
                    slices[n] = IoSlice::new(&b[..take]);
                    n += 1;
                    left -= take as u64;
                }
            }
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            let written = match Pin::new(&mut this.inner).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(w)) => w,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let of_head = written.min(head.len());
            this.head_sent += of_head as u8;
            let payload = written - of_head;
            this.frame_left -= payload as u64;
            if payload > 0 {
                if this.frame_left == 0 {
                    // The frame is complete: a pong or close may go now.
                    let _ = this.poll_control(cx);
                }
                return Poll::Ready(Ok(payload));
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(Err(e)) = this.poll_control(cx) {
            return Poll::Ready(Err(e));
        }
        if this.frame_left == 0 && !this.control.is_empty() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    /// Sends a close frame (1000, unless one is queued already) and shuts
    /// the inner stream down. A data frame left unfinished by the caller
    /// cannot be closed cleanly: the inner stream is shut down at once.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.frame_left == 0 {
            this.queue_close(close_code::NORMAL);
            match this.poll_control(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
