//! Process counters, rendered in the Prometheus text exposition format (version 0.0.4)
//! together with gauges read from storage at scrape time. Counters carry no device ids.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::storage::Storage;

/// Monotonic counters of one server process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP responses by status class (1xx..5xx at index 0..4).
    pub responses: [AtomicU64; 5],
    /// Devices registered.
    pub registrations: AtomicU64,
    /// Check-ins admitted.
    pub check_ins: AtomicU64,
    /// Stage messages queued.
    pub stage_messages: AtomicU64,
    /// Stage messages rejected as replays.
    pub replays: AtomicU64,
    /// Stage messages the SecAgg+ state machine refused.
    pub protocol_rejections: AtomicU64,
    /// Requests refused by the per-device rate limit.
    pub rate_limited: AtomicU64,
    /// Bytes of stage messages received.
    pub upload_bytes: AtomicU64,
    /// Model downloads served.
    pub model_downloads: AtomicU64,
    /// Rounds completed by this process.
    pub rounds_completed: AtomicU64,
    /// Rounds aborted by this process.
    pub rounds_aborted: AtomicU64,
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Reads one per-population gauge from storage.
type PopulationGauge = fn(&dyn Storage, &str) -> Result<f64>;

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Escapes a label value per the exposition format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Metrics {
    /// Records an HTTP response status.
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        inc(&self.responses[class]);
    }

    /// The exposition text: this process's counters and per-population gauges.
    pub fn render(&self, store: &dyn Storage) -> Result<String> {
        let mut out = String::new();
        family(
            &mut out,
            "covey_http_responses_total",
            "counter",
            "HTTP responses by status class.",
        );
        for (i, c) in self.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "covey_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                read(c)
            );
        }
        let counters: [(&str, &str, &AtomicU64); 10] = [
            (
                "covey_registrations_total",
                "Devices registered.",
                &self.registrations,
            ),
            (
                "covey_check_ins_total",
                "Round check-ins admitted.",
                &self.check_ins,
            ),
            (
                "covey_stage_messages_total",
                "SecAgg+ stage messages queued.",
                &self.stage_messages,
            ),
            (
                "covey_replays_rejected_total",
                "Stage messages rejected as replays.",
                &self.replays,
            ),
            (
                "covey_protocol_rejections_total",
                "Stage messages refused by the SecAgg+ state machine.",
                &self.protocol_rejections,
            ),
            (
                "covey_rate_limited_total",
                "Requests refused by the rate limit.",
                &self.rate_limited,
            ),
            (
                "covey_upload_bytes_total",
                "Bytes of stage messages received.",
                &self.upload_bytes,
            ),
            (
                "covey_model_downloads_total",
                "Model versions downloaded.",
                &self.model_downloads,
            ),
            (
                "covey_rounds_completed_total",
                "Rounds completed by this process.",
                &self.rounds_completed,
            ),
            (
                "covey_rounds_aborted_total",
                "Rounds aborted by this process.",
                &self.rounds_aborted,
            ),
        ];
        for (name, help, c) in counters {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", read(c));
        }
        self.render_populations(&mut out, store)?;
        Ok(out)
    }

    fn render_populations(&self, out: &mut String, store: &dyn Storage) -> Result<()> {
        let populations = store.populations()?;
        let gauges: [(&str, &str, PopulationGauge); 4] = [
            ("covey_devices", "Registered devices.", |s, p| {
                Ok(s.device_count(p)? as f64)
            }),
            (
                "covey_epsilon_spent",
                "Privacy budget spent (epsilon at the population's delta).",
                |s, p| s.epsilon_spent(p),
            ),
            (
                "covey_model_version",
                "Latest published model version.",
                |s, p| Ok(s.latest_model(p)?.map_or(0, |m| m.version) as f64),
            ),
            (
                "covey_rounds_completed",
                "Completed rounds (all processes).",
                |s, p| Ok(s.ledger(p)?.len() as f64),
            ),
        ];
        for (metric, help, read) in gauges {
            family(out, metric, "gauge", help);
            for p in &populations {
                let value = read(store, &p.name)?;
                let _ = writeln!(out, "{metric}{{population=\"{}\"}} {value}", label(&p.name));
            }
        }
        Ok(())
    }
}
