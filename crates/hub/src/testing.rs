//! Helpers for tests that need a catalog model or the shared datasets (`../shared/data` beside
//! the repository). One rule decides what a test does when what it needs is absent: it skips
//! with a message, or, when `TASKLM_REQUIRE_MODELS` is set (CI sets it to 1), it fails with an
//! error naming what is missing and how to get it (a catalog model is pulled first).

use crate::{catalog, pull, HubError};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The variable that turns a skip into a failure.
pub const REQUIRE_VAR: &str = "TASKLM_REQUIRE_MODELS";

/// What a test does when something it needs is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenAbsent {
    /// Print why and skip (return early, passing).
    Skip,
    /// Fail: a catalog model is pulled, anything else is an error.
    Require,
}

impl WhenAbsent {
    /// The rule for a value of `TASKLM_REQUIRE_MODELS`: set to anything but the empty string
    /// or `0` requires.
    pub fn from_var(value: Option<&OsStr>) -> Self {
        match value {
            Some(v) if !v.is_empty() && v != "0" => Self::Require,
            _ => Self::Skip,
        }
    }

    /// The rule the environment sets.
    pub fn from_env() -> Self {
        Self::from_var(std::env::var_os(REQUIRE_VAR).as_deref())
    }
}

/// Why a test that needs a model or data cannot run.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    #[error("{what} is absent and {REQUIRE_VAR} is set, so this test may not skip: {how}")]
    Required { what: String, how: String },
    #[error("{what} is required ({REQUIRE_VAR} is set) but pulling it failed: {source}")]
    PullFailed {
        what: String,
        #[source]
        source: HubError,
    },
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// The one skip rule. `found` is returned when present; when absent, None after printing why
/// the test is skipped (`rule` Skip), or an error naming `what` is missing and `how` to get it
/// (`rule` Require).
pub fn need<T>(
    found: Option<T>,
    what: &str,
    how: &str,
    rule: WhenAbsent,
) -> Result<Option<T>, TestingError> {
    match (found, rule) {
        (Some(t), _) => Ok(Some(t)),
        (None, WhenAbsent::Skip) => {
            eprintln!("skipped: {what} is absent ({how}, or set {REQUIRE_VAR}=1 to fail instead)");
            Ok(None)
        }
        (None, WhenAbsent::Require) => Err(TestingError::Required {
            what: what.into(),
            how: how.into(),
        }),
    }
}

/// The cached path of catalog model `name`. When it is not cached: pulled under
/// `TASKLM_REQUIRE_MODELS` (a failed pull fails the test), else None with a skip message.
pub fn catalog_model(name: &str) -> Result<Option<PathBuf>, TestingError> {
    catalog_model_with(name, WhenAbsent::from_env())
}

/// [`catalog_model`] with the rule given.
pub fn catalog_model_with(name: &str, rule: WhenAbsent) -> Result<Option<PathBuf>, TestingError> {
    let entry = catalog::find(name).ok_or_else(|| HubError::UnknownModel {
        name: name.into(),
        known: catalog::names(),
    })?;
    if let Some(p) = pull::cached(entry) {
        return Ok(Some(p));
    }
    let what = format!("model `{name}` in {}", pull::cache_root().display());
    if rule == WhenAbsent::Require {
        return pull::pull(entry, false)
            .map(Some)
            .map_err(|source| TestingError::PullFailed { what, source });
    }
    need(None, &what, &format!("run `tasklm pull {name}`"), rule)
}

/// `../shared/data` beside the repository.
pub fn shared_data_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// `../shared/data` beside the repository: None (skipped) when absent, an error under
/// `TASKLM_REQUIRE_MODELS`.
pub fn shared_data() -> Result<Option<PathBuf>, TestingError> {
    shared_data_at(&shared_data_root(), WhenAbsent::from_env())
}

/// The directory `root` when it exists, under `rule`.
pub fn shared_data_at(root: &Path, rule: WhenAbsent) -> Result<Option<PathBuf>, TestingError> {
    need(
        root.is_dir().then(|| root.to_path_buf()),
        &format!("the shared datasets {}", root.display()),
        "put the datasets there (the task images mount them at ../shared/data)",
        rule,
    )
}

/// The file or directory `rel` inside `../shared/data`, under the same rule.
pub fn shared_path(rel: &str) -> Result<Option<PathBuf>, TestingError> {
    shared_path_at(&shared_data_root(), rel, WhenAbsent::from_env())
}

/// `root/rel` when it exists, under `rule`.
pub fn shared_path_at(
    root: &Path,
    rel: &str,
    rule: WhenAbsent,
) -> Result<Option<PathBuf>, TestingError> {
    let p = root.join(rel);
    need(
        p.exists().then(|| p.clone()),
        &p.display().to_string(),
        "it is part of the shared datasets in ../shared/data",
        rule,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn the_variable_requires_unless_unset_empty_or_zero() {
        assert_eq!(WhenAbsent::from_var(None), WhenAbsent::Skip);
        for skip in ["", "0"] {
            let v = OsString::from(skip);
            assert_eq!(WhenAbsent::from_var(Some(&v)), WhenAbsent::Skip, "{skip:?}");
        }
        for req in ["1", "yes", "true"] {
            let v = OsString::from(req);
            assert_eq!(
                WhenAbsent::from_var(Some(&v)),
                WhenAbsent::Require,
                "{req:?}"
            );
        }
    }

    #[test]
    fn absent_data_skips_without_the_variable_and_fails_with_it() {
        let missing =
            std::env::temp_dir().join(format!("tasklm-no-such-data-{}", std::process::id()));
        assert!(!missing.exists());
        let skip = WhenAbsent::from_var(None);
        assert!(shared_data_at(&missing, skip)
            .expect("skip is not an error")
            .is_none());
        assert!(shared_path_at(&missing, "sst2/dev.tsv", skip)
            .expect("skip is not an error")
            .is_none());
        let one = OsString::from("1");
        let req = WhenAbsent::from_var(Some(&one));
        let e = shared_data_at(&missing, req).expect_err("required data is absent");
        let msg = e.to_string();
        assert!(
            msg.contains(REQUIRE_VAR) && msg.contains(&missing.display().to_string()),
            "{msg}"
        );
        let e = shared_path_at(&missing, "sst2/dev.tsv", req).expect_err("required file absent");
        assert!(e.to_string().contains("sst2/dev.tsv"), "{e}");
    }

    #[test]
    fn present_data_is_returned_under_both_rules() {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        for rule in [WhenAbsent::Skip, WhenAbsent::Require] {
            let got = shared_data_at(&here, rule).expect("present");
            assert_eq!(got.as_deref(), Some(here.as_path()));
            let got = shared_path_at(&here, "Cargo.toml", rule).expect("present");
            assert_eq!(got, Some(here.join("Cargo.toml")));
        }
        assert_eq!(
            need(Some(3), "x", "y", WhenAbsent::Require).ok(),
            Some(Some(3))
        );
    }

    #[test]
    fn an_unknown_catalog_name_is_an_error_under_both_rules() {
        for rule in [WhenAbsent::Skip, WhenAbsent::Require] {
            let e = catalog_model_with("no-such-model", rule).expect_err("unknown");
            assert!(e.to_string().contains("no-such-model"), "{e}");
        }
    }
}
