//! Any sequence of frames into a live server at its first stage: errors, never panics.
#![no_main]

use covey_protocol::secagg::{MemberId, Server, SessionId, SessionParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = SessionParams {
        session_id: SessionId([7; 32]),
        bits: 16,
        dimension: 8,
        degree: 4,
        threshold: 2,
        roster: (0..8).map(MemberId).collect(),
        signing_keys: None,
    };
    let Ok(mut server) = Server::new(params) else { return };
    // Frames are length-prefixed by one byte so the fuzzer can send several messages.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let _ = server.receive_bytes(&tail[..len]);
        rest = &tail[len..];
    }
    let _ = server.close_stage();
});
