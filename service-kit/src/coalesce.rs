//! Batched writes for HTTP/2 connections: replies (or requests) that become ready in the same
//! pass of the runtime's run queue leave in one write.
//!
//! hyper's server runs every call in a task of its own, and h2's client has every caller send
//! on its own task; the connection's own task writes. When a call finishes, it wakes the
//! connection task, and tokio's multi-thread scheduler puts a task woken that way in the
//! worker's LIFO slot: it runs next, writes that one frame and flushes. Under load that is one
//! `writev` per call, and on loopback the sender's syscall also does the receiver's TCP work.
//!
//! The cure is one move: the connection task lets the tasks already runnable go first, so the
//! calls that finish in the same pass add their frames before anything is written (hyper's and
//! h2's connection tasks write every frame that is ready, then flush). Nothing waits on a
//! timer: a reply that finishes alone is delayed by one pass of the run queue, no more. It
//! comes in two forms, for where the connection's future lives:
//!
//! - [`Coalesced`] wraps the connection's I/O, for a server whose connection futures belong
//!   to the library (the game service under tonic). Writes go to a buffer; the first flush of
//!   a batch sends the task behind the runnable ones, the second writes the buffer.
//! - [`Deferred`] wraps the connection's future, for a connection one drives oneself (the
//!   gateway's h2 client connections): each wake, whatever caused it, is deferred once, and
//!   h2 writes through its own frame buffer. In the gateway, at the same CPU per move,
//!   it gave a shorter tail than [`Coalesced`] (`docs/benchmarks.md`).
//!
//! # What this relies on
//!
//! That a task which wakes itself while being polled, then returns `Pending`, is scheduled
//! *behind* the tasks already runnable. tokio does not document this; it holds in tokio 1.54:
//! the task harness hands such a task to the scheduler's `yield_now`
//! (`runtime/task/harness.rs`, `PollFuture::Notified`), which the multi-thread scheduler
//! implements as `schedule_task(task, is_yield: true)`, and a yield is always pushed to the
//! back of the worker's local queue, never into the LIFO slot
//! (`runtime/scheduler/multi_thread/worker.rs`, `schedule_local`). The current-thread
//! scheduler pushes every wake to the back of its queue (and has no LIFO slot, so there the
//! calls already ran first anyway). Were tokio to run a self-woken task at once, only the
//! batching would be lost: each write would happen one poll later, as without these
//! wrappers, and every byte would still leave, in order. The tests below check the batching
//! on the multi-thread scheduler, so a tokio upgrade that changes this shows there.
//! (`tokio::task::yield_now` defers differently, until the driver has been polled; it was no
//! better in the gateway's benchmark.)
//!
//! Once [`MAX_BUFFERED`] bytes wait in [`Coalesced`]'s buffer, the next write first sends them
//! to the I/O, flush or not, so a large reply is not held whole in memory: every write is
//! still copied into the buffer (none goes around it).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes past which a write first sends the buffer on, without waiting for a flush.
pub const MAX_BUFFERED: usize = 64 * 1024;

/// An I/O object whose writes are buffered until a flush, and whose flushes are deferred once
/// behind the runnable tasks. Reads pass through.
#[derive(Debug)]
pub struct Coalesced<IO> {
    io: IO,
    buf: Vec<u8>,
    /// How much of `buf` the I/O has taken.
    written: usize,
    /// The current flush already let the runnable tasks go first.
    deferred: bool,
}

impl<IO> Coalesced<IO> {
    pub fn new(io: IO) -> Self {
        Coalesced {
            io,
            buf: Vec::new(),
            written: 0,
            deferred: false,
        }
    }
}

impl<IO: AsyncWrite + Unpin> Coalesced<IO> {
    /// Writes the whole buffer to the I/O.
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

    /// Makes room before buffering more: a full buffer goes to the I/O first.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.len() >= MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Coalesced<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalesced<IO> {
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
            // To the back of the run queue (see the module comment): the tasks already
            // runnable add their writes first.
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

/// A future polled, each time it is woken, only after the tasks already runnable.
#[derive(Debug)]
pub struct Deferred<F> {
    inner: F,
    /// This wake already let the runnable tasks go first.
    yielded: bool,
}

impl<F> Deferred<F> {
    pub fn new(inner: F) -> Self {
        Deferred {
            inner,
            yielded: false,
        }
    }
}

impl<F: Future + Unpin> Future for Deferred<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.yielded {
            // To the back of the run queue (see the module comment).
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        Pin::new(&mut self.inner).poll(cx)
    }
}

#[cfg(feature = "tonic")]
impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected
    for Coalesced<IO>
{
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn writes_leave_on_flush_in_order() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut io = Coalesced::new(client);
        io.write_all(b"one ").await.unwrap();
        io.write_all(b"two").await.unwrap();
        let mut probe = [0u8; 16];
        let nothing =
            tokio::time::timeout(Duration::from_millis(20), server.read(&mut probe)).await;
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

    /// An I/O that reports each write it is given, as one piece.
    struct CountingIo(mpsc::UnboundedSender<Vec<u8>>);

    impl AsyncWrite for CountingIo {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let _ = self.0.send(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A connection shaped like hyper's and h2's: each time it is polled it writes every reply
    /// that is ready (in one write, as h2 writes its frame buffer), then flushes. It ends when
    /// every call has gone.
    fn connection<IO: AsyncWrite + Unpin>(
        mut io: IO,
        mut replies: mpsc::UnboundedReceiver<&'static [u8]>,
    ) -> impl Future<Output = ()> + Unpin {
        poll_fn(move |cx| {
            let mut batch = Vec::new();
            let mut closed = false;
            loop {
                match replies.poll_recv(cx) {
                    Poll::Ready(Some(reply)) => batch.extend_from_slice(reply),
                    Poll::Ready(None) => {
                        closed = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if !batch.is_empty() {
                let Poll::Ready(Ok(n)) = Pin::new(&mut io).poll_write(cx, &batch) else {
                    panic!("the tests' writes never wait");
                };
                assert_eq!(n, batch.len());
            }
            ready!(Pin::new(&mut io).poll_flush(cx)).unwrap();
            if closed {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    #[derive(Debug, Clone, Copy)]
    enum Wrapper {
        Coalesced,
        Deferred,
    }

    fn spawn_connection(
        wrapper: Wrapper,
        io: CountingIo,
        replies: mpsc::UnboundedReceiver<&'static [u8]>,
    ) -> tokio::task::JoinHandle<()> {
        match wrapper {
            Wrapper::Coalesced => tokio::spawn(connection(Coalesced::new(io), replies)),
            Wrapper::Deferred => tokio::spawn(Deferred::new(connection(io, replies))),
        }
    }

    fn written(writes: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| writes.try_recv().ok()).collect()
    }

    // One worker, as in a pod with one CPU, and so that no other worker takes a task first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn two_replies_that_finish_together_leave_in_one_write() {
        for wrapper in [Wrapper::Coalesced, Wrapper::Deferred] {
            let (write, mut writes) = mpsc::unbounded_channel();
            // Spawned on the worker, as in a server, each task takes the LIFO slot and pushes
            // the one before to the queue: the second call runs first, then the connection,
            // then the first call. So the connection runs between the two calls, as it does
            // when a finished call wakes it into the LIFO slot.
            tokio::spawn(async move {
                let (reply, replies) = mpsc::unbounded_channel();
                let connection = spawn_connection(wrapper, CountingIo(write), replies);
                for text in [&b"first "[..], b"second "] {
                    let reply = reply.clone();
                    tokio::spawn(async move { reply.send(text).unwrap() });
                }
                drop(reply);
                connection.await.unwrap();
            })
            .await
            .unwrap();
            let writes = written(&mut writes);
            assert_eq!(writes.len(), 1, "{wrapper:?}: {writes:?}");
            let both = [&b"first second "[..], b"second first "];
            assert!(both.contains(&&writes[0][..]), "{wrapper:?}: {writes:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_reply_waits_for_no_timer() {
        for wrapper in [Wrapper::Coalesced, Wrapper::Deferred] {
            let (write, mut writes) = mpsc::unbounded_channel();
            let (reply, replies) = mpsc::unbounded_channel();
            let connection = spawn_connection(wrapper, CountingIo(write), replies);
            let start = tokio::time::Instant::now();
            reply.send(&b"alone"[..]).unwrap();
            // With the clock paused, time moves only when every task waits on a timer: a
            // reply held by a timer would arrive later than `start`.
            assert_eq!(writes.recv().await.unwrap(), b"alone", "{wrapper:?}");
            assert_eq!(start.elapsed(), Duration::ZERO, "{wrapper:?}");
            drop(reply);
            connection.await.unwrap();
            assert!(written(&mut writes).is_empty(), "{wrapper:?}");
        }
    }
}
