//! Fixtures shared by the workspace's test harnesses: the small test population and catalog
//! under `tests/fixtures/` (which the Python and Kotlin binding tests read too), and scratch
//! directories on a RAM file system.
//!
//! A dev-dependency only. It depends on nothing of ours, so the tests of every crate can use
//! it without turning the dependency direction around; each harness parses the fixtures with
//! its own crate's types (`covey_server::config::RawConfig`, `covey_model::Catalog`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::Path;

/// The small test population (`tests/fixtures/population.toml`): three-device cohorts, a
/// one-second check-in, four-second stages, FedAvg at rate 1, a budget no test exhausts. Each
/// harness changes only the fields its tests are about.
pub const POPULATION_TOML: &str = include_str!("../../fixtures/population.toml");

/// The test catalog (`tests/fixtures/items.csv`): a header and 300 items `sku-0`, `sku-1`, ...
/// in 6 categories (`cat-0`..`cat-5`) and 4 price levels.
pub const ITEMS_CSV: &str = include_str!("../../fixtures/items.csv");

/// The header and the first `items` rows of [`ITEMS_CSV`].
///
/// # Panics
///
/// When the fixture holds fewer items: a test asking for more is wrong, not its input.
pub fn items_csv(items: usize) -> String {
    let lines: Vec<&str> = ITEMS_CSV.lines().take(1 + items).collect();
    assert_eq!(
        lines.len(),
        1 + items,
        "tests/fixtures/items.csv has fewer than {items} items"
    );
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// A temporary directory on a RAM file system when there is one: the store syncs every
/// commit (`synchronous=FULL`), which on a shared disk would dominate the test time without
/// testing anything more.
///
/// # Panics
///
/// When no temporary directory can be created at all.
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("tempdir")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_prefix_has_the_header_and_the_first_items() {
        assert_eq!(
            items_csv(2),
            "item_id,category,price\nsku-0,cat-0,150\nsku-1,cat-1,300\n"
        );
        assert_eq!(items_csv(300).lines().count(), 301);
        assert!(POPULATION_TOML.contains("[population]"));
    }

    #[test]
    #[should_panic(expected = "fewer than 301 items")]
    fn asking_for_more_items_than_the_fixture_holds_is_a_test_bug() {
        items_csv(301);
    }
}
