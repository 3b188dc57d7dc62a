//! The `hangman.v1` contract, compiled from `proto/hangman/v1/*.proto`.
//!
//! - [`v1`]: messages, the `HangmanService` client and server, and
//!   [`GameState::snake_name`](v1::GameState::snake_name), the states' one spelling outside
//!   protobuf.
//! - [`invalid_field`], [`is_guess_refusal`]: an INVALID_ARGUMENT names the field it refuses
//!   (`google.rpc.BadRequest`), so a refused guess is told from the others without its text.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.
//!
//! Code generation runs in `build.rs` with `protox`, so no system `protoc` is needed.

/// Messages, client and server of package `hangman.v1`.
pub mod v1 {
    tonic::include_proto!("hangman.v1");
}

use tonic_types::{ErrorDetails, StatusExt};

/// The encoded `FileDescriptorSet` of every file in the contract.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hangman_descriptor");

impl v1::GameState {
    /// The state's name in snake case (`good_guess`): the enum value's name without its
    /// `GAME_STATE_` prefix, lower-cased. It is how the channels' JSON, the metrics' labels
    /// and the logs of every service spell a state (docs/design.md §3).
    pub fn snake_name(self) -> &'static str {
        match self {
            v1::GameState::Unspecified => "unspecified",
            v1::GameState::Initializing => "initializing",
            v1::GameState::GoodGuess => "good_guess",
            v1::GameState::BadGuess => "bad_guess",
            v1::GameState::AlreadyUsed => "already_used",
            v1::GameState::Won => "won",
            v1::GameState::Lost => "lost",
        }
    }
}

/// An INVALID_ARGUMENT answer that names the request field it refuses, in the standard
/// `google.rpc.BadRequest` detail (grpcurl shows it), so that a client can tell a refused
/// guess from a refused game id without reading the message.
pub fn invalid_field(field: &str, message: impl Into<String>) -> tonic::Status {
    let message = message.into();
    let details = ErrorDetails::with_bad_request_violation(field, message.clone());
    tonic::Status::with_error_details(tonic::Code::InvalidArgument, message, details)
}

/// Whether `status` is the game service's refusal of a guess: INVALID_ARGUMENT naming the
/// field `guess` ([`invalid_field`]). The front ends show only this one to a player as a bad
/// guess; the service's other INVALID_ARGUMENT answers (an empty game id, a fixed word outside
/// test mode) name their own fields.
pub fn is_guess_refusal(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::InvalidArgument
        && status
            .get_error_details()
            .bad_request()
            .is_some_and(|request| {
                request
                    .field_violations
                    .iter()
                    .any(|violation| violation.field == "guess")
            })
}

#[cfg(test)]
mod tests {
    use super::v1::GameState;

    #[test]
    fn only_the_refusal_of_a_guess_is_a_guess_refusal() {
        use tonic::Status;
        // The message does not decide: only the field named in the details does.
        let text = "a guess must be exactly one letter a-z, got \"xy\"";
        assert!(super::is_guess_refusal(&super::invalid_field(
            "guess", "no"
        )));
        for other in [
            super::invalid_field("game_id", text),
            super::invalid_field("word", "a fixed word needs test mode"),
            Status::invalid_argument(text),
            Status::not_found(text),
        ] {
            assert!(!super::is_guess_refusal(&other), "{other:?}");
        }
    }

    #[test]
    fn a_refused_field_survives_the_trip_through_grpc_metadata() {
        let sent = super::invalid_field("guess", "a guess must be one letter");
        let response = sent.into_http::<()>();
        let received = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(received.message(), "a guess must be one letter");
        assert!(super::is_guess_refusal(&received));
    }

    #[test]
    fn a_snake_name_is_the_protobuf_name_without_its_prefix_in_lower_case() {
        for value in 0.. {
            let Ok(state) = GameState::try_from(value) else {
                assert!(value > 6, "every value up to the last is a state");
                break;
            };
            let protobuf = state.as_str_name();
            let expected = protobuf.strip_prefix("GAME_STATE_").unwrap().to_lowercase();
            assert_eq!(state.snake_name(), expected);
        }
    }
}
