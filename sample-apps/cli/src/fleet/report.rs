//! What `covey fleet` reports: the per-round table, `--json`, and the `--report` HTML page
//! (self-contained, inline SVG plots of quality, ε and bytes per round).

use std::fmt::Write as _;

use covey_model::Metrics;
use covey_protocol::dp::AdaptiveClipping;
use serde::Serialize;

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// What was simulated.
    pub settings: Settings,
    /// One entry per round.
    pub rounds: Vec<RoundRow>,
    /// Popularity, centralized MF and the untrained model, on the same held-out items.
    pub baselines: Baselines,
    /// The federated model after the last round, and its ratios to the baselines.
    #[serde(rename = "final")]
    pub final_: Final,
}

/// The simulation's settings.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `--seed`.
    pub seed: u64,
    /// Devices (one member each).
    pub devices: usize,
    /// Devices whose member granted federated-training consent.
    pub consenting: usize,
    /// Devices whose store yields no event: their SDK declines every round (too few
    /// examples), so they are never among a round's available devices.
    pub without_history: usize,
    /// Rounds asked for.
    pub rounds: u32,
    /// Per-device dropout probability.
    pub dropout: f64,
    /// Consent rate asked for.
    pub consent_rate: f64,
    /// Target ε (`None`: no meaningful DP, central mode with negligible noise).
    pub epsilon_target: Option<f64>,
    /// δ.
    pub delta: f64,
    /// Noise multiplier of each round's surviving sum.
    pub noise_multiplier: f64,
    /// L2 clip of one update (with adaptive clipping: of the first round).
    pub clip_norm: f64,
    /// `--adaptive-clip`: the clip's target quantile, learning rate and count noise.
    pub adaptive_clip: Option<AdaptiveClipping>,
    /// Cohort size (`cohort_max`).
    pub cohort: usize,
    /// Devices that try each round (the server selects the cohort among those checking in).
    pub available_per_round: usize,
    /// Catalog items.
    pub items: usize,
    /// Length of every upload before encoding (`covey_model::UpdateLayout`).
    pub parameters: usize,
    /// Server optimizer and learning rate.
    pub optimizer: String,
    /// Storage backend of the server.
    pub backend: String,
    /// Data source (`synthetic` or the interaction file).
    pub data: String,
    /// Seconds to generate the data, create the devices and train the centralized model.
    pub setup_seconds: SetupSeconds,
}

/// Where the setup time went.
#[derive(Debug, Clone, Serialize)]
pub struct SetupSeconds {
    /// Generating or loading the data and splitting it.
    pub data: f64,
    /// Creating every device (store, events, consent).
    pub devices: f64,
    /// Training the centralized reference.
    pub centralized: f64,
}

/// Ranking quality on the held-out items.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Quality {
    /// HR@10.
    pub hr_at_10: f64,
    /// NDCG@10.
    pub ndcg_at_10: f64,
    /// Members evaluated.
    pub members: usize,
}

impl From<Metrics> for Quality {
    fn from(m: Metrics) -> Self {
        Quality {
            hr_at_10: m.hr_at_10,
            ndcg_at_10: m.ndcg_at_10,
            members: m.members,
        }
    }
}

/// The baselines measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Baselines {
    /// Items ranked by training popularity.
    pub popularity: Quality,
    /// The same MF trained centrally on every member's training history.
    pub centralized: Quality,
    /// The server's initial model (version 0).
    pub initial: Quality,
}

/// One round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundRow {
    /// 1-based round number of this run.
    pub round: u32,
    /// The server's round id.
    pub id: i64,
    /// `completed` or `aborted`.
    pub status: String,
    /// Why it was aborted.
    pub reason: Option<String>,
    /// Devices that tried today.
    pub available: usize,
    /// Devices the SDK itself declined (no consent, ...).
    pub ineligible: usize,
    /// Why (distinct reasons with counts).
    pub ineligible_reasons: Vec<String>,
    /// Devices that checked in.
    pub checked_in: u32,
    /// Devices selected into the cohort.
    pub cohort: u32,
    /// Members whose update entered the aggregate.
    pub participants: usize,
    /// Devices that checked in but were not selected.
    pub not_selected: usize,
    /// Devices that lost the network during the round.
    pub dropouts: usize,
    /// Devices that failed otherwise.
    pub failed: usize,
    /// Why they failed (distinct messages with counts).
    pub failures: Vec<String>,
    /// Bytes one member uploaded (identical for every member).
    pub bytes_per_member: u64,
    /// Wall seconds of the round.
    pub seconds: f64,
    /// ε spent by the population after this round.
    pub epsilon: f64,
    /// The L2 clip of the round's DP plan (`None` if its cohort was never fixed).
    pub clip: Option<f64>,
    /// With adaptive clipping: the noised fraction of participants whose update was within
    /// the clip (the count that set the next round's clip).
    pub within_clip: Option<f64>,
    /// The published model's quality (the previous one when the round aborted).
    pub quality: Quality,
    /// Where the time went.
    pub timings: Timings,
}

/// Mean device-side times of the members that completed, and the server's times.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Local training (solve + epochs), ms.
    pub train_ms: f64,
    /// DP encoding (clip, rotate, quantize, noise), ms.
    pub encode_ms: f64,
    /// SecAgg+ client computation, ms.
    pub secagg_client_ms: f64,
    /// Time in requests to the server (uploads, downloads, polling), ms.
    pub network_ms: f64,
    /// Of `network_ms`: the masked-input upload's request, ms.
    pub upload_ms: f64,
    /// Check-in window, ms.
    pub check_in_ms: f64,
    /// Server: unmasking the sum, ms.
    pub unmask_ms: f64,
    /// Server: DP decoding, ms.
    pub decode_ms: f64,
    /// Server: optimizer step, ms.
    pub optimizer_ms: f64,
}

/// The end result.
#[derive(Debug, Clone, Serialize)]
pub struct Final {
    /// Rounds that completed.
    pub rounds_completed: usize,
    /// The last published model's quality.
    pub federated: Quality,
    /// Federated NDCG@10 over centralized NDCG@10.
    pub ndcg_ratio_to_centralized: f64,
    /// Federated NDCG@10 over popularity's.
    pub ndcg_ratio_to_popularity: f64,
    /// ε spent at δ.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// Seconds of all rounds.
    pub rounds_seconds: f64,
}

/// The clip setting as the table's header states it.
fn clip_label(s: &Settings) -> String {
    match s.adaptive_clip {
        Some(a) => format!(
            "adaptive clip from {} towards the {} quantile of the update norms (η {}, count \
             noise {} members)",
            s.clip_norm, a.target_quantile, a.learning_rate, a.count_stddev
        ),
        None => format!("clip {}", s.clip_norm),
    }
}

/// The ε column: the ledger's figure under a DP target; without one the negligible noise
/// makes it astronomically large and meaningless, so the column shows "-" (the final line
/// still prints the ledger's figure).
fn epsilon_cell(s: &Settings, epsilon: f64) -> String {
    match s.epsilon_target {
        Some(_) => format!("{epsilon:.3}"),
        None => "-".to_owned(),
    }
}

/// `x` with `digits` significant digits (at least none after the point): 2000, 21.70,
/// 0.5000.
fn significant(x: f64, digits: i32) -> String {
    let magnitude = if x == 0.0 {
        0
    } else {
        x.abs().log10().floor() as i32
    };
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    format!("{x:.decimals$}")
}

/// The per-round table as text.
pub fn table(report: &FleetReport) -> String {
    let s = &report.settings;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "covey fleet: {} devices ({} consenting, {} without readable history), {} items, {} \
         parameters, {} server; cohort {}, {} trying per round; {}; {}; seed {}",
        s.devices,
        s.consenting,
        s.without_history,
        s.items,
        s.parameters,
        s.backend,
        s.cohort,
        s.available_per_round,
        match s.epsilon_target {
            Some(e) => format!(
                "DP target ε = {e} at δ = {:e} (noise multiplier {:.3}, {})",
                s.delta,
                s.noise_multiplier,
                clip_label(s)
            ),
            None => format!("no DP target ({}, negligible noise)", clip_label(s)),
        },
        s.optimizer,
        s.seed
    );
    let _ = writeln!(
        out,
        "{:>5} {:>9} {:>8} {:>6} {:>6} {:>8} {:>8} {:>9} {:>10} {:>9} {:>7} {:>7} {:>8} {:>8}",
        "round",
        "available",
        "checkin",
        "cohort",
        "parts",
        "dropouts",
        "failed",
        "bytes/mbr",
        "seconds",
        "clip",
        "within",
        "ε",
        "HR@10",
        "NDCG@10"
    );
    for r in &report.rounds {
        let _ = writeln!(
            out,
            "{:>5} {:>9} {:>8} {:>6} {:>6} {:>8} {:>8} {:>9} {:>10.2} {:>9} {:>7} {:>7} {:>8.4} \
             {:>8.4}{}",
            r.round,
            r.available,
            r.checked_in,
            r.cohort,
            r.participants,
            r.dropouts,
            r.failed,
            r.bytes_per_member,
            r.seconds,
            r.clip.map_or_else(|| "-".to_owned(), |c| significant(c, 4)),
            r.within_clip
                .map_or_else(|| "-".to_owned(), |b| format!("{b:.3}")),
            epsilon_cell(s, r.epsilon),
            r.quality.hr_at_10,
            r.quality.ndcg_at_10,
            r.reason
                .as_deref()
                .map(|why| format!("  aborted: {why}"))
                .unwrap_or_default()
        );
        for why in &r.failures {
            let _ = writeln!(out, "      failed: {why}");
        }
    }
    let b = &report.baselines;
    let f = &report.final_;
    let _ = writeln!(
        out,
        "baselines: popularity HR@10 {:.4} NDCG@10 {:.4}; centralized MF HR@10 {:.4} NDCG@10 \
         {:.4}; untrained NDCG@10 {:.4}",
        b.popularity.hr_at_10,
        b.popularity.ndcg_at_10,
        b.centralized.hr_at_10,
        b.centralized.ndcg_at_10,
        b.initial.ndcg_at_10
    );
    let _ = writeln!(
        out,
        "final: federated NDCG@10 {:.4} = {:.1}% of centralized, {:.2}× popularity; {}; {} \
         rounds in {:.1} s",
        f.federated.ndcg_at_10,
        100.0 * f.ndcg_ratio_to_centralized,
        f.ndcg_ratio_to_popularity,
        match s.epsilon_target {
            Some(_) => format!("ε {:.3} at δ {:e}", f.epsilon, f.delta),
            None => format!(
                "no DP (the ledger's ε {:.3e} at δ {:e})",
                f.epsilon, f.delta
            ),
        },
        f.rounds_completed,
        f.rounds_seconds
    );
    if let Some(last) = report.rounds.iter().rev().find(|r| r.status == "completed") {
        let t = &last.timings;
        let _ = writeln!(
            out,
            "last round, per device (mean): train {:.1} ms, encode {:.1} ms, SecAgg+ client {:.1} \
             ms, network {:.1} ms (upload {:.1} ms); server: check-in {:.0} ms, unmask {:.1} ms, \
             decode {:.1} ms, optimizer {:.2} ms",
            t.train_ms,
            t.encode_ms,
            t.secagg_client_ms,
            t.network_ms,
            t.upload_ms,
            t.check_in_ms,
            t.unmask_ms,
            t.decode_ms,
            t.optimizer_ms
        );
    }
    out
}

/// One plotted series.
struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

/// The self-contained HTML page.
pub fn html(report: &FleetReport) -> String {
    let rounds: Vec<f64> = report.rounds.iter().map(|r| f64::from(r.round)).collect();
    let last = rounds.last().copied().unwrap_or(1.0);
    let flat = |y: f64| vec![(0.0, y), (last, y)];
    let b = &report.baselines;
    let quality = svg_plot(
        "NDCG@10 on held-out purchases",
        &[
            Series {
                name: "federated",
                colour: "#1f77b4",
                points: std::iter::once((0.0, b.initial.ndcg_at_10))
                    .chain(
                        report
                            .rounds
                            .iter()
                            .map(|r| (f64::from(r.round), r.quality.ndcg_at_10)),
                    )
                    .collect(),
                dashed: false,
            },
            Series {
                name: "centralized MF",
                colour: "#2ca02c",
                points: flat(b.centralized.ndcg_at_10),
                dashed: true,
            },
            Series {
                name: "popularity",
                colour: "#d62728",
                points: flat(b.popularity.ndcg_at_10),
                dashed: true,
            },
        ],
    );
    let epsilon = svg_plot(
        "ε spent (cumulative)",
        &[Series {
            name: "ε",
            colour: "#9467bd",
            points: report
                .rounds
                .iter()
                .map(|r| (f64::from(r.round), r.epsilon))
                .collect(),
            dashed: false,
        }],
    );
    let bytes = svg_plot(
        "bytes uploaded per member",
        &[Series {
            name: "bytes",
            colour: "#ff7f0e",
            points: report
                .rounds
                .iter()
                .map(|r| (f64::from(r.round), r.bytes_per_member as f64))
                .collect(),
            dashed: false,
        }],
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>covey fleet report</title><style>body{{font-family:sans-serif;margin:2em;\
         max-width:60em}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}\
         svg{{margin:0.5em 1em 0.5em 0}}</style></head><body>\n<h1>covey fleet</h1>\n\
         <pre>{}</pre>\n{quality}\n{epsilon}\n{bytes}\n</body></html>\n",
        escape(&table(report))
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line plot with axes, ticks at the extremes and a legend.
fn svg_plot(title: &str, series: &[Series<'_>]) -> String {
    const W: f64 = 460.0;
    const H: f64 = 260.0;
    const L: f64 = 60.0;
    const R: f64 = 20.0;
    const T: f64 = 30.0;
    const B: f64 = 40.0;
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    y1 *= 1.05;
    let px = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - (y - y0) / (y1 - y0) * (H - T - B);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-size=\"11\"><text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">{}</text>\
         <line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
         <line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{}\" stroke=\"black\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">round</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{L}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        W / 2.0,
        escape(title),
        H - B,
        W - R,
        H - B,
        H - B,
        W / 2.0,
        H - 5.0,
        L - 4.0,
        py(y1) + 4.0,
        short(y1),
        L - 4.0,
        py(y0) + 4.0,
        short(y0),
        H - B + 14.0,
        short(x0),
        W - R,
        H - B + 14.0,
        short(x1),
    );
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>",
            s.colour,
            if s.dashed {
                " stroke-dasharray=\"5,4\""
            } else {
                ""
            },
            points.join(" "),
            L + 8.0,
            T + 12.0 + 13.0 * i as f64,
            s.colour,
            escape(s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A compact axis label.
fn short(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
