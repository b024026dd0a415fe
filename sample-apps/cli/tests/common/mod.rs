//! Shared helpers of the CLI's integration tests: run `covey device` against a store
//! directory with a test passphrase, and read its JSON output.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::process::{Command, Output};

/// The environment variable the tests pass the passphrase in.
pub const VAR: &str = "COVEY_TEST_PASSPHRASE";

/// `covey device --dir DIR --passphrase-env VAR ARGS...` with the test passphrase.
pub fn covey(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_covey"))
        .env(VAR, "correct horse battery staple")
        .args(["device", "--dir"])
        .arg(dir)
        .args(["--passphrase-env", VAR])
        .args(args)
        .output()
        .expect("run covey")
}

/// The JSON a successful command printed (fails the test with its stderr otherwise).
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}
