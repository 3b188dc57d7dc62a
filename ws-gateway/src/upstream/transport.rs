//! The HTTP/2 transport under the gRPC clients: a few connections driven by the `h2` crate,
//! used round robin. A call opens a stream on a shared connection and its caller's task reads
//! the response itself: no request queue task and no task per call in between (tonic's
//! `Channel` has both, and they cost the gateway more CPU per move than its own work).
//!
//! Connections are opened lazily (the gateway starts while the game service is down), with the
//! connect timeout, TCP_NODELAY and HTTP/2 keep-alive pings; a connection that fails is dropped
//! and the next call on its slot opens a new one, so the gateway recovers by itself when the
//! game service returns.
//!
//! Spreading over replicas. A Kubernetes ClusterIP Service balances connections, not calls:
//! a few long-lived HTTP/2 connections through it may all land on one replica. So the targets'
//! names are resolved here, and the connections are spread over every address they resolve
//! to (a headless Service's name resolves to every ready pod), at least one per address. The
//! names are resolved again every `resolve_interval`, and as soon as a connection is closed
//! under the gateway (the game service's `--max-connection-age` retires connections so that
//! clients do this), so that replicas added or gone are followed. A retired connection fails
//! no call: the game service's GOAWAY stops new calls on it (the next one opens a connection
//! in its place) and lets the open ones finish; a call the GOAWAY crossed, which the service
//! therefore never saw, is made again once on the new connection. A name with one address gets every
//! connection, as does an IP address, which is never resolved.
//!
//! tonic's `Channel::balance_channel` with `Change::Insert/Remove` would balance over the
//! addresses too, but it is the `Channel` this transport replaces for its cost per call.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use h2::client::SendRequest;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use service_kit::coalesce::Deferred;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// HTTP/2 flow-control windows, hyper's client defaults.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// How to reach the game service over HTTP/2.
#[derive(Debug, Clone)]
pub struct H2Config {
    /// `host:port` of each target; a host name is resolved and every address it gives is used.
    pub targets: Vec<String>,
    pub connect_timeout: Duration,
    /// A ping this often; a connection whose ping is not answered within as long is dropped.
    pub keep_alive: Duration,
    /// Connections in all, spread over the addresses (at least one per address).
    pub connections: usize,
    /// How often host names are resolved again.
    pub resolve_interval: Duration,
}

/// A cloneable `tower::Service` for tonic's generated clients (use `with_origin`).
#[derive(Clone)]
pub struct H2Transport {
    inner: Arc<Inner>,
}

struct Inner {
    config: H2Config,
    /// The connections, each with its address; replaced when the addresses change.
    slots: RwLock<Arc<Vec<Slot>>>,
    next: AtomicUsize,
    /// Whether the targets are host names to resolve (IP addresses are used as they are).
    names: bool,
    /// When the names are due to be resolved again, in milliseconds since `epoch`; 0: now.
    resolve_at: AtomicU64,
    resolving: AtomicBool,
    epoch: Instant,
}

/// One connection's place: the addresses it tries, its own first.
#[derive(Clone)]
struct Slot {
    /// Its own address, then the others (tried in turn when the first refuses: a name may
    /// give an address nothing listens on, as `localhost` gives `::1`).
    addrs: Arc<[SocketAddr]>,
    conn: Arc<Conn>,
}

#[derive(Default)]
struct Conn {
    /// The open connection, if any.
    sender: std::sync::Mutex<Option<SendRequest<Bytes>>>,
    /// Held while (re)connecting, so that concurrent calls wait for one connection attempt.
    connecting: tokio::sync::Mutex<()>,
}

impl H2Transport {
    pub fn new(config: H2Config) -> Self {
        let literal: Option<Vec<SocketAddr>> = config
            .targets
            .iter()
            .map(|target| target.parse::<SocketAddr>().ok())
            .collect();
        let (names, slots) = match literal {
            Some(mut addrs) if !addrs.is_empty() => {
                addrs.sort();
                addrs.dedup();
                (false, layout(&addrs, config.connections, &[]))
            }
            _ => (true, Vec::new()),
        };
        H2Transport {
            inner: Arc::new(Inner {
                config,
                slots: RwLock::new(Arc::new(slots)),
                next: AtomicUsize::new(0),
                names,
                resolve_at: AtomicU64::new(0),
                resolving: AtomicBool::new(false),
                epoch: Instant::now(),
            }),
        }
    }
}

/// The slots for `addrs` (sorted, distinct): `connections` in all but at least one per
/// address, spread evenly; a slot of `old` whose address still has room is kept, connection
/// and all.
fn layout(addrs: &[SocketAddr], connections: usize, old: &[Slot]) -> Vec<Slot> {
    let mut old: Vec<&Slot> = old.iter().collect();
    (0..connections.max(addrs.len()))
        .map(|i| {
            let own = i % addrs.len();
            let tried: Vec<SocketAddr> =
                addrs[own..].iter().chain(&addrs[..own]).copied().collect();
            let conn = match old.iter().position(|slot| slot.addrs[0] == addrs[own]) {
                Some(at) => Arc::clone(&old.swap_remove(at).conn),
                None => Arc::default(),
            };
            Slot {
                addrs: tried.into(),
                conn,
            }
        })
        .collect()
}

/// Every address the targets resolve to, sorted and distinct; an error only when none does.
async fn resolve(targets: &[String]) -> Result<Vec<SocketAddr>, BoxError> {
    let mut addrs = Vec::new();
    let mut failure = None;
    for target in targets {
        match tokio::net::lookup_host(target.as_str()).await {
            Ok(found) => addrs.extend(found),
            Err(err) => failure = Some(format!("cannot resolve {target}: {err}")),
        }
    }
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(failure
            .unwrap_or_else(|| format!("{} resolve to no address", targets.join(",")))
            .into());
    }
    Ok(addrs)
}

impl Inner {
    fn current(&self) -> Arc<Vec<Slot>> {
        Arc::clone(&self.slots.read().expect("slots lock"))
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The slots to call on. Names are resolved first when nothing is known yet; when they
    /// are due again, one task resolves them while calls go on over what is known.
    async fn slots(self: &Arc<Self>) -> Result<Arc<Vec<Slot>>, BoxError> {
        let slots = self.current();
        if slots.is_empty() {
            // Nothing known yet (or no address ever found): every call asks.
            self.resolve_now().await?;
            return Ok(self.current());
        }
        if !self.names || self.millis() < self.resolve_at.load(Ordering::Relaxed) {
            return Ok(slots);
        }
        if !self.resolving.swap(true, Ordering::AcqRel) {
            let inner = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(err) = inner.resolve_now().await {
                    tracing::info!(%err, "game service addresses not renewed; keeping the known ones");
                }
                inner.resolving.store(false, Ordering::Release);
            });
        }
        Ok(slots)
    }

    /// Resolves the names and installs the slots for their addresses.
    async fn resolve_now(&self) -> Result<(), BoxError> {
        let resolved = resolve(&self.config.targets).await;
        // Also after a failure: a broken resolver is asked again no sooner than the interval.
        let interval = self.config.resolve_interval.as_millis() as u64;
        self.resolve_at
            .store(self.millis() + interval.max(1), Ordering::Relaxed);
        let addrs = resolved?;
        let mut slots = self.slots.write().expect("slots lock");
        let mut known: Vec<SocketAddr> = slots.iter().map(|slot| slot.addrs[0]).collect();
        known.sort();
        known.dedup();
        if known != addrs {
            tracing::info!(?addrs, "game service addresses");
            *slots = Arc::new(layout(&addrs, self.config.connections, &slots));
        }
        Ok(())
    }

    /// A connection ready for one more stream, opening one if the slot has none (or a dead one).
    async fn ready(&self, slot: &Slot) -> Result<SendRequest<Bytes>, BoxError> {
        let conn = &slot.conn;
        if let Some(sender) = cached(conn)
            && let Ok(ready) = sender.ready().await
        {
            return Ok(ready);
        }
        let _connecting = conn.connecting.lock().await;
        // Someone else may have reconnected while this call waited.
        let dead = match cached(conn) {
            Some(sender) => match sender.ready().await {
                Ok(ready) => return Ok(ready),
                Err(_) => true,
            },
            None => false,
        };
        if dead {
            // Closed under us (retired by its age, or the replica went away): the replicas
            // may have changed, so the names are due again.
            self.resolve_at.store(0, Ordering::Relaxed);
        }
        *conn.sender.lock().expect("slot lock") = None;
        let sender = self.connect(&slot.addrs).await?;
        *conn.sender.lock().expect("slot lock") = Some(sender.clone());
        Ok(sender.ready().await?)
    }

    async fn connect(&self, addrs: &[SocketAddr]) -> Result<SendRequest<Bytes>, BoxError> {
        let config = &self.config;
        let handshake = async {
            // Its own address first, then the others in turn (the last error if none answers).
            let tcp = TcpStream::connect(addrs).await?;
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
            .map_err(|_| format!("connecting to {} timed out", addrs[0]))??;
        let mut ping = connection.ping_pong().expect("taken once");
        let keep_alive = config.keep_alive;
        // Calls wake the connection task to send their request; deferred, it sends the
        // requests of every task already runnable in one write instead of one write each
        // (service-kit's `coalesce` module says what this relies on).
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

    /// A call on `slot`, made again (once, on the slot's new connection) if its connection
    /// was going away and the game service never saw it: a retired connection's GOAWAY can
    /// cross a call that was just put on it (`service_kit::unsent`).
    async fn send(
        &self,
        slot: &Slot,
        request: http::Request<()>,
        data: Bytes,
    ) -> Result<http::Response<H2Body>, BoxError> {
        let again = request_like(&request);
        match self.send_once(slot, request, data.clone()).await {
            Err(error) if service_kit::unsent::never_reached_the_server(&*error) => {
                tracing::debug!(%error, "call made again: the game service never saw it");
                self.send_once(slot, again, data).await
            }
            answer => answer,
        }
    }

    async fn send_once(
        &self,
        slot: &Slot,
        request: http::Request<()>,
        data: Bytes,
    ) -> Result<http::Response<H2Body>, BoxError> {
        let mut sender = self.ready(slot).await?;
        let (response, mut stream) = sender.send_request(request, data.is_empty())?;
        if !data.is_empty() {
            stream.send_data(data, true)?;
        }
        let response = response.await?;
        Ok(response.map(|recv| H2Body { recv, done: false }))
    }
}

impl H2Transport {
    /// How many connection slots there are now (resolving the names first if nothing is known
    /// yet): at least one per address of the game service.
    pub(super) async fn slot_count(&self) -> Result<usize, BoxError> {
        Ok(self.inner.slots().await?.len())
    }

    /// Opens a long-lived stream (the `Play` stream of moves) on connection slot `lane`, modulo
    /// the slots: the request's head goes out and its body stays open for the caller to write.
    /// Also returns the connection's handle, whose readiness tells the stream's owner when the
    /// connection is being retired (a GOAWAY makes it fail).
    pub(super) async fn open_stream(
        &self,
        lane: usize,
        request: http::Request<()>,
    ) -> Result<OpenStream, BoxError> {
        let slots = self.inner.slots().await?;
        let slot = &slots[lane % slots.len()];
        let again = request_like(&request);
        let mut connection = self.inner.ready(slot).await?;
        let (response, body) = connection.send_request(request, false)?;
        match response.await {
            Ok(response) => Ok((connection, body, response)),
            // A GOAWAY crossed the new stream: it never reached the game service.
            Err(error) if service_kit::unsent::never_reached_the_server(&error) => {
                let mut connection = self.inner.ready(slot).await?;
                let (response, body) = connection.send_request(again, false)?;
                Ok((connection, body, response.await?))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// A stream [`H2Transport::open_stream`] opened: its connection, its request body, the
/// response's head (its body is the stream's replies).
pub(super) type OpenStream = (
    SendRequest<Bytes>,
    h2::SendStream<Bytes>,
    http::Response<h2::RecvStream>,
);

/// A copy of `request`'s head (h2 reads no extensions).
fn request_like(request: &http::Request<()>) -> http::Request<()> {
    let mut copy = http::Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

fn cached(conn: &Conn) -> Option<SendRequest<Bytes>> {
    conn.sender.lock().expect("slot lock").clone()
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
            let slots = inner.slots().await?;
            let index = inner.next.fetch_add(1, Ordering::Relaxed) % slots.len();
            let request = http::Request::from_parts(parts, ());
            inner.send(&slots[index], request, data).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn owners(slots: &[Slot]) -> Vec<SocketAddr> {
        slots.iter().map(|slot| slot.addrs[0]).collect()
    }

    #[test]
    fn connections_are_spread_over_every_address_at_least_one_each() {
        let (a, b, c) = (addr("10.0.0.1:1"), addr("10.0.0.2:1"), addr("10.0.0.3:1"));
        let slots = layout(&[a, b], 4, &[]);
        assert_eq!(owners(&slots), [a, b, a, b]);
        // Each slot falls back on the other addresses, its own first.
        assert_eq!(&slots[1].addrs[..], [b, a]);
        assert_eq!(owners(&layout(&[a, b, c], 2, &[])), [a, b, c]);
        assert_eq!(owners(&layout(&[a], 4, &[])), [a, a, a, a]);
    }

    #[test]
    fn a_new_layout_keeps_the_connections_of_the_addresses_still_there() {
        let (a, b, c) = (addr("10.0.0.1:1"), addr("10.0.0.2:1"), addr("10.0.0.3:1"));
        let old = layout(&[a, b], 4, &[]);
        let new = layout(&[b, c], 4, &old);
        assert_eq!(owners(&new), [b, c, b, c]);
        assert!(Arc::ptr_eq(&new[0].conn, &old[1].conn));
        assert!(Arc::ptr_eq(&new[2].conn, &old[3].conn));
        let kept = |slot: &Slot| old.iter().any(|o| Arc::ptr_eq(&o.conn, &slot.conn));
        assert!(!kept(&new[1]) && !kept(&new[3]), "c's connections are new");
    }

    #[tokio::test]
    async fn ip_addresses_are_used_as_they_are_and_names_resolved() {
        let config = |targets: &[&str]| H2Config {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            connect_timeout: Duration::from_secs(1),
            keep_alive: Duration::from_secs(30),
            connections: 2,
            resolve_interval: Duration::from_secs(30),
        };
        let fixed = H2Transport::new(config(&["127.0.0.2:7", "127.0.0.1:7"]));
        assert!(!fixed.inner.names);
        let owned = owners(&fixed.inner.current());
        assert_eq!(owned, [addr("127.0.0.1:7"), addr("127.0.0.2:7")]);
        let named = H2Transport::new(config(&["localhost:7"]));
        assert!(named.inner.names && named.inner.current().is_empty());
        let slots = named.inner.slots().await.unwrap();
        assert!(
            owners(&slots).contains(&addr("127.0.0.1:7")),
            "{:?}",
            owners(&slots)
        );
    }
}
