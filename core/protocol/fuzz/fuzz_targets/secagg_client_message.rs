//! Any bytes into the client-message decoder: no panic, and what decodes re-encodes exactly.
#![no_main]

use covey_protocol::secagg::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ClientMessage::decode(data) {
        assert_eq!(message.encode(), data);
    }
});
