//! The V1 serializer (`vsn` absent or 1.x): text frames holding a
//! `{"topic","event","payload","ref","join_ref"}` object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_channels::serializer::Serializer;

fuzz_target!(|data: &[u8]| {
    hangman_fuzz::fuzz_text_frame(Serializer::V1, data);
    // A V1 connection takes no binary frame, whatever it holds.
    assert!(Serializer::V1.decode_binary(data).is_err());
});
