//! `tasklm bench all`: every side-by-side figure of the training-speed and decoding issues in
//! one run. Each bench runs in its own child process (so each peak RSS is its own), appends
//! its figures to a temporary file, and the table of all of them is printed at the end with
//! the CPU, the thread count, the date and the build. A bench that fails is named under the
//! table; the others still run.

use super::bench_figures::{parse, render_rows, Figure};
use super::bench_table::{utc_date, Cpu};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Args)]
pub struct BenchAllArgs {
    /// The Python of the PyTorch peers: torch, transformers, gguf and sentence-transformers.
    #[arg(long)]
    pub peer_python: String,
    /// The Python with llama-cpp-python 0.3.36 for the decoding rows against llama.cpp;
    /// without it those rows are left out (and the table says so).
    #[arg(long)]
    pub llama_python: Option<String>,
    /// Also write the table (header and figures) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// One bench `bench all` runs: its name and its arguments after `tasklm bench`.
struct Child {
    name: &'static str,
    args: Vec<String>,
}

fn children(a: &BenchAllArgs) -> Vec<Child> {
    let py = a.peer_python.clone();
    let with = |name: &'static str, extra: &[&str]| Child {
        name,
        args: [name]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .chain(["--peer-python".to_string(), py.clone()])
            .collect(),
    };
    let mut v = vec![
        with("train", &[]),
        with("encoder", &[]),
        with("embed", &[]),
        with("generate", &["--peer", "pytorch"]),
    ];
    if let Some(llama) = &a.llama_python {
        v.push(Child {
            name: "generate",
            args: ["generate", "--peer", "llama.cpp", "--peer-python", llama]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        });
    }
    v
}

/// What `--json` writes.
#[derive(Serialize)]
struct AllTable {
    command: String,
    cpu: Cpu,
    threads: usize,
    date_utc: String,
    tasklm: String,
    figures: Vec<Figure>,
    failures: Vec<String>,
    notes: Vec<String>,
}

impl AllTable {
    fn render(&self) -> String {
        let mut s = format!(
            "{}\ncpu: {} | {}\n{} threads | {} | {}\n\n{}",
            self.command,
            self.cpu.model,
            self.cpu.flags.join(" "),
            self.threads,
            self.date_utc,
            self.tasklm,
            render_rows(&self.figures)
        );
        for n in self.notes.iter().chain(&self.failures) {
            s.push_str(&format!("\nnote: {n}"));
        }
        s
    }
}

/// Runs `tasklm bench ARGS --figures FILE` with its output on this process's stderr; the
/// figures it appended, or why there are none.
fn run_child(exe: &Path, child: &Child, file: &Path) -> Result<Vec<Figure>> {
    let _ = std::fs::remove_file(file);
    eprintln!("== tasklm bench {}", child.args.join(" "));
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    let status = Command::new(exe)
        .arg("bench")
        .args(&child.args)
        .arg("--figures")
        .arg(file)
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    if !status.success() {
        bail!("`tasklm bench {}` failed ({status})", child.args.join(" "));
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("`tasklm bench {}` wrote no figures", child.name))?;
    parse(&text, &file.display().to_string())
}

pub fn run(a: BenchAllArgs) -> Result<()> {
    let exe = std::env::current_exe().context("finding the tasklm binary")?;
    let file = std::env::temp_dir().join(format!("tasklm-bench-all-{}.jsonl", std::process::id()));
    let (mut figures, mut failures, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    for child in children(&a) {
        match run_child(&exe, &child, &file) {
            Ok(f) => figures.extend(f),
            Err(e) => {
                eprintln!("error: {e:#}");
                failures.push(format!("{e:#}"));
            }
        }
    }
    let _ = std::fs::remove_file(&file);
    if a.llama_python.is_none() {
        notes.push("no --llama-python: the decoding rows against llama.cpp were not run".into());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let table = AllTable {
        command: std::iter::once("tasklm".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        cpu: Cpu::detect(),
        threads: super::bench::thread_count(),
        date_utc: utc_date(now),
        tasklm: format!(
            "tasklm {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            option_env!("TASKLM_GIT_COMMIT").unwrap_or("unknown")
        ),
        figures,
        failures,
        notes,
    };
    println!("{}", table.render());
    if let Some(path) = &a.json {
        let json = serde_json::to_string_pretty(&table)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if !table.failures.is_empty() {
        bail!(
            "{} of the benches failed (named above); the table holds the others",
            table.failures.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bench_gets_the_peer_and_llama_rows_only_with_their_python() {
        let mut a = BenchAllArgs {
            peer_python: "py".into(),
            llama_python: None,
            json: None,
        };
        let names: Vec<String> = children(&a).iter().map(|c| c.args.join(" ")).collect();
        assert_eq!(
            names,
            [
                "train --peer-python py",
                "encoder --peer-python py",
                "embed --peer-python py",
                "generate --peer pytorch --peer-python py"
            ]
        );
        a.llama_python = Some("lpy".into());
        let last = children(&a).pop().map(|c| c.args.join(" "));
        assert_eq!(
            last.as_deref(),
            Some("generate --peer llama.cpp --peer-python lpy")
        );
    }
}
