//! Frames that break RFC 6455, written byte by byte on a raw TCP connection: each is answered
//! with a close frame carrying the RFC's code (1002, 1007, 1009), and then an orderly end of the
//! connection, never a drop without a close frame or a reset.
//!
//! These also pin which tungstenite error each broken frame is (`socket::read_error` maps
//! them to close codes): a tungstenite release that reports one differently fails here.

mod common;

use std::time::Duration;

use common::{config, serve};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A guard against a hung test; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client frame: FIN set, `opcode`, masked (unless `masked` is false), any length.
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len @ 126..=0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&MASK);
        frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

const TEXT: u8 = 0x1;
const PING: u8 = 0x9;

/// A heartbeat, well formed: sent right after each bad frame, so that the client still has
/// bytes in flight when the server gives up on it.
fn heartbeat() -> Vec<u8> {
    frame(TEXT, br#"[null,"1","phoenix","heartbeat",{}]"#, true)
}

/// Opens a WebSocket by hand on `addr` and returns the raw connection after the 101.
async fn open(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// What the server sent after the bad frame: the close code of its close frame, then whether
/// the connection ended in order (FIN) and not with a reset.
async fn close_code_then_end(
    tcp: &mut (impl AsyncRead + Unpin),
) -> (u16, Result<(), std::io::Error>) {
    let mut received = Vec::new();
    let code = loop {
        // A server frame (unmasked): [FIN|opcode, length, payload]; the close frame is short.
        if received.len() >= 2 && received.len() >= 2 + usize::from(received[1] & 0x7f) {
            let len = usize::from(received[1] & 0x7f);
            let (opcode, payload) = (received[0] & 0x0f, received[2..2 + len].to_vec());
            received.drain(..2 + len);
            if opcode == 0x8 {
                assert!(payload.len() >= 2, "a close frame with a code");
                break u16::from_be_bytes([payload[0], payload[1]]);
            }
            continue;
        }
        let mut chunk = [0; 1024];
        let read = tokio::time::timeout(PATIENCE, tcp.read(&mut chunk))
            .await
            .expect("the server answers within the test's patience")
            .expect("the connection is not reset before the close frame");
        assert!(read > 0, "the connection ended without a close frame");
        received.extend_from_slice(&chunk[..read]);
    };
    let mut rest = [0; 1024];
    let end = loop {
        match tokio::time::timeout(PATIENCE, tcp.read(&mut rest))
            .await
            .expect("the server ends the connection within the test's patience")
        {
            Ok(0) => break Ok(()),
            Ok(_) => continue,
            Err(err) => break Err(err),
        }
    };
    (code, end)
}

async fn assert_closed_with(bad: Vec<u8>, code: u16, what: &str) {
    let mut config = config();
    config.max_frame_size = 1024;
    let server = serve(config).await;
    let mut tcp = open(server.addr).await;
    let mut bytes = bad;
    bytes.extend(heartbeat());
    tcp.write_all(&bytes).await.unwrap();
    let (received, end) = close_code_then_end(&mut tcp).await;
    assert_eq!(received, code, "{what}");
    assert!(end.is_ok(), "{what}: the connection was reset: {end:?}");
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_gets_1007() {
    assert_closed_with(frame(TEXT, b"[\"\xff\xfe\"]", true), 1007, "bad UTF-8").await;
}

#[tokio::test]
async fn an_unmasked_client_frame_gets_1002() {
    let unmasked = frame(TEXT, br#"[null,"1","phoenix","heartbeat",{}]"#, false);
    assert_closed_with(unmasked, 1002, "unmasked frame").await;
}

#[tokio::test]
async fn reserved_opcodes_get_1002() {
    assert_closed_with(frame(0x3, b"", true), 1002, "reserved data opcode").await;
    assert_closed_with(frame(0xb, b"", true), 1002, "reserved control opcode").await;
}

#[tokio::test]
async fn a_control_frame_over_125_bytes_gets_1002() {
    assert_closed_with(frame(PING, &[b'p'; 126], true), 1002, "126-byte ping").await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_gets_1009_while_the_client_is_still_sending_it() {
    // The server discards what is still coming for up to the close timeout: long enough here
    // for 32 MiB on a busy machine (the client ends its side as soon as it has sent them).
    let mut config = config();
    config.max_frame_size = 1024;
    config.limits.close_timeout = Duration::from_secs(20);
    let server = serve(config).await;
    let (mut reader, mut writer) = open(server.addr).await.into_split();
    // 32 MiB, more than the kernel buffers hold, refused from the frame's header on: the
    // client is still writing the rest while the server closes, as a browser would be.
    let big = frame(TEXT, &vec![b'x'; 32 << 20], true);
    let sending = tokio::spawn(async move {
        writer.write_all(&big).await?;
        // All sent: the client ends its side, as it would after answering the close.
        writer.shutdown().await
    });
    let (code, end) = close_code_then_end(&mut reader).await;
    assert_eq!(code, 1009);
    assert!(end.is_ok(), "the connection was reset: {end:?}");
    let sent = sending.await.unwrap();
    assert!(
        sent.is_ok(),
        "the server reset the connection while the client was sending: {sent:?}"
    );
}

#[tokio::test]
async fn the_socket_path_refuses_requests_that_are_not_websocket_handshakes() {
    let server = serve(config()).await;
    let url = format!("{}/socket/websocket?vsn=2.0.0", server.url());
    let client = reqwest::Client::new();
    let plain = client.get(&url).send().await.unwrap();
    assert_eq!(plain.status().as_u16(), 426, "a plain GET");
    let old_version = client
        .get(&url)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(old_version.status().as_u16(), 400, "version 8");
}
