//! What the services' tests of [`crate::connections`] share.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Whether the server closes `stream` (EOF or reset) within `within`. Whatever it sends before
/// closing (a 408, say) is read and ignored.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0; 256];
    loop {
        match timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// `count` connections to `addr` that each send `head`, the first lines of a request, and
/// never the rest: the half-open connections a slowloris client holds.
pub async fn half_sent_requests(addr: SocketAddr, head: &[u8], count: usize) -> Vec<TcpStream> {
    let mut stalled = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(head).await.unwrap();
        stalled.push(stream);
    }
    stalled
}

/// Asserts that the server closes every one of `stalled` within `within` (see
/// [`closed_within`]), as it must once the header read timeout has passed.
pub async fn assert_all_closed_within(stalled: &mut [TcpStream], within: Duration) {
    for stream in stalled {
        assert!(
            closed_within(stream, within).await,
            "a half-sent request was held past the header read timeout"
        );
    }
}
