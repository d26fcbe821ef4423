//! The TCP socket under a TLS stream, which can leave its runtime and join
//! another while the TLS state around it stays whole (see
//! `Stream::detach`).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket registered with a runtime, or detached on its way to another.
#[derive(Debug)]
pub(crate) enum Socket {
    /// Registered with the current thread's runtime.
    Live(tokio::net::TcpStream),
    /// Detached: nothing may be read or written until it is attached again.
    Detached(std::net::TcpStream),
    /// Between the two, or after a failed move.
    Gone,
}

impl Socket {
    pub(crate) fn live(&self) -> Option<&tokio::net::TcpStream> {
        match self {
            Self::Live(s) => Some(s),
            _ => None,
        }
    }

    /// Deregisters the socket from its runtime.
    pub(crate) fn detach(&mut self) -> io::Result<()> {
        match std::mem::replace(self, Self::Gone) {
            Self::Live(s) => {
                *self = Self::Detached(s.into_std()?);
                Ok(())
            }
            other => {
                *self = other;
                Err(not_live())
            }
        }
    }

    /// Registers a detached socket with the current runtime.
    pub(crate) fn attach(&mut self) -> io::Result<()> {
        match std::mem::replace(self, Self::Gone) {
            Self::Detached(s) => {
                s.set_nonblocking(true)?;
                *self = Self::Live(tokio::net::TcpStream::from_std(s)?);
                Ok(())
            }
            other => {
                *self = other;
                Err(io::Error::other("socket is not detached"))
            }
        }
    }

    fn get(self: Pin<&mut Self>) -> io::Result<Pin<&mut tokio::net::TcpStream>> {
        match self.get_mut() {
            Self::Live(s) => Ok(Pin::new(s)),
            _ => Err(not_live()),
        }
    }
}

fn not_live() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "socket is detached from its runtime",
    )
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
