//! Helpers for tests that need a catalog model or the shared datasets.

use crate::{catalog, pull, Result};
use std::path::PathBuf;

/// The cached path of catalog model `name`. When it is not cached: pulls it if
/// `TASKLM_REQUIRE_MODELS` is set (CI sets it, so a missing model fails there), else returns
/// None and prints why the test is skipped.
pub fn catalog_model(name: &str) -> Result<Option<PathBuf>> {
    let entry = catalog::find(name).ok_or_else(|| crate::HubError::UnknownModel {
        name: name.into(),
        known: catalog::names(),
    })?;
    if let Some(p) = pull::cached(entry) {
        return Ok(Some(p));
    }
    if std::env::var_os("TASKLM_REQUIRE_MODELS").is_some() {
        return pull::pull(entry, false).map(Some);
    }
    eprintln!(
        "skipped: model `{name}` is not in {} (run `tasklm pull {name}`, or set TASKLM_REQUIRE_MODELS=1)",
        pull::cache_root().display()
    );
    Ok(None)
}

/// `../shared/data` beside the repository, if present.
pub fn shared_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}
