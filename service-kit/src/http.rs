//! The front ends' HTTP/1.1 server.
//!
//! `axum::serve` sets no timer on hyper, so hyper's header-read timeout never runs there, and it
//! admits any number of connections: a half-sent request was held forever. This loop is
//! `axum::serve` with the limits of [`ConnectionLimits`]:
//!
//! - [`Admission`] caps the connections waiting for their first request, and drops one whose
//!   first request does not come within the header-read timeout;
//! - hyper's `header_read_timeout` bounds every later request's headers too, and so how long
//!   an idle keep-alive connection is kept;
//! - [`Admission`] caps the connections open at once too, an upgraded one (a WebSocket)
//!   included until it closes; its own server may count it again under a cap of its own.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a load balancer in front ends.

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use crate::connections::{Admission, ConnectionLimits};

/// Serves `service` on `listener` until `shutdown` resolves; then stops accepting, lets each
/// connection finish the request it is serving and returns when all are closed (the caller
/// bounds how long it waits).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let admission = Admission::new(limits);
    let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            connection = admission.accept(&listener) => connection,
            () = &mut shutdown => break,
        };
        let first_request = connection.first_request().clone();
        let service = service.clone();
        let per_request = hyper::service::service_fn(move |request: Request<Incoming>| {
            first_request.arrived();
            service.clone().oneshot(request.map(Body::new))
        });
        let connection = http
            .serve_connection_with_upgrades(TokioIo::new(connection), per_request)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    // Closing the listener now refuses new connections at once instead of leaving them
    // queued until the last old one closes.
    drop(listener);
    graceful.shutdown().await;
}
