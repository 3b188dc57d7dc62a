//! The hard end of `--max-connection-age`.
//!
//! At a connection's maximum age tonic's server retires it gracefully: a GOAWAY, so the client
//! opens no new call on it and reconnects, while the calls already open finish. A grace period
//! then bounds how long those calls (a `WatchGame` stream lasts as long as its game) may keep
//! the connection. tonic 0.14 has a setting for that grace, but with it set the graceful step
//! is skipped: the connection is cut at age + grace with no GOAWAY, failing whatever call is on
//! it. So tonic is given only the age, and [`Aged`] ends the connection's I/O at age + grace:
//! its reads and writes fail from then on, and hyper drops the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tonic::transport::server::Connected;

/// A connection whose I/O fails once its time is up (never, without a limit).
#[derive(Debug)]
pub struct Aged<T> {
    io: T,
    ends: Option<Pin<Box<Sleep>>>,
}

impl<T> Aged<T> {
    /// `limit` from now, if any.
    pub fn new(io: T, limit: Option<Duration>) -> Self {
        Aged {
            io,
            ends: limit.map(|limit| Box::pin(tokio::time::sleep(limit))),
        }
    }

    /// An error once the time is up; until then the timer wakes the caller when it is.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let over = match &mut self.ends {
            Some(ends) => ends.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if over {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection's maximum age and grace are over",
            ));
        }
        Ok(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Aged<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Aged<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write_vectored(cx, slices)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for Aged<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn io_fails_once_the_limit_is_over_and_not_before() {
        let (client, mut peer) = tokio::io::duplex(1024);
        let mut io = Aged::new(client, Some(Duration::from_millis(100)));
        io.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).await.unwrap();
        // A read waiting for data fails when the time is up, woken by the timer.
        let error = io.read(&mut [0u8; 4]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(io.write_all(b"late").await.is_err());
    }

    #[tokio::test]
    async fn without_a_limit_nothing_ends() {
        let (client, mut peer) = tokio::io::duplex(1024);
        let mut io = Aged::new(client, None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        io.write_all(b"still").await.unwrap();
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"still");
    }
}
