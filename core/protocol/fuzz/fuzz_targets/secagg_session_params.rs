//! Any bytes into the session-parameter decoder: no panic; accepted parameters are valid and
//! re-encode exactly.
#![no_main]

use covey_protocol::secagg::SessionParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = SessionParams::decode(data) {
        assert!(params.validate().is_ok());
        assert_eq!(params.encode(), data);
    }
});
