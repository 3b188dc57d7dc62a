//! The `hangman.v1` contract, compiled from `proto/hangman/v1/*.proto`.
//!
//! - [`v1`]: messages, the `HangmanService` client and server.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.
//!
//! Code generation runs in `build.rs` with `protox`, so no system `protoc` is needed.

/// Messages, client and server of package `hangman.v1`.
pub mod v1 {
    tonic::include_proto!("hangman.v1");
}

/// The encoded `FileDescriptorSet` of every file in the contract.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hangman_descriptor");
