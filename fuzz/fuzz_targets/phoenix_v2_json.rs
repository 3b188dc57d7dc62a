//! The V2 JSON serializer (`vsn` 2.x): text frames holding a
//! `[join_ref, ref, topic, event, payload]` array.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_channels::serializer::Serializer;

fuzz_target!(|data: &[u8]| {
    hangman_fuzz::fuzz_text_frame(Serializer::V2, data);
});
