//! `covey device`: a member's encrypted store on this computer.
//!
//! The store lives in `--dir`; its data key is wrapped under a key derived from the passphrase
//! in the environment variable named by `--passphrase-env` (PBKDF2-HMAC-SHA256, key file
//! `passphrase.key` in the same directory). Exit codes: 0 success, 1 error, 2 usage, 3 wrong
//! passphrase.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use covey_store::{
    Channel, EventKind, HistoryQuery, LoyaltyEvent, PassphraseKeyStore, Store, StoreConfig,
    SystemClock,
};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

/// File of the passphrase key store inside `--dir`.
const KEY_FILE: &str = "passphrase.key";
const EXIT_WRONG_PASSPHRASE: u8 = 3;

/// `covey device ...`
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// Directory of the member's store (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Name of the environment variable that holds the store's passphrase.
    #[arg(long)]
    passphrase_env: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Record one loyalty event.
    Record(RecordArgs),
    /// Import the member's own history from a CSV file (one atomic batch).
    ///
    /// Header row required; columns by name: kind, item, category, qty, amount, currency,
    /// store, channel, time (RFC 3339). Only kind and time are required.
    ImportCsv {
        /// CSV file ("-" for standard input).
        file: PathBuf,
    },
    /// List the stored history, oldest first.
    List(ListArgs),
    /// Print everything stored about the member as one JSON document.
    Export {
        /// Write the document to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase everything: crypto-shred the key, delete all rows, vacuum the files.
    Erase,
    #[command(flatten)]
    Consent(crate::consent_cmd::ConsentCommand),
    #[command(flatten)]
    Recommend(crate::recommend_cmd::RecommendCommand),
}

#[derive(Debug, Args)]
struct RecordArgs {
    /// purchase, redemption, visit, offer_view or offer_click.
    #[arg(long)]
    kind: String,
    /// Item (SKU) id.
    #[arg(long, default_value = "")]
    item: String,
    /// Item category.
    #[arg(long, default_value = "")]
    category: String,
    /// Quantity (default 1 for purchases and redemptions, 0 otherwise).
    #[arg(long, allow_hyphen_values = true)]
    qty: Option<String>,
    /// Amount in major units, e.g. 12.34 (converted with the currency's minor units).
    #[arg(long, allow_hyphen_values = true)]
    amount: Option<String>,
    /// ISO 4217 currency code.
    #[arg(long, default_value = "")]
    currency: String,
    /// Store or location id.
    #[arg(long, default_value = "")]
    store: String,
    /// in_store, app or web (default: in_store with --store, app without).
    #[arg(long)]
    channel: Option<String>,
    /// When it happened, RFC 3339 (e.g. 2026-05-01T10:30:00Z).
    #[arg(long)]
    time: String,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only this item.
    #[arg(long)]
    item: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only the most recent N events.
    #[arg(long)]
    limit: Option<usize>,
}

/// A failure of a device command: message, and whether it was a wrong passphrase.
struct Failure {
    message: String,
    wrong_passphrase: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            wrong_passphrase: false,
        }
    }
}

impl From<covey_store::Error> for Failure {
    fn from(err: covey_store::Error) -> Self {
        match err {
            covey_store::Error::KeyMismatch => Failure {
                message: "wrong passphrase: the store's data key could not be unlocked".into(),
                wrong_passphrase: true,
            },
            covey_store::Error::InvalidEvent { field, reason, .. } => {
                format!("invalid event: {field} {reason}").into()
            }
            other => other.to_string().into(),
        }
    }
}

/// Runs `covey device ...`.
pub fn run(args: DeviceArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(if f.wrong_passphrase {
                EXIT_WRONG_PASSPHRASE
            } else {
                1
            })
        }
    }
}

fn execute(args: &DeviceArgs) -> Result<(), Failure> {
    let store = open(&args.dir, &args.passphrase_env)?;
    match &args.command {
        DeviceCommand::Record(r) => record(&store, r, args.json),
        DeviceCommand::ImportCsv { file } => import_csv(&store, file, args.json),
        DeviceCommand::List(l) => list(&store, l, args.json),
        DeviceCommand::Export { out } => export(&store, out.as_deref()),
        DeviceCommand::Erase => erase(&store, args.json),
        DeviceCommand::Consent(c) => {
            crate::consent_cmd::run(store, &args.dir, c, args.json).map_err(Failure::from)
        }
        DeviceCommand::Recommend(c) => {
            crate::recommend_cmd::run(store, &args.dir, c, args.json).map_err(Failure::from)
        }
    }
}

fn open(dir: &Path, passphrase_env: &str) -> Result<Store, Failure> {
    let passphrase = Zeroizing::new(std::env::var(passphrase_env).map_err(|_| {
        format!("environment variable {passphrase_env} (--passphrase-env) is not set")
    })?);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let keystore = PassphraseKeyStore::open_or_create(
        &dir.join(KEY_FILE),
        &passphrase,
        covey_store::os_rng()?,
    )?;
    Ok(Store::open(
        dir,
        Arc::new(keystore),
        StoreConfig::default(),
        Arc::new(SystemClock),
    )?)
}

fn parse_time(text: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|_| "time must be RFC 3339, e.g. 2026-05-01T10:30:00Z".to_string())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| "time is out of range".into())
}

fn format_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn parse_kind(text: &str) -> Result<EventKind, String> {
    text.trim().parse().map_err(|_| {
        "unknown event kind (expected purchase, redemption, visit, offer_view or offer_click)"
            .to_string()
    })
}

fn parse_channel(text: &str) -> Result<Channel, String> {
    text.trim()
        .parse()
        .map_err(|_| "unknown channel (expected in_store, app or web)".to_string())
}

fn parse_quantity(text: Option<&str>, kind: EventKind) -> Result<u32, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None if matches!(kind, EventKind::Purchase | EventKind::Redemption) => Ok(1),
        None => Ok(0),
        Some(t) => {
            let q: i64 = t
                .parse()
                .map_err(|_| "quantity must be a whole number".to_string())?;
            if q < 0 {
                return Err("quantity must not be negative".into());
            }
            u32::try_from(q).map_err(|_| "quantity is implausibly large".into())
        }
    }
}

/// Digits after the decimal point of an ISO 4217 currency (2 unless listed).
fn minor_unit_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Parses a decimal amount in major units ("12.34") into minor units of `currency`.
fn parse_amount(text: Option<&str>, currency: &str) -> Result<i64, String> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    if text.starts_with('-') {
        return Err("amount must not be negative".into());
    }
    let digits = minor_unit_digits(currency);
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) {
        return Err("amount must be a decimal number like 12.34".into());
    }
    if frac.len() > digits as usize {
        return Err(format!(
            "amount has more than {digits} decimals for its currency"
        ));
    }
    let scale = 10i64.pow(digits);
    let whole: i64 = whole
        .parse()
        .map_err(|_| "amount is too large".to_string())?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<width$}", width = digits as usize)
            .parse()
            .map_err(|_| "amount is malformed".to_string())?
    };
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(|| "amount is too large".into())
}

/// The fields of one event as text, from the command line or a CSV row.
#[derive(Default)]
struct EventText<'a> {
    kind: &'a str,
    item: &'a str,
    category: &'a str,
    qty: Option<&'a str>,
    amount: Option<&'a str>,
    currency: &'a str,
    store: &'a str,
    channel: Option<&'a str>,
    time: &'a str,
}

impl EventText<'_> {
    fn parse(&self) -> Result<LoyaltyEvent, String> {
        let kind = parse_kind(self.kind)?;
        let currency = self.currency.trim().to_string();
        let store_id = self.store.trim().to_string();
        let channel = match self.channel.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => parse_channel(c)?,
            None if store_id.is_empty() => Channel::App,
            None => Channel::InStore,
        };
        Ok(LoyaltyEvent {
            kind,
            item_id: self.item.trim().to_string(),
            category: self.category.trim().to_string(),
            quantity: parse_quantity(self.qty, kind)?,
            amount_minor: parse_amount(self.amount, &currency)?,
            currency,
            store_id,
            channel,
            time_ms: parse_time(self.time)?,
        })
    }
}

fn record(store: &Store, r: &RecordArgs, json: bool) -> Result<(), Failure> {
    let event = EventText {
        kind: &r.kind,
        item: &r.item,
        category: &r.category,
        qty: r.qty.as_deref(),
        amount: r.amount.as_deref(),
        currency: &r.currency,
        store: &r.store,
        channel: r.channel.as_deref(),
        time: &r.time,
    }
    .parse()?;
    let id = store.record_event(&event)?;
    if json {
        println!("{}", json!({ "recorded": [id] }));
    } else {
        println!("recorded {} (event {})", event.kind, id.0);
    }
    Ok(())
}

fn read_csv_events(file: &Path) -> Result<Vec<LoyaltyEvent>, String> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("CSV header: {e}"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(kind), Some(time)) = (column("kind"), column("time")) else {
        return Err("CSV header must name at least the columns kind and time".into());
    };
    let optional = [
        "item", "category", "qty", "amount", "currency", "store", "channel",
    ]
    .map(column);
    reader
        .records()
        .enumerate()
        .map(|(i, row)| {
            let line = i + 2; // 1-based, after the header
            let row = row.map_err(|e| format!("line {line}: {e}"))?;
            let get = |c: Option<usize>| c.and_then(|c| row.get(c)).unwrap_or("");
            let [item, category, qty, amount, currency, store, channel] = optional;
            EventText {
                kind: get(Some(kind)),
                item: get(item),
                category: get(category),
                qty: Some(get(qty)),
                amount: Some(get(amount)),
                currency: get(currency),
                store: get(store),
                channel: Some(get(channel)),
                time: get(Some(time)),
            }
            .parse()
            .map_err(|e| format!("line {line}: {e}"))
        })
        .collect()
}

fn import_csv(store: &Store, file: &Path, json: bool) -> Result<(), Failure> {
    let events = read_csv_events(file)?;
    let ids = store.record_events(&events).map_err(|e| match e {
        // Point at the CSV line, not the batch index.
        covey_store::Error::InvalidEvent {
            index,
            field,
            reason,
        } => Failure::from(format!(
            "line {}: {field} {reason}; nothing imported",
            index + 2
        )),
        other => Failure::from(other),
    })?;
    if json {
        println!("{}", json!({ "imported": ids.len() }));
    } else {
        println!("imported {} events", ids.len());
    }
    Ok(())
}

fn list(store: &Store, l: &ListArgs, json: bool) -> Result<(), Failure> {
    let query = HistoryQuery {
        kinds: l
            .kind
            .as_deref()
            .map(parse_kind)
            .transpose()?
            .into_iter()
            .collect(),
        item_id: l.item.clone(),
        since_ms: l.since.as_deref().map(parse_time).transpose()?,
        until_ms: None,
        limit: l.limit,
    };
    let events = store.member_history(&query)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&events).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    for e in &events {
        let ev = &e.event;
        let digits = minor_unit_digits(&ev.currency);
        let amount = if ev.amount_minor == 0 {
            String::new()
        } else {
            let scale = 10i64.pow(digits);
            let frac = ev.amount_minor % scale;
            let whole = ev.amount_minor / scale;
            if digits == 0 {
                format!("{whole} {}", ev.currency)
            } else {
                format!("{whole}.{frac:0w$} {}", ev.currency, w = digits as usize)
            }
        };
        println!(
            "{:>6}  {}  {:<11} {:<16} {:>4}  {:>14}  {}",
            e.id.0,
            format_time(ev.time_ms),
            ev.kind,
            ev.item_id,
            ev.quantity,
            amount,
            ev.store_id
        );
    }
    println!("{} events", events.len());
    Ok(())
}

fn export(store: &Store, out: Option<&Path>) -> Result<(), Failure> {
    let doc = store.export_json()?;
    match out {
        Some(path) => {
            std::fs::write(path, doc.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("exported to {}", path.display());
        }
        None => println!("{doc}"),
    }
    Ok(())
}

fn erase(store: &Store, json: bool) -> Result<(), Failure> {
    let report = store.erase_all()?;
    if json {
        println!(
            "{}",
            json!({ "erased": true, "rows_deleted": report.rows_deleted, "key_generation": report.new_generation })
        );
    } else {
        println!(
            "erased: {} rows deleted, data key destroyed, files vacuumed",
            report.rows_deleted
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_use_the_currency_minor_units() {
        assert_eq!(parse_amount(Some("12.34"), "EUR"), Ok(1234));
        assert_eq!(parse_amount(Some("12.3"), "EUR"), Ok(1230));
        assert_eq!(parse_amount(Some("12"), "EUR"), Ok(1200));
        assert_eq!(parse_amount(Some("1500"), "JPY"), Ok(1500));
        assert_eq!(parse_amount(Some("1.5"), "KWD"), Ok(1500));
        assert_eq!(parse_amount(None, "EUR"), Ok(0));
        assert!(parse_amount(Some("1.5"), "JPY").is_err());
        assert!(parse_amount(Some("-3"), "EUR").is_err());
        assert!(parse_amount(Some("1e3"), "EUR").is_err());
        assert!(parse_amount(Some("99999999999999999999"), "EUR").is_err());
    }

    #[test]
    fn quantities_and_times_parse_or_explain() {
        assert_eq!(parse_quantity(None, EventKind::Purchase), Ok(1));
        assert_eq!(parse_quantity(Some(""), EventKind::Visit), Ok(0));
        assert_eq!(
            parse_quantity(Some("-2"), EventKind::Purchase),
            Err("quantity must not be negative".into())
        );
        assert_eq!(parse_time("2026-05-01T10:30:00Z"), Ok(1_777_631_400_000));
        assert_eq!(
            parse_time("2026-05-01T12:30:00+02:00"),
            Ok(1_777_631_400_000)
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(format_time(1_777_631_400_000), "2026-05-01T10:30:00Z");
    }
}
