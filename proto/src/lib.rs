//! The `hangman.v1` contract, compiled from `proto/hangman/v1/*.proto`.
//!
//! - [`v1`]: messages, the `HangmanService` client and server, and
//!   [`GameState::snake_name`](v1::GameState::snake_name), the states' one spelling outside
//!   protobuf.
//! - [`is_guess_refusal`]: which of the service's INVALID_ARGUMENT answers is about the guess.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.
//!
//! Code generation runs in `build.rs` with `protox`, so no system `protoc` is needed.

/// Messages, client and server of package `hangman.v1`.
pub mod v1 {
    tonic::include_proto!("hangman.v1");
}

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

/// Whether `status` is the game service's refusal of a guess: INVALID_ARGUMENT "a guess must
/// be exactly one letter a-z, got ...". Its other INVALID_ARGUMENT answers (an empty game id, a
/// fixed word outside test mode) name what they refuse first, and the guess itself comes last,
/// so a guess cannot make one of them look like this. The front ends show only this one to a
/// player as a bad guess.
pub fn is_guess_refusal(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::InvalidArgument && status.message().starts_with("a guess ")
}

#[cfg(test)]
mod tests {
    use super::v1::GameState;

    #[test]
    fn only_the_refusal_of_a_guess_is_a_guess_refusal() {
        use tonic::Status;
        let guess = "a guess must be exactly one letter a-z, got \"the game id is empty\"";
        assert!(super::is_guess_refusal(&Status::invalid_argument(guess)));
        for other in [
            Status::invalid_argument("the game id is empty"),
            Status::invalid_argument(
                "a fixed word is accepted only when the server runs in test mode",
            ),
            Status::not_found(guess),
        ] {
            assert!(!super::is_guess_refusal(&other), "{other:?}");
        }
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
