//! The HTTP/2 transport under the gRPC clients: a few connections driven by the `h2` crate,
//! used round robin. A call opens a stream on a shared connection and its caller's task reads
//! the response itself: no request queue task and no task per call in between (tonic's
//! `Channel` has both, and they cost the gateway more CPU per move than its own work).
//!
//! Connections are opened lazily (the gateway starts while the game service is down), with the
//! connect timeout, TCP_NODELAY and HTTP/2 keep-alive pings; a connection that fails is dropped
//! and the next call on its slot opens a new one, so the gateway recovers by itself when the
//! game service returns.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use h2::client::SendRequest;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// HTTP/2 flow-control windows, hyper's client defaults.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// How to reach the game service over HTTP/2.
#[derive(Debug, Clone)]
pub struct H2Config {
    /// `host:port`.
    pub authority: String,
    pub connect_timeout: Duration,
    /// A ping this often; a connection whose ping is not answered within as long is dropped.
    pub keep_alive: Duration,
    pub connections: usize,
}

/// A cloneable `tower::Service` for tonic's generated clients (use `with_origin`).
#[derive(Clone)]
pub struct H2Transport {
    inner: Arc<Inner>,
}

struct Inner {
    config: H2Config,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    /// The open connection, if any.
    sender: std::sync::Mutex<Option<SendRequest<Bytes>>>,
    /// Held while (re)connecting, so that concurrent calls wait for one connection attempt.
    connecting: tokio::sync::Mutex<()>,
}

impl H2Transport {
    pub fn new(config: H2Config) -> Self {
        let slots = (0..config.connections.max(1))
            .map(|_| Slot::default())
            .collect();
        H2Transport {
            inner: Arc::new(Inner {
                config,
                slots,
                next: AtomicUsize::new(0),
            }),
        }
    }
}

impl Inner {
    /// A connection ready for one more stream, opening one if the slot has none (or a dead one).
    async fn ready(&self, slot: &Slot) -> Result<SendRequest<Bytes>, BoxError> {
        if let Some(sender) = cached(slot)
            && let Ok(ready) = sender.ready().await
        {
            return Ok(ready);
        }
        let _connecting = slot.connecting.lock().await;
        // Someone else may have reconnected while this call waited.
        if let Some(sender) = cached(slot)
            && let Ok(ready) = sender.ready().await
        {
            return Ok(ready);
        }
        *slot.sender.lock().expect("slot lock") = None;
        let sender = self.connect().await?;
        *slot.sender.lock().expect("slot lock") = Some(sender.clone());
        Ok(sender.ready().await?)
    }

    async fn connect(&self) -> Result<SendRequest<Bytes>, BoxError> {
        let config = &self.config;
        let handshake = async {
            let tcp = TcpStream::connect(&config.authority).await?;
            tcp.set_nodelay(true)?;
            // hyper's client windows (what tonic's `Channel` used). They also size h2's budget
            // for small DATA frames buffered unread: with the 64 KiB default, ~150 replies
            // waiting for their callers made h2 close the connection (ENHANCE_YOUR_CALM).
            let handshake = h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .handshake(tcp);
            Ok::<_, BoxError>(handshake.await?)
        };
        let (sender, mut connection) = tokio::time::timeout(config.connect_timeout, handshake)
            .await
            .map_err(|_| format!("connecting to {} timed out", config.authority))??;
        let mut ping = connection.ping_pong().expect("taken once");
        let keep_alive = config.keep_alive;
        // Calls wake the connection task to send their request; deferred, it sends the
        // requests of every task already runnable in one write instead of one write each.
        let mut connection = Deferred::new(connection);
        tokio::spawn(async move {
            let pings = async {
                loop {
                    tokio::time::sleep(keep_alive).await;
                    match tokio::time::timeout(keep_alive, ping.ping(h2::Ping::opaque())).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => break err.to_string(),
                        Err(_) => break "keep-alive ping not answered".to_owned(),
                    }
                }
            };
            tokio::select! {
                result = &mut connection => match result {
                    Ok(()) => tracing::debug!("game service connection closed"),
                    Err(err) => tracing::debug!(%err, "game service connection failed"),
                },
                why = pings => tracing::info!(%why, "game service connection dropped"),
            }
        });
        Ok(sender)
    }
}

/// A future that, each time it is woken, lets the tasks already runnable go first.
struct Deferred<F> {
    inner: F,
    yielded: bool,
}

impl<F> Deferred<F> {
    fn new(inner: F) -> Self {
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
            // Back of the run queue (a self-wake is not run ahead of the queue).
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        Pin::new(&mut self.inner).poll(cx)
    }
}

fn cached(slot: &Slot) -> Option<SendRequest<Bytes>> {
    slot.sender.lock().expect("slot lock").clone()
}

impl tower::Service<http::Request<tonic::body::Body>> for H2Transport {
    type Response = http::Response<H2Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is per connection, awaited in the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // Every call of the gateway sends one message: the whole body is at hand.
            let data = body.collect().await?.to_bytes();
            let index = inner.next.fetch_add(1, Ordering::Relaxed) % inner.slots.len();
            let slot = &inner.slots[index];
            let mut sender = inner.ready(slot).await?;
            let (response, mut stream) =
                sender.send_request(http::Request::from_parts(parts, ()), data.is_empty())?;
            if !data.is_empty() {
                stream.send_data(data, true)?;
            }
            let response = response.await?;
            Ok(response.map(|recv| H2Body { recv, done: false }))
        })
    }
}

/// A response body read straight from its HTTP/2 stream: data frames, then the trailers
/// (where gRPC puts the status).
pub struct H2Body {
    recv: h2::RecvStream,
    done: bool,
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.recv.is_end_stream() {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {}
            }
        }
        let trailers = ready!(self.recv.poll_trailers(cx));
        self.done = true;
        Poll::Ready(match trailers {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
