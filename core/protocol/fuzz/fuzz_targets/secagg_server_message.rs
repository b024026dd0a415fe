//! Any bytes into the server-message decoder: no panic, and what decodes re-encodes exactly.
#![no_main]

use covey_protocol::secagg::ServerMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ServerMessage::decode(data) {
        assert_eq!(message.encode(), data);
    }
});
