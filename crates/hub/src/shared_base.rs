//! Several adapters over one base in memory. While a [`SharedBases`] guard lives, the base of
//! every adapter that is loaded (`ModelSource::Adapter`) is read once per (path, dtype,
//! quantized) and its tensors are shared by every model built over it: candle tensors are
//! reference-counted, so nothing is copied, and an adapter's layers sit beside the base weights
//! without changing them. The server holds a guard while it loads its models. Dropping the last
//! guard forgets the bases; the models built keep what they use.

use crate::checkpoint::{read_files, Files};
use crate::{LoadOptions, ModelSource, Result};
use candle_core::Device;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

type Key = (PathBuf, String, bool, String);

struct Cache {
    guards: usize,
    bases: HashMap<Key, Files>,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    Mutex::new(Cache {
        guards: 0,
        bases: HashMap::new(),
    })
});

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    // A panic while the lock was held leaves a consistent map (inserts are whole).
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// While it lives, adapters loaded over the same base share that base's tensors.
#[must_use = "bases are shared only while the guard lives"]
pub struct SharedBases(());

/// Starts sharing adapter bases (see the module docs).
pub fn share_bases() -> SharedBases {
    lock().guards += 1;
    SharedBases(())
}

impl Drop for SharedBases {
    fn drop(&mut self) {
        let mut c = lock();
        c.guards = c.guards.saturating_sub(1);
        if c.guards == 0 {
            c.bases.clear();
        }
    }
}

/// The files of an adapter's `base`: read once and shared while a [`SharedBases`] guard lives,
/// read afresh otherwise.
pub(crate) fn base_files(base: &ModelSource, opts: LoadOptions, device: &Device) -> Result<Files> {
    let path = base.path();
    let key = (
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        format!("{:?}", opts.dtype),
        opts.quantized,
        format!("{:?}", device.location()),
    );
    {
        let c = lock();
        if c.guards == 0 {
            drop(c);
            return read_files(base, opts, device);
        }
        if let Some(f) = c.bases.get(&key) {
            return Ok(f.clone());
        }
    }
    let files = read_files(base, opts, device)?;
    let mut c = lock();
    if c.guards > 0 {
        c.bases.insert(key, files.clone());
    }
    Ok(files)
}
