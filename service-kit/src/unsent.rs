//! Whether a failed gRPC call certainly never reached the server, so that making it again
//! cannot do its work twice: gRPC's transparent retry (proposal A6), which tonic's clients do
//! not have.
//!
//! The case that matters: the game service retires connections by age (a GOAWAY), and a call
//! put on a connection just as the GOAWAY arrives is refused unprocessed. Both front ends make
//! such a call again, once, so that a retirement never costs a player a move.

use std::error::Error;

/// Whether `error` (a tonic `Status`, or a transport's error) says its call was never seen by
/// the server: its connection was refused (nothing listens at the address: a replica that
/// crashed or shut down), hyper cancelled it before sending (its connection was closing), or
/// the server refused its stream unprocessed (REFUSED_STREAM, or a GOAWAY whose last stream
/// came before it: RFC 9113 §8.7). The whole `source()` chain is read.
pub fn never_reached_the_server(error: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        // Only a connection's opening is refused; any other I/O error may have come after
        // the request was sent.
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote());
        }
        cause = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_or_unsent_call_never_reached_the_server() {
        let refused = h2::Error::from(h2::Reason::REFUSED_STREAM);
        assert!(never_reached_the_server(&refused));
        // A stream reset for any other reason may have been played.
        let reset = h2::Error::from(h2::Reason::INTERNAL_ERROR);
        assert!(!never_reached_the_server(&reset));
        let io = std::io::Error::other("connection reset");
        assert!(!never_reached_the_server(&io));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!never_reached_the_server(&reset));
        // Nothing listened: the connection never opened, so no call went over it.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(never_reached_the_server(&refused));
    }

    #[test]
    fn the_cause_is_found_down_the_source_chain() {
        #[derive(Debug)]
        struct Wrapper(h2::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the call failed")
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let wrapped = Wrapper(h2::Error::from(h2::Reason::REFUSED_STREAM));
        assert!(never_reached_the_server(&wrapped));
    }
}
