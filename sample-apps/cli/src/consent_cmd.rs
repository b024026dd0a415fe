//! `covey device consent|prompts|receipts|audit|privacy-summary`: the member's consent
//! ledger, receipts, audit log and privacy center, through the SDK's `Device` facade.
//!
//! The CLI plays a loyalty app with the built-in purposes and notice version
//! [`NOTICE_VERSION`]. The audit log's rollback anchor is the file [`ANCHOR_FILE`] in the
//! store directory; on a phone the host keeps it in keystore-protected storage instead, where
//! restoring an old copy of the database does not restore it too.

use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand};
use covey_sdk::audit::FileAnchorStore;
use covey_sdk::consent::{ConsentEventKind, Controller, PurposeId};
use covey_sdk::notice::Notice;
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::record::RecordContext;
use covey_sdk::{Device, DeviceConfig};
use covey_store::{Store, SystemClock};
use serde::Serialize;

/// Notice version the CLI's notice is published under.
pub const NOTICE_VERSION: u32 = 1;
/// The rollback anchor, next to the database.
pub const ANCHOR_FILE: &str = "audit.anchor";
const NOTICE_TEXT: &str = "Covey demo loyalty app. We use your purchase history on this \
    device to recommend offers, and, if you agree, to help train a shared model through \
    noise-protected, securely aggregated updates. You can change or withdraw any choice at \
    any time.";

/// The consent-related device commands (flattened into `covey device`).
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Record a consent decision, or show each purpose's state.
    Consent {
        #[command(subcommand)]
        action: ConsentAction,
    },
    /// Purposes the app should prompt for now, and why.
    Prompts,
    /// The signed receipt of every consent event.
    Receipts,
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// What is stored, why, for how long, what left the device, who used it.
    PrivacySummary,
}

/// `covey device consent ...`
#[derive(Debug, Subcommand)]
pub enum ConsentAction {
    /// Give consent for PURPOSE.
    Grant(DecisionArgs),
    /// Refuse consent for PURPOSE.
    Refuse(DecisionArgs),
    /// Withdraw consent for PURPOSE (erases its derived state).
    Withdraw(DecisionArgs),
    /// Each purpose's consent state.
    Status,
}

/// A decision about one purpose.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// personalization, federated_training or analytics.
    purpose: String,
    /// Version of the notice the member read (must be the one in force).
    #[arg(long)]
    notice_version: u32,
}

/// `covey device audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Verify entries, checkpoints and the rollback anchor; exits 1 if tampered.
    Verify,
}

/// Runs one consent command over the open store.
pub fn run(store: Store, dir: &Path, command: &ConsentCommand, json: bool) -> Result<(), String> {
    let device = open_device(store, dir)?;
    match command {
        ConsentCommand::Consent { action } => consent(&device, action, json),
        ConsentCommand::Prompts => {
            let prompts = device.prompts_needed();
            let lines = prompts
                .iter()
                .map(|p| format!("{}: {:?}", p.purpose, p.reason));
            print(json, &prompts, lines)
        }
        ConsentCommand::Receipts => {
            let receipts = device.receipts();
            let lines = receipts.iter().map(|r| {
                let rec = &r.body.record;
                format!(
                    "{} {} {} at {}",
                    r.body.receipt_id,
                    rec.purpose,
                    rec.event.as_str(),
                    rec.event_time_ms
                )
            });
            print(json, &receipts, lines)
        }
        ConsentCommand::Audit {
            action: AuditAction::Verify,
        } => {
            let report = device.verify_audit_log().map_err(|e| e.to_string())?;
            let verdict = if report.is_intact() {
                "intact"
            } else {
                "TAMPERED"
            };
            let mut lines = vec![format!(
                "audit log {verdict}: {} entries, checkpoint {}, anchor {:?}, root {}",
                report.log_size, report.checkpoint_size, report.anchored_size, report.root
            )];
            lines.extend(report.violations.iter().map(|v| format!("  {v:?}")));
            print(json, &report, lines.into_iter())?;
            if report.is_intact() {
                Ok(())
            } else {
                Err("the audit log failed verification".into())
            }
        }
        ConsentCommand::PrivacySummary => {
            let summary = device.privacy_summary().map_err(|e| e.to_string())?;
            let mut lines = vec![summary.plain_language.clone(), String::new()];
            lines.extend(summary.purposes.iter().map(|p| {
                format!(
                    "{:<20} {:<10} leaves device: {}",
                    p.purpose.as_str(),
                    p.state.as_str(),
                    p.leaves_device
                )
            }));
            lines.extend(summary.stored.iter().map(|c| {
                format!(
                    "stored {:?}: {} items, kept {:?} days",
                    c.category, c.count, c.retention_days
                )
            }));
            lines.push(format!(
                "cumulative epsilon: {}",
                summary.cumulative_epsilon
            ));
            print(json, &summary, lines.into_iter())
        }
    }
}

fn consent(device: &Device, action: &ConsentAction, json: bool) -> Result<(), String> {
    let (args, kind) = match action {
        ConsentAction::Grant(a) => (a, ConsentEventKind::Given),
        ConsentAction::Refuse(a) => (a, ConsentEventKind::Refused),
        ConsentAction::Withdraw(a) => (a, ConsentEventKind::Withdrawn),
        ConsentAction::Status => {
            let statuses = device.statuses();
            let lines = statuses.iter().map(|s| {
                format!(
                    "{:<20} {:<10} valid for processing: {}",
                    s.purpose.as_str(),
                    s.state.as_str(),
                    s.valid_for_processing
                )
            });
            return print(json, &statuses, lines);
        }
    };
    let purpose = PurposeId::new(&args.purpose).map_err(|e| e.to_string())?;
    let decision = device
        .decide(&purpose, kind, args.notice_version, "cli")
        .map_err(|e| e.to_string())?;
    let line = format!(
        "{} {}: now {} (receipt {}, {} derived items erased)",
        purpose,
        kind.as_str(),
        decision.status.state.as_str(),
        decision.receipt.body.receipt_id,
        decision.erased_items
    );
    print(json, &decision, std::iter::once(line))
}

/// The CLI's device: built-in purposes, the demo notice, the anchor file in `dir`.
pub fn open_device(store: Store, dir: &Path) -> Result<Device, String> {
    let registry = PurposeRegistry::with_builtins();
    let notice = Notice::new(
        "covey-demo-notice",
        NOTICE_VERSION,
        "en",
        NOTICE_TEXT,
        &registry,
    )
    .map_err(|e| e.to_string())?;
    let config = DeviceConfig {
        context: RecordContext {
            subject_ref: "cli-member".into(),
            controller: Controller {
                name: "Covey demo loyalty app".into(),
                contact: "privacy@example.invalid".into(),
            },
            jurisdiction: "EU-GDPR".into(),
            withdrawal_method: "covey device consent withdraw PURPOSE".into(),
        },
        registry,
        notice,
        renewal_window_days: 30,
    };
    let rng = covey_store::os_rng().map_err(|e| e.to_string())?;
    Device::open(
        Arc::new(store),
        config,
        Arc::new(FileAnchorStore::new(dir.join(ANCHOR_FILE))),
        Arc::new(SystemClock),
        rng,
    )
    .map_err(|e| e.to_string())
}

/// Prints `value` as JSON, or `lines` as text.
pub fn print(
    json: bool,
    value: &impl Serialize,
    mut lines: impl Iterator<Item = String>,
) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = if json {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        writeln!(out, "{text}")
    } else {
        lines.try_for_each(|line| writeln!(out, "{line}"))
    };
    // A closed pipe (`| head`) is an error to report, not a panic.
    written.map_err(|e| format!("cannot write the output: {e}"))
}
