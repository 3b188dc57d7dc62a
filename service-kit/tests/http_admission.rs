//! The front ends' HTTP server drops half-open connections and caps how many may wait for
//! their first request, while complete requests are served.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use service_kit::ConnectionLimits;
use service_kit::testing::closed_within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// A server of `GET /` on port 0 with the given limits; stops when the test ends.
async fn server(header_read_timeout: Duration, max_pending: usize) -> std::net::SocketAddr {
    server_with(ConnectionLimits {
        header_read_timeout,
        max_pending,
        max_open: 10_000,
    })
    .await
}

async fn server_with(limits: ConnectionLimits) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(|| async { "hello" }));
    tokio::spawn(service_kit::http::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    addr
}

/// Sends a whole `GET /` on `stream` and reads the response head.
async fn get_on(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn half_sent_requests_are_dropped_after_the_header_read_timeout_while_others_are_served() {
    let addr = server(Duration::from_millis(300), 1000).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let mut player = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut player).await.starts_with("HTTP/1.1 200"));
    for stream in &mut slow {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "a half-sent request was still held long after the header read timeout"
        );
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_dropped_after_the_header_read_timeout() {
    let addr = server(Duration::from_millis(300), 1000).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let addr = server(Duration::from_millis(300), 1000).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut stream).await.starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn at_the_pending_cap_new_connections_wait_until_a_slot_frees() {
    // Two silent connections fill both slots for the 2 s header read timeout.
    let addr = server(Duration::from_secs(2), 2).await;
    let _silent = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let early = timeout(Duration::from_millis(500), get_on(&mut third)).await;
    assert!(early.is_err(), "a third connection was served past the cap");
    // Once the silent ones time out, the waiting request is served.
    let late = timeout(Duration::from_secs(10), get_on(&mut third)).await;
    assert!(
        late.expect("served once a slot freed")
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn a_connection_frees_its_slot_with_its_first_request() {
    // One slot and a long timeout: were the slot held after the first request, the second
    // client would wait the whole minute.
    let addr = server(Duration::from_secs(60), 1).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut second = TcpStream::connect(addr).await.unwrap();
    let served = timeout(Duration::from_secs(10), get_on(&mut second)).await;
    assert!(
        served
            .expect("the second client is served")
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn at_the_open_cap_a_new_connection_waits_until_one_closes() {
    // Two keep-alive connections, each sending a request now and then, hold both places.
    let addr = server_with(ConnectionLimits {
        header_read_timeout: Duration::from_secs(60),
        max_pending: 10,
        max_open: 2,
    })
    .await;
    let mut kept = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    for stream in &mut kept {
        assert!(get_on(stream).await.starts_with("HTTP/1.1 200"));
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    let early = timeout(Duration::from_millis(500), get_on(&mut third)).await;
    assert!(early.is_err(), "a third connection was served past the cap");
    // The kept ones are still served.
    assert!(get_on(&mut kept[0]).await.starts_with("HTTP/1.1 200"));
    // One closes: the waiting request is served.
    let [first, _second] = kept;
    drop(first);
    let late = timeout(Duration::from_secs(10), get_on(&mut third)).await;
    assert!(
        late.expect("served once a connection closed")
            .starts_with("HTTP/1.1 200")
    );
}
