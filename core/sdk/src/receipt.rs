//! Signed consent receipts: one per consent event, verifiable by anyone holding the device's
//! public key, and linkable to the audit log through an inclusion proof.

use serde::{Deserialize, Serialize};

use crate::audit_entry::{AuditEntry, AuditEvent};
use crate::consent::ConsentRecord;
use crate::error::{Error, Result};
use crate::merkle::{self, Hash};
use crate::signing::{DeviceKey, SignedCheckpoint, key_id, verify_signature};

/// Version of the receipt format.
pub const RECEIPT_VERSION: u8 = 1;

/// Largest receipt JSON accepted by [`verify_receipt_json`].
pub const MAX_RECEIPT_JSON_LEN: usize = 64 * 1024;

/// Domain separation: a receipt signature can never be confused with a checkpoint signature.
const SIGNING_DOMAIN: &[u8] = b"covey.consent.receipt/v1\n";

/// The signature algorithm name carried in receipts.
pub const SIGNATURE_ALG: &str = "Ed25519";

/// Who signed a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signer {
    /// Always [`SIGNATURE_ALG`].
    pub alg: String,
    /// Key id (hex of the first 8 bytes of SHA-256(public key)).
    pub key_id: String,
    /// Hex public key.
    pub public_key: String,
}

/// The signed part of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// Format version ([`RECEIPT_VERSION`]).
    pub receipt_version: u8,
    /// Receipt id (derived from the record id: one receipt per event).
    pub receipt_id: String,
    /// When the receipt was issued, ms since the Unix epoch.
    pub issued_ms: i64,
    /// The consent record, with all ISO/IEC TS 27560 fields.
    pub record: ConsentRecord,
    /// The signing key.
    pub signer: Signer,
}

impl ReceiptBody {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = SIGNING_DOMAIN.to_vec();
        // A typed struct serializes deterministically; verification re-serializes the parsed
        // body, so whitespace or key order in a transported receipt cannot matter.
        bytes.extend(serde_json::to_vec(self).unwrap_or_default());
        bytes
    }
}

/// A signed JSON consent receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentReceipt {
    /// What is signed.
    pub body: ReceiptBody,
    /// Hex Ed25519 signature over the domain tag and the body.
    pub signature: String,
}

impl ConsentReceipt {
    /// Issues the receipt for `record`, signed by the device key.
    pub fn issue(key: &DeviceKey, record: &ConsentRecord, issued_ms: i64) -> Self {
        let body = ReceiptBody {
            receipt_version: RECEIPT_VERSION,
            receipt_id: format!("rcpt-{}", record.record_id),
            issued_ms,
            record: record.clone(),
            signer: Signer {
                alg: SIGNATURE_ALG.to_owned(),
                key_id: key.key_id(),
                public_key: hex::encode(key.public_key()),
            },
        };
        let signature = hex::encode(key.sign(&body.signed_bytes()));
        Self { body, signature }
    }

    /// Pretty JSON for export and display.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Verifies a receipt's signature and internal consistency. With `trusted_public_key`, also
/// requires that this key signed it (without it, only self-consistency is proven: anyone
/// can mint a self-signed receipt, so auditors should pin the device key).
pub fn verify_receipt(receipt: &ConsentReceipt, trusted_public_key: Option<&[u8]>) -> Result<()> {
    let bad = |what: &'static str| Error::InvalidReceipt { what };
    let body = &receipt.body;
    if body.receipt_version != RECEIPT_VERSION {
        return Err(bad("unsupported receipt version"));
    }
    if body.signer.alg != SIGNATURE_ALG {
        return Err(bad("unsupported signature algorithm"));
    }
    let public_key =
        hex::decode(&body.signer.public_key).map_err(|_| bad("public key is not hex"))?;
    if body.signer.key_id != key_id(&public_key) {
        return Err(bad("key id does not match the public key"));
    }
    if let Some(trusted) = trusted_public_key
        && trusted != public_key.as_slice()
    {
        return Err(bad("signed by a key other than the trusted device key"));
    }
    let sig = hex::decode(&receipt.signature).map_err(|_| bad("signature is not hex"))?;
    if !verify_signature(&public_key, &body.signed_bytes(), &sig) {
        return Err(bad("signature does not verify"));
    }
    let record = &body.record;
    if record.terms_sha256 != hex::encode(record.terms.fingerprint()) {
        return Err(bad("terms hash does not match the terms"));
    }
    if body.receipt_id != format!("rcpt-{}", record.record_id) {
        return Err(bad("receipt id does not match the record id"));
    }
    Ok(())
}

/// Parses (bounded) and verifies a receipt from JSON.
pub fn verify_receipt_json(
    json: &str,
    trusted_public_key: Option<&[u8]>,
) -> Result<ConsentReceipt> {
    if json.len() > MAX_RECEIPT_JSON_LEN {
        return Err(Error::InvalidReceipt {
            what: "receipt is larger than 64 KiB",
        });
    }
    let receipt: ConsentReceipt =
        serde_json::from_str(json).map_err(|_| Error::InvalidReceipt {
            what: "not a version-1 receipt document",
        })?;
    verify_receipt(&receipt, trusted_public_key)?;
    Ok(receipt)
}

/// Proof that a receipt's event is in the device's audit log under a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// Leaf index of the consent entry.
    pub leaf_index: u64,
    /// Hex of the audit entry's stored bytes (the leaf data).
    pub entry: String,
    /// Hex RFC 6962 audit path, leaf side first.
    pub audit_path: Vec<String>,
    /// The checkpoint the path leads to.
    pub checkpoint: SignedCheckpoint,
}

/// Verifies `proof` for `receipt`: the checkpoint is signed by the receipt's key, the leaf is
/// a consent entry for exactly this record, and the audit path leads to the checkpoint root.
pub fn verify_receipt_inclusion(receipt: &ConsentReceipt, proof: &InclusionProof) -> Result<()> {
    let bad = |what: &'static str| Error::InvalidReceipt { what };
    verify_receipt(receipt, None)?;
    let public_key =
        hex::decode(&receipt.body.signer.public_key).map_err(|_| bad("public key is not hex"))?;
    let root = proof.checkpoint.verify(&public_key)?;
    let entry_bytes = hex::decode(&proof.entry).map_err(|_| bad("entry is not hex"))?;
    let entry = AuditEntry::decode(&entry_bytes).map_err(|_| bad("entry does not decode"))?;
    let record_hash = hex::encode(receipt.body.record.sha256());
    match &entry.event {
        AuditEvent::Consent { record_sha256, .. } if *record_sha256 == record_hash => {}
        _ => return Err(bad("the log entry is not this receipt's consent event")),
    }
    if entry.index != proof.leaf_index {
        return Err(bad("entry index does not match the leaf index"));
    }
    let path = proof
        .audit_path
        .iter()
        .map(|h| {
            let mut out: Hash = [0; 32];
            hex::decode_to_slice(h, &mut out).map(|_| out)
        })
        .collect::<std::result::Result<Vec<Hash>, _>>()
        .map_err(|_| bad("audit path is not 32-byte hex hashes"))?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&entry_bytes),
        proof.leaf_index,
        proof.checkpoint.tree_size,
        &path,
        &root,
    )
    .map_err(|_| bad("inclusion proof does not verify against the checkpoint"))
}
