//! Records the git commit the binary was built from (`TASKLM_GIT_COMMIT`, for the bench
//! table's header); nothing when git or the repository is absent.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return;
    };
    println!("cargo:rustc-env=TASKLM_GIT_COMMIT={commit}");
    // Run again when HEAD moves: a commit, a checkout, a branch's ref (loose or packed).
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(r) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]) {
        watch.push(r);
    }
    for p in watch {
        // A path that does not exist would rerun this script (and rebuild the crate) every time.
        match git(&["rev-parse", "--git-path", &p]) {
            Some(path) if std::path::Path::new(&path).exists() => {
                println!("cargo:rerun-if-changed={path}")
            }
            _ => {}
        }
    }
}
