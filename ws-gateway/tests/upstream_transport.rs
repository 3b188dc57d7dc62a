//! The HTTP/2 transport under the gateway's gRPC clients, against a real game service.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use ws_gateway::upstream::{H2Config, H2Transport};

/// A transport of one HTTP/2 connection to `authority`, pinging it every `keep_alive`.
fn one_connection_to(authority: &str, keep_alive: Duration) -> H2Transport {
    H2Transport::new(H2Config {
        targets: vec![authority.to_owned()],
        connect_timeout: Duration::from_secs(2),
        keep_alive,
        connections: 1,
        resolve_interval: Duration::from_secs(30),
    })
}

/// Sends a health check on `transport` once it is ready; the returned future is its response.
async fn start_health_check(
    transport: &mut H2Transport,
    authority: &str,
) -> <H2Transport as Service<http::Request<tonic::body::Body>>>::Future {
    transport
        .ready()
        .await
        .unwrap()
        .call(health_check(authority))
}

/// A gRPC health check as raw HTTP/2: an empty `HealthCheckRequest` in one gRPC frame.
fn health_check(authority: &str) -> http::Request<tonic::body::Body> {
    let frame = Bytes::from_static(&[0, 0, 0, 0, 0]);
    http::Request::post(format!("http://{authority}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(frame)))
        .unwrap()
}

#[tokio::test]
async fn many_replies_may_wait_unread_on_one_connection() {
    let games = common::game_service().await;
    let authority = games.addr().to_string();
    let mut transport = one_connection_to(&authority, Duration::from_secs(30));
    // Every call gets its response headers before any body is read: the replies' DATA frames
    // all wait in the connection, as they do under load while the callers are busy.
    let mut pending = Vec::new();
    for _ in 0..400 {
        let call = start_health_check(&mut transport, &authority).await;
        pending.push(tokio::spawn(call));
    }
    let mut responses = Vec::new();
    for call in pending {
        responses.push(call.await.unwrap().expect("response headers"));
    }
    for response in responses {
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.expect("whole reply");
        let trailers = body.trailers().cloned().expect("gRPC trailers");
        assert_eq!(trailers["grpc-status"], "0");
        // SERVING: field 1 = 1, after the 5-byte gRPC frame header.
        assert_eq!(&body.to_bytes()[..], &[0, 0, 0, 0, 2, 8, 1]);
    }
    games.stop().await;
}

#[tokio::test]
async fn a_call_reconnects_after_the_game_service_restarts() {
    let games = common::game_service().await;
    let addr = games.addr();
    let authority = addr.to_string();
    let mut transport = one_connection_to(&authority, Duration::from_secs(30));
    let ok = |response: http::Response<_>| response.status() == 200;
    let first = start_health_check(&mut transport, &authority).await;
    assert!(ok(first.await.expect("first call")));
    games.stop().await;
    let down = start_health_check(&mut transport, &authority).await;
    assert!(down.await.is_err(), "no game service, no response");
    let games = common::game_service_on(&authority).await;
    let again = start_health_check(&mut transport, &authority).await;
    assert!(ok(again.await.expect("a new connection")));
    games.stop().await;
}

#[tokio::test]
async fn a_connection_whose_pings_go_unanswered_is_dropped_after_the_keep_alive() {
    // A peer that completes the HTTP/2 handshake and then reads nothing more: it answers
    // neither the call nor the keep-alive ping.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let silent_peer = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _connection = h2::server::handshake(tcp).await.unwrap();
        std::future::pending::<()>().await;
    });
    let mut transport = one_connection_to(&authority, Duration::from_millis(200));
    let call = start_health_check(&mut transport, &authority).await;
    // A ping after 200 ms, unanswered for 200 ms more: the connection is dropped and the
    // call waiting on it fails, instead of waiting for as long as the peer stays silent.
    let outcome = tokio::time::timeout(Duration::from_secs(5), call).await;
    assert!(
        matches!(outcome, Ok(Err(_))),
        "the call still waits on a silent connection"
    );
    silent_peer.abort();
}

/// A peer that resets the first stream it gets with `first_reset` and answers every later one
/// as a gRPC call that succeeded; it counts the streams it got.
async fn peer_resetting_the_first_stream(
    first_reset: h2::Reason,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let streams = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = streams.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(tcp).await.unwrap();
        while let Some(Ok((_request, mut respond))) = connection.accept().await {
            if counted.fetch_add(1, Ordering::Relaxed) == 0 {
                respond.send_reset(first_reset);
                continue;
            }
            let head = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut body = respond.send_response(head, false).unwrap();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            body.send_trailers(trailers).unwrap();
        }
    });
    (authority, streams)
}

#[tokio::test]
async fn a_call_the_game_service_refused_unprocessed_is_made_again_once() {
    // REFUSED_STREAM: the server never saw the call (as for one a GOAWAY crossed), so the
    // transport sends it again and the caller gets the answer to the second try.
    let (authority, streams) = peer_resetting_the_first_stream(h2::Reason::REFUSED_STREAM).await;
    let mut transport = one_connection_to(&authority, Duration::from_secs(30));
    let call = start_health_check(&mut transport, &authority).await;
    let response = call.await.expect("the second try is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(streams.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_call_reset_for_another_reason_is_not_made_again() {
    // INTERNAL_ERROR: the server may have played the call, so it must not be sent twice.
    let (authority, streams) = peer_resetting_the_first_stream(h2::Reason::INTERNAL_ERROR).await;
    let mut transport = one_connection_to(&authority, Duration::from_secs(30));
    let call = start_health_check(&mut transport, &authority).await;
    assert!(call.await.is_err(), "the reset reaches the caller");
    // A later call shows the peer's count is settled: the failed one was sent once.
    let later = start_health_check(&mut transport, &authority).await;
    later.await.expect("the next call is answered");
    assert_eq!(streams.load(std::sync::atomic::Ordering::Relaxed), 2);
}
