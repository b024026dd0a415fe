//! `covey device install-model|recommend|explain`: recommendations on the member's device,
//! through the SDK's `Device` (personalized only with personalization consent).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use covey_model::{Basis, FallbackReason, GlobalModel, RecommendFilter};
use covey_store::Store;
use serde_json::json;

use crate::consent_cmd::{open_device, print};

/// The recommendation commands (flattened into `covey device`).
#[derive(Debug, Subcommand)]
pub enum RecommendCommand {
    /// Install a global model blob (as `covey-server export-model` writes it).
    InstallModel {
        /// The model file.
        file: PathBuf,
    },
    /// The top items for the member: personalized with personalization consent and enough
    /// history, otherwise the model's global ranking (which reads no member data).
    Recommend(RecommendArgs),
    /// Why ITEM is recommended: the history items behind it, or that no personal data was
    /// used.
    Explain {
        /// Item id.
        item: String,
    },
}

/// `covey device recommend` options.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// How many items.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Leave out items the member already bought or redeemed.
    #[arg(long)]
    exclude_bought: bool,
    /// Leave out this item (repeatable).
    #[arg(long = "exclude")]
    exclude_items: Vec<String>,
    /// Only items of this category.
    #[arg(long)]
    category: Option<String>,
}

/// Runs one recommendation command over the open store.
pub fn run(
    store: Store,
    dir: &Path,
    command: &RecommendCommand,
    json_out: bool,
) -> Result<(), String> {
    let device = open_device(store, dir)?;
    match command {
        RecommendCommand::InstallModel { file } => {
            let bytes =
                std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let model = GlobalModel::from_bytes(&bytes).map_err(|e| e.to_string())?;
            device.install_model(&model).map_err(|e| e.to_string())?;
            let summary = json!({
                "installed": true,
                "version": model.version(),
                "items": model.catalog().len(),
                "dim": model.shape().dim,
            });
            let line = format!(
                "installed model version {} ({} items, d = {})",
                model.version(),
                model.catalog().len(),
                model.shape().dim
            );
            print(json_out, &summary, std::iter::once(line))
        }
        RecommendCommand::Recommend(a) => {
            let filter = RecommendFilter {
                exclude_bought: a.exclude_bought,
                exclude_items: a.exclude_items.clone(),
                category: a.category.clone(),
            };
            let recs = device.recommend(a.k, &filter).map_err(|e| e.to_string())?;
            let mut lines = vec![basis_text(&recs.basis)];
            lines.extend(
                recs.items
                    .iter()
                    .enumerate()
                    .map(|(i, r)| format!("{:>3}. {} ({:.3})", i + 1, r.item_id, r.score)),
            );
            print(json_out, &recs, lines.into_iter())
        }
        RecommendCommand::Explain { item } => {
            let explanation = device.explain(item).map_err(|e| e.to_string())?;
            let doc =
                json!({ "item_id": item, "explanation": explanation, "text": explanation.text() });
            print(json_out, &doc, std::iter::once(explanation.text()))
        }
    }
}

fn basis_text(basis: &Basis) -> String {
    match basis {
        Basis::Personalized => "personalized from your history on this device".into(),
        Basis::Global(FallbackReason::NoConsent) => {
            "popular overall (no personalization consent: no personal data used)".into()
        }
        Basis::Global(FallbackReason::TooLittleHistory { items, needed }) => format!(
            "popular overall (your history has {items} items; personalization needs {needed})"
        ),
    }
}
