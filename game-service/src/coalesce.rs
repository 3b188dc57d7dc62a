//! Write coalescing for the server's connections.
//!
//! hyper serves every call in a task of its own. When a call's task finishes, the connection
//! task is woken, runs next and writes that one reply: under load that was one `writev` per
//! call (and on loopback the sender's syscall also does the receiver's TCP work). [`Coalesced`]
//! keeps what the connection writes in a buffer and, on the first flush, lets the tasks that
//! are already runnable go first, so the replies they finish meanwhile leave in the same
//! write. Nothing waits on a timer: the deferral lasts one pass of the runtime's queue.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Past this many buffered bytes, writes go to the socket without waiting for a flush.
const MAX_BUFFERED: usize = 64 * 1024;

/// An I/O object whose writes are buffered until a flush, and whose flushes are deferred once
/// behind the runnable tasks.
#[derive(Debug)]
pub struct Coalesced<T> {
    io: T,
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken.
    written: usize,
    /// The current flush already let other tasks run once.
    deferred: bool,
}

impl<T> Coalesced<T> {
    pub fn new(io: T) -> Self {
        Coalesced {
            io,
            buf: Vec::new(),
            written: 0,
            deferred: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesced<T> {
    /// Writes the whole buffer to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room before buffering more: a full buffer goes to the socket first.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.len() >= MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_room(cx))?;
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_room(cx))?;
        let mut n = 0;
        for slice in slices {
            self.buf.extend_from_slice(slice);
            n += slice.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Pin::new(&mut self.io).poll_flush(cx);
        }
        if !self.deferred {
            // Back of the run queue: the tasks already runnable add their writes first.
            self.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(self.poll_drain(cx))?;
        self.deferred = false;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for Coalesced<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_leave_on_flush_in_order() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut io = Coalesced::new(client);
        io.write_all(b"one ").await.unwrap();
        io.write_all(b"two").await.unwrap();
        let mut probe = [0u8; 16];
        let nothing = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            server.read(&mut probe),
        )
        .await;
        assert!(nothing.is_err(), "nothing is sent before a flush");
        io.flush().await.unwrap();
        let mut got = vec![0u8; 7];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"one two");
    }

    #[tokio::test]
    async fn a_full_buffer_is_written_without_a_flush() {
        let (client, mut server) = tokio::io::duplex(4 * MAX_BUFFERED);
        let mut io = Coalesced::new(client);
        let chunk = vec![7u8; MAX_BUFFERED];
        io.write_all(&chunk).await.unwrap();
        io.write_all(b"x").await.unwrap();
        let mut got = vec![0u8; MAX_BUFFERED];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, chunk);
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_buffered() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut io = Coalesced::new(client);
        io.write_all(b"bye").await.unwrap();
        io.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
    }
}
