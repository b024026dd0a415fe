//! Shared helpers for Covey's criterion benches (see `benches/benches/`).
#![forbid(unsafe_code)]

use std::process::Command;
use std::time::Instant;

/// Median wall time in seconds of `reps` runs of `f`, each on a fresh `setup()` value that is
/// built outside the timed region.
pub fn median_seconds_batched<S>(
    reps: usize,
    mut setup: impl FnMut() -> S,
    mut f: impl FnMut(S),
) -> f64 {
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let input = setup();
            let start = Instant::now();
            f(input);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median wall time in seconds of `reps` runs of `f`.
pub fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    median_seconds_batched(reps, || (), |()| f())
}

/// Runs a peer baseline script (`python script args...`) and parses the JSON object it
/// prints per line; `None` when the interpreter or the peer library is missing.
pub fn peer_json_lines(
    python: &str,
    script: &str,
    args: &[&str],
) -> Option<Vec<serde_json::Value>> {
    let output = Command::new(python).arg(script).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    )
}
