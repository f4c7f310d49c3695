//! The OpenAI-compatible endpoints.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod fields;
pub mod models;
pub mod respond;
pub mod sampling;

/// A fresh random number (a request's default seed, an answer's id): std's per-instance random
/// hash keys over the clock.
pub(crate) fn fresh_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Seconds since the Unix epoch (OpenAI's `created`).
pub(crate) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
