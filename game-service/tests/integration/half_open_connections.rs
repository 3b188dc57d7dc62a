//! Connections that never finish a request are dropped, and cannot crowd out callers.

use std::net::SocketAddr;
use std::time::Duration;

use hangman_proto::v1::{
    CreateGameRequest, MakeMoveRequest, hangman_service_client::HangmanServiceClient,
};
use service_kit::testing::closed_within;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::support::{Store, server};

/// Opens connections that each stop short of a request: nothing at all, half the HTTP/2
/// preface, the whole preface with no SETTINGS, and half an HTTP/1 request head.
async fn half_open(addr: SocketAddr) -> Vec<TcpStream> {
    let starts: [&[u8]; 4] = [
        b"",
        b"PRI * HTTP/2.0\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
    ];
    let mut streams = Vec::new();
    for start in starts {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(start).await.unwrap();
        streams.push(stream);
    }
    streams
}

#[tokio::test]
async fn half_open_connections_are_dropped_after_the_header_read_timeout_while_a_game_is_played() {
    let server = server(Store::Memory, &["--header-read-timeout", "300ms"]).await;
    let mut stalled = half_open(server.addr()).await;
    let mut client = HangmanServiceClient::connect(server.url()).await.unwrap();
    let game_id = client
        .create_game(CreateGameRequest::default())
        .await
        .unwrap()
        .into_inner()
        .game_id;
    for stream in &mut stalled {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "a connection without a request was held past the header read timeout"
        );
    }
    // The caller's connection delivered requests, so it was not dropped with them.
    let guess = MakeMoveRequest {
        game_id,
        guess: "e".into(),
    };
    client.make_move(guess).await.unwrap();
}

#[tokio::test]
async fn half_open_connections_fill_the_pending_slots_and_a_caller_waits_only_until_they_are_dropped()
 {
    let server = server(
        Store::Memory,
        &[
            "--header-read-timeout",
            "2s",
            "--max-pending-connections",
            "4",
        ],
    )
    .await;
    let _stalled = half_open(server.addr()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A call cannot be answered while its connection waits in the accept queue.
    let mut client = HangmanServiceClient::connect(server.url()).await.unwrap();
    let call = client.create_game(CreateGameRequest::default());
    tokio::pin!(call);
    let early = timeout(Duration::from_millis(500), &mut call).await;
    assert!(early.is_err(), "a connection was admitted past the cap");
    timeout(Duration::from_secs(10), call)
        .await
        .expect("a caller is admitted once the stalled connections are dropped")
        .unwrap();
}
