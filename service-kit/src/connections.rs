//! Admission of TCP connections: the slowloris defence.
//!
//! A connection costs memory from the moment it is accepted (hyper's read and write buffers,
//! about 32 KiB in the gateway), yet until its first complete request it has asked for
//! nothing. A client that opens connections and sends half a request, or nothing at all,
//! could hold them forever and exhaust memory and file descriptors. So:
//!
//! - at most [`ConnectionLimits::max_pending`] accepted connections may be waiting for their
//!   first complete request. At the cap, the accept loop stops accepting: new connections
//!   wait in the kernel's accept queue (costing this process nothing) until a slot frees;
//! - a connection whose first request has not arrived within
//!   [`ConnectionLimits::header_read_timeout`] is dropped, which frees its slot;
//! - at most [`ConnectionLimits::max_open`] connections may be open at once, whatever they are
//!   doing: waiting for a request, kept alive between requests (a client that sends one within
//!   the header read timeout each time keeps its connection), or upgraded to a WebSocket. At
//!   that cap, too, the accept loop waits, so no number of clients makes the connections
//!   together cost more than the cap allows.
//!
//! A connection's first request is known by the service, not the socket: whoever serves the
//! connection calls [`FirstRequest::arrived`] for each request (the HTTP server in
//! [`crate::http`] does; for tonic, the request carries the [`FirstRequest`] in its extensions
//! and [`request_arrived`] finds it there).
//!
//! The same wrapper can also end a connection's life: [`Guarded::ending_after`] makes its I/O
//! fail from a deadline on, whatever the connection is doing then (the game service's
//! `--max-connection-age` grace: a retired connection whose calls outlast it is cut).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Limits on connections that have not yet sent a complete request.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a new connection may take to deliver its first complete request (for the
    /// HTTP/1.1 front ends, also each later request's headers).
    pub header_read_timeout: Duration,
    /// Accepted connections that may be waiting for their first request at once.
    pub max_pending: usize,
    /// Connections that may be open at once, in any state.
    pub max_open: usize,
}

/// Hands out accepted connections within [`ConnectionLimits`].
#[derive(Debug, Clone)]
pub struct Admission {
    pending: Arc<Semaphore>,
    open: Arc<Semaphore>,
    header_read_timeout: Duration,
}

impl Admission {
    pub fn new(limits: ConnectionLimits) -> Self {
        Admission {
            // A cap of 0 would never accept anything.
            pending: Arc::new(Semaphore::new(limits.max_pending.max(1))),
            open: Arc::new(Semaphore::new(limits.max_open.max(1))),
            header_read_timeout: limits.header_read_timeout,
        }
    }

    /// Waits for room among the open connections and for a pending slot, then for the next
    /// connection, with `TCP_NODELAY` set (replies are small and written in pieces: Nagle's
    /// algorithm would hold them back).
    pub async fn accept(&self, listener: &TcpListener) -> Guarded<TcpStream> {
        let open = Arc::clone(&self.open)
            .acquire_owned()
            .await
            .expect("the open semaphore is never closed");
        let slot = Arc::clone(&self.pending)
            .acquire_owned()
            .await
            .expect("the pending semaphore is never closed");
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    if let Err(error) = tcp.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    return Guarded::new(tcp, open, slot, self.header_read_timeout);
                }
                // The peer gave up before we took it: nothing to do.
                Err(error) if is_connection_error(&error) => {}
                // Out of file descriptors or memory: retrying at once would spin.
                Err(error) => {
                    tracing::error!(%error, "accept error; pausing for a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The accepted connections as a stream, for tonic's `serve_with_incoming`.
    pub fn incoming(
        self,
        listener: TcpListener,
    ) -> impl Stream<Item = io::Result<Guarded<TcpStream>>> + Send + 'static {
        futures::stream::unfold((self, listener), |(admission, listener)| async move {
            let connection = admission.accept(&listener).await;
            Some((Ok(connection), (admission, listener)))
        })
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Whether a connection's first request has arrived; until it has, the connection holds a
/// pending slot.
#[derive(Debug, Clone)]
pub struct FirstRequest(Arc<FirstRequestState>);

#[derive(Debug)]
struct FirstRequestState {
    arrived: AtomicBool,
    slot: Mutex<Option<OwnedSemaphorePermit>>,
}

impl FirstRequest {
    fn new(slot: OwnedSemaphorePermit) -> Self {
        FirstRequest(Arc::new(FirstRequestState {
            arrived: AtomicBool::new(false),
            slot: Mutex::new(Some(slot)),
        }))
    }

    /// A request of this connection reached the service: the first one frees the pending
    /// slot and lifts the deadline. Cheap on every later request.
    pub fn arrived(&self) {
        if !self.0.arrived.load(Ordering::Relaxed) && !self.0.arrived.swap(true, Ordering::AcqRel) {
            let slot = self.0.slot.lock().map(|mut slot| slot.take());
            drop(slot);
        }
    }

    fn has_arrived(&self) -> bool {
        self.0.arrived.load(Ordering::Acquire)
    }
}

/// Marks the first request of the connection a request came on, when that connection was
/// admitted here (tonic copies a connection's [`Guarded::first_request`] into each request's
/// extensions).
pub fn request_arrived(extensions: &axum::http::Extensions) {
    if let Some(first_request) = extensions.get::<FirstRequest>() {
        first_request.arrived();
    }
}

/// An accepted connection that must deliver its first request before a deadline: until then,
/// a read past the deadline fails, and the server drops the connection. Optionally, its life
/// also has a hard end ([`Guarded::ending_after`]).
#[derive(Debug)]
pub struct Guarded<IO> {
    io: IO,
    first_request: FirstRequest,
    /// `None` once the first request has arrived.
    deadline: Option<Pin<Box<Sleep>>>,
    /// When reads and writes start failing, if ever.
    ends: Option<Pin<Box<Sleep>>>,
    /// The connection's room among the open ones, given back when it is dropped.
    _open: OwnedSemaphorePermit,
}

impl<IO> Guarded<IO> {
    fn new(
        io: IO,
        open: OwnedSemaphorePermit,
        slot: OwnedSemaphorePermit,
        timeout: Duration,
    ) -> Self {
        Guarded {
            io,
            first_request: FirstRequest::new(slot),
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            ends: None,
            _open: open,
        }
    }

    pub fn first_request(&self) -> &FirstRequest {
        &self.first_request
    }

    /// Ends the connection `limit` from now, if any: from then on its reads and writes fail
    /// (`TimedOut`), the server drops it and the calls still on it fail. A connection waiting
    /// for its peer is woken to fail at that moment.
    pub fn ending_after(mut self, limit: Option<Duration>) -> Self {
        self.ends = limit.map(|limit| Box::pin(tokio::time::sleep(limit)));
        self
    }

    /// An error once the connection's life is over; until then its timer will wake the task.
    fn check_life(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let over = match &mut self.ends {
            Some(ends) => ends.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if over {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection's life is over",
            ));
        }
        Ok(())
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = &mut this.deadline {
            if this.first_request.has_arrived() {
                this.deadline = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                tracing::debug!("no complete request within the header read timeout; dropping");
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request within the header read timeout",
                )));
            }
        }
        this.check_life(cx)?;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_life(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check_life(cx)?;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_life(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(feature = "tonic")]
impl<IO> tonic::transport::server::Connected for Guarded<IO> {
    type ConnectInfo = FirstRequest;

    fn connect_info(&self) -> FirstRequest {
        self.first_request.clone()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// `io` as admitted, with its first request in already (so only its life can end it).
    fn admitted(io: DuplexStream) -> Guarded<DuplexStream> {
        let permit = || Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let guarded = Guarded::new(io, permit(), permit(), Duration::from_secs(3600));
        guarded.first_request().arrived();
        guarded
    }

    #[tokio::test(start_paused = true)]
    async fn io_fails_once_the_life_is_over_and_not_before() {
        let (io, mut peer) = tokio::io::duplex(1024);
        let mut io = admitted(io).ending_after(Some(Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(9)).await;
        io.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).await.unwrap();
        // A read waiting for data fails when the time is up, woken by the timer.
        let start = tokio::time::Instant::now();
        let error = io.read(&mut [0u8; 4]).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(io.write_all(b"late").await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_end_nothing_ends() {
        let (io, mut peer) = tokio::io::duplex(1024);
        let mut io = admitted(io).ending_after(None);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        io.write_all(b"still").await.unwrap();
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"still");
    }
}
