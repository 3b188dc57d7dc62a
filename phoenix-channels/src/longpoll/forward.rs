//! Requests for a session another replica holds go to that replica, over HTTP.
//!
//! Phoenix reaches a long-poll session on another node through its PubSub (the Redis adapter
//! in a cluster without distributed Erlang). Here the token names the holder's address
//! (`--longpoll-advertise`, signed: see [`super::token`]), so the replica a request lands on
//! forwards it there and streams the answer back. Replicas need only reach each other's HTTP
//! port and share the signing key; nothing else is shared. A forwarded request carries
//! [`FORWARDED`] and is never forwarded again, so two replicas that disagree about an address
//! cannot bounce a request between them.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request, Uri, header};
use axum::response::Response;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Marks a request forwarded by another replica.
pub(crate) const FORWARDED: &str = "x-phoenix-longpoll-forwarded";

/// Headers a session's request needs at its holder.
const KEPT_HEADERS: [&str; 2] = ["content-type", super::TOKEN_HEADER];

/// Why a request could not be forwarded: the holder is gone, or does not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("the replica holding the session cannot be reached: {0}")]
    Unreachable(#[from] hyper_util::client::legacy::Error),
    #[error("the replica holding the session did not answer in time")]
    Timeout,
    #[error("the holder's address is not a valid authority")]
    Address,
}

pub(crate) struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    /// How long the holder may take to begin its answer: a poll's window and some.
    timeout: Duration,
}

impl Forwarder {
    pub(crate) fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        Forwarder {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends the request (its head `parts`, its body already read) to `holder` and gives its
    /// answer, streamed.
    pub(crate) async fn forward(
        &self,
        holder: &str,
        parts: &Parts,
        body: Bytes,
    ) -> Result<Response, ForwardError> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("http://{holder}{path}")
            .parse()
            .map_err(|_| ForwardError::Address)?;
        let mut request = Request::builder().method(parts.method.clone()).uri(uri);
        for name in KEPT_HEADERS {
            if let Some(value) = parts.headers.get(name) {
                request = request.header(name, value);
            }
        }
        let request = request
            .header(FORWARDED, HeaderValue::from_static("1"))
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|_| ForwardError::Address)?;
        let answer = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| ForwardError::Timeout)??;
        Ok(answer.map(Body::new))
    }
}
