//! For tests of the Postgres store: the server named by [`TEST_URL_VAR`], under the same skip
//! rule as a catalog model (`tasklm_hub::testing`): absent or not answering, a test skips with a
//! message, or fails when `TASKLM_REQUIRE_MODELS` is set.

use super::PgLocation;
use tasklm_hub::testing::{need, TestingError, WhenAbsent};

/// The variable holding the test server's URL (`.ci/run` sets it from scripts/ci/postgres.sh).
pub const TEST_URL_VAR: &str = "TASKLM_TEST_POSTGRES";

/// The test server's URL when it answers; None (printed) to skip.
pub fn test_server() -> Result<Option<String>, Box<TestingError>> {
    let url = std::env::var(TEST_URL_VAR).ok().filter(|u| !u.is_empty());
    let how = "start one with scripts/ci/postgres.sh and export TASKLM_TEST_POSTGRES=$(scripts/ci/postgres.sh)";
    let (found, what) = match url {
        None => (
            None,
            format!("a PostgreSQL server ({TEST_URL_VAR} is not set)"),
        ),
        Some(url) => match PgLocation::parse(&url).and_then(|l| l.connect(true).map(|_| l)) {
            Ok(_) => (Some(url), String::new()),
            Err(e) => (None, format!("a PostgreSQL server with pgvector ({e})")),
        },
    };
    need(found, &what, how, WhenAbsent::from_env()).map_err(Box::new)
}
