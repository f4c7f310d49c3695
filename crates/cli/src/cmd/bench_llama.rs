//! `tasklm bench generate --peer llama.cpp`: tasklm and llama.cpp side by side on the same
//! GGUF weights, in three configurations (f32, the file as stored, Q8_0), each measured in its
//! own process (so peak RSS is per configuration), in interleaved rounds.

use super::bench::{prompt_ids, thread_count, BenchGenerateArgs};
use super::bench_figures::{append, Figure};
use super::bench_table::{
    parse_measurement, rows_for, ConfigFiles, ConfigRounds, Cpu, Measurement, Table,
};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use tasklm_hub::load::vocab_from_gguf;
use tasklm_hub::{pull::cache_root, resolve, ModelSource};
use tasklm_text::TextTokenizer;

/// The llama.cpp measurement and requantisation, kept in the repository and embedded.
const SCRIPT: &str = include_str!("../../../../scripts/peer/bench_llama_cpp.py");

/// How to get llama-cpp-python, for the errors that need it.
const INSTALL: &str = "make one with llama-cpp-python 0.3.36: `python3 -m venv V && V/bin/pip \
    install ../shared/wheels/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl numpy` (the \
    wheel is built for an AVX2 EPYC), or natively for this CPU: `CMAKE_ARGS=-DGGML_NATIVE=ON \
    V/bin/pip install llama-cpp-python==0.3.36 numpy` (about 40 minutes on 2 cores)";

/// One configuration: the file tasklm loads (and how), and the file llama.cpp loads.
struct Config {
    name: String,
    tasklm_file: PathBuf,
    quantized: bool,
    peer_file: PathBuf,
}

/// The embedded script written to a temporary file for the run, removed at the end.
struct ScriptFile(PathBuf);

impl ScriptFile {
    fn write() -> Result<Self> {
        let p = std::env::temp_dir().join(format!("tasklm-llama-peer-{}.py", std::process::id()));
        std::fs::write(&p, SCRIPT).with_context(|| format!("writing {}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The tail of a process's stderr, for error messages.
fn tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Runs `cmd` to the end; its stdout, or an error naming `what` with its stderr.
fn run_to_end(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}):\n{}", out.status, tail(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The peer: a Python with llama-cpp-python, and the script.
struct LlamaPeer {
    python: String,
    script: ScriptFile,
}

impl LlamaPeer {
    fn command(&self, mode: &str) -> Command {
        let mut c = Command::new(&self.python);
        c.arg(&self.script.0).arg(mode);
        c
    }

    /// llama-cpp-python's version and llama.cpp's system info; the errors say what to install.
    fn probe(&self) -> Result<(String, String)> {
        let out = self.command("probe").output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!("peer python `{}` not found: pass --peer-python PY, a Python with llama-cpp-python; {INSTALL}", self.python)
            } else {
                anyhow!("running peer python `{}`: {e}", self.python)
            }
        })?;
        if out.status.code() == Some(3) {
            // The script's message names this Python and the pip command for it.
            bail!(
                "peer python `{}` cannot run llama.cpp: {}",
                self.python,
                tail(&out.stderr)
            );
        }
        if !out.status.success() {
            bail!(
                "probing llama.cpp with `{}` failed ({}):\n{}",
                self.python,
                out.status,
                tail(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("the peer probe printed {:?}", tail(&out.stdout)))?;
        let s = |k: &str| v[k].as_str().unwrap_or("unknown").to_string();
        Ok((s("llama_cpp"), s("system_info")))
    }

    /// `source` requantised by llama.cpp to `ty` (F32 or Q8_0), made once into the cache.
    fn requantized(&self, source: &Path, ty: &str, threads: usize) -> Result<PathBuf> {
        let stem = source
            .file_stem()
            .and_then(|s| s.to_str())
            .context("model file name")?;
        let out = cache_root().join("bench").join(format!("{stem}.{ty}.gguf"));
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if let (Some(made), Some(src)) = (modified(&out), modified(source)) {
            if made < src {
                // The source changed since: make it again.
                std::fs::remove_file(&out)
                    .with_context(|| format!("removing the stale {}", out.display()))?;
            }
        }
        if !out.exists() {
            eprintln!("making {} with llama.cpp's quantize", out.display());
        }
        let mut c = self.command("quantize");
        c.arg("--input")
            .arg(source)
            .arg("--output")
            .arg(&out)
            .args(["--type", ty, "--threads", &threads.to_string()]);
        run_to_end(
            c,
            &format!(
                "llama.cpp's quantize of {} to {ty} (llama_model_quantize; a llama-cpp-python \
                 other than 0.3.36, or a full disk?)",
                source.display()
            ),
        )?;
        if !out.is_file() {
            bail!(
                "llama.cpp's quantize reported success but left no {}",
                out.display()
            );
        }
        Ok(out)
    }

    fn measure(
        &self,
        file: &Path,
        ids: &str,
        a: &BenchGenerateArgs,
        t: usize,
    ) -> Result<Measurement> {
        let mut c = self.command("measure");
        c.arg("--model")
            .arg(file)
            .args(["--prompt-ids", ids])
            .args(["--new-tokens", &a.new_tokens.to_string()])
            .args(["--runs", &a.runs.to_string()])
            .args(["--threads", &t.to_string()]);
        let what = format!("llama.cpp on {}", file.display());
        Ok(parse_measurement(&run_to_end(c, &what)?, &what)?)
    }
}

/// tasklm on one configuration, in a fresh process of this binary.
fn measure_tasklm(c: &Config, ids: &str, a: &BenchGenerateArgs, t: usize) -> Result<Measurement> {
    let exe = std::env::current_exe().context("finding the tasklm binary")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "--threads",
        &t.to_string(),
        "bench",
        "generate-one",
        "--model",
    ])
    .arg(&c.tasklm_file)
    .args(["--prompt-ids", ids])
    .args(["--new-tokens", &a.new_tokens.to_string()])
    .args(["--runs", &a.runs.to_string()]);
    if c.quantized {
        cmd.arg("--quantized");
    }
    let what = format!("tasklm {} on {}", c.name, c.tasklm_file.display());
    Ok(parse_measurement(&run_to_end(cmd, &what)?, &what)?)
}

/// The block type of the file's weight matrices (that of `blk.0.attn_q.weight`), as a row
/// label: `q4_1`, `q8_0`, `f32`, ...
fn stored_type(
    content: &candle_core::quantized::gguf_file::Content,
    path: &Path,
) -> Result<String> {
    let info = content
        .tensor_infos
        .get("blk.0.attn_q.weight")
        .with_context(|| format!("{}: no tensor `blk.0.attn_q.weight`", path.display()))?;
    Ok(format!("{:?}", info.ggml_dtype).to_lowercase())
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The configurations of `source`, whose matrices are `stored`: f32 (tasklm dequantizing the
/// source, llama.cpp on an F32 file), the source as stored (when quantized other than Q8_0),
/// and Q8_0; the F32 and Q8_0 files made by llama.cpp where needed.
fn configs(peer: &LlamaPeer, source: &Path, stored: &str, threads: usize) -> Result<Vec<Config>> {
    let f32_file = peer.requantized(source, "F32", threads)?;
    let q8_file = if stored == "q8_0" {
        source.to_path_buf()
    } else {
        peer.requantized(source, "Q8_0", threads)?
    };
    let mut configs = vec![Config {
        name: "f32".into(),
        tasklm_file: source.to_path_buf(),
        quantized: false,
        peer_file: f32_file,
    }];
    if stored != "f32" && stored != "q8_0" {
        configs.push(Config {
            name: stored.into(),
            tasklm_file: source.to_path_buf(),
            quantized: true,
            peer_file: source.to_path_buf(),
        });
    }
    configs.push(Config {
        name: "q8_0".into(),
        tasklm_file: q8_file.clone(),
        quantized: true,
        peer_file: q8_file,
    });
    Ok(configs)
}

/// `a.rounds` rounds, each measuring every configuration once, tasklm then llama.cpp.
fn run_rounds(
    peer: &LlamaPeer,
    configs: &[Config],
    ids: &str,
    a: &BenchGenerateArgs,
    threads: usize,
) -> Result<Vec<ConfigRounds>> {
    let mut results: Vec<ConfigRounds> = configs.iter().map(|_| ConfigRounds::default()).collect();
    for round in 1..=a.rounds {
        for (c, r) in configs.iter().zip(&mut results) {
            let ours = measure_tasklm(c, ids, a, threads)?;
            let theirs = peer.measure(&c.peer_file, ids, a, threads)?;
            eprintln!(
                "round {round}/{}: {:<5} decode tasklm {:.1}, llama.cpp {:.1} | prefill tasklm \
                 {:.1}, llama.cpp {:.1} tokens/s",
                a.rounds,
                c.name,
                ours.decode_tokens_per_s,
                theirs.decode_tokens_per_s,
                ours.prefill_tokens_per_s,
                theirs.prefill_tokens_per_s
            );
            r.tasklm.push(ours);
            r.peer.push(theirs);
        }
    }
    Ok(results)
}

pub fn run(a: &BenchGenerateArgs) -> Result<()> {
    let python = a.peer_python.clone().with_context(|| {
        format!(
            "--peer llama.cpp needs --peer-python PY, a Python with llama-cpp-python; {INSTALL}"
        )
    })?;
    if a.rounds == 0 {
        bail!("--rounds must be >= 1");
    }
    let source = match resolve(&a.model, true)? {
        ModelSource::Gguf(p) => p,
        ModelSource::HfDir(d) => bail!(
            "--peer llama.cpp needs a GGUF model (llama.cpp reads only GGUF); `{}` is a Hugging \
             Face directory ({}): pass --model FILE.gguf or a catalog GGUF such as \
             smollm2-135m-instruct",
            a.model,
            d.display()
        ),
        ModelSource::Adapter { dir, .. } => bail!(
            "--peer llama.cpp needs a GGUF model; `{}` is a LoRA adapter (merge it first)",
            dir.display()
        ),
    };
    let peer = LlamaPeer {
        python,
        script: ScriptFile::write()?,
    };
    let (version, system_info) = peer.probe()?;
    let (content, _) = tasklm_models::gguf::read_header(&source)?;
    let stored = stored_type(&content, &source)?;
    let tok = TextTokenizer::from_gguf(&vocab_from_gguf(&content.metadata)?)
        .with_context(|| format!("{}: building its tokenizer", source.display()))?;
    let ids = prompt_ids(&tok, a.prompt_tokens)?;
    let ids_arg = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let threads = thread_count();
    let configs = configs(&peer, &source, &stored, threads)?;
    let results = run_rounds(&peer, &configs, &ids_arg, a, threads)?;

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (c, r) in configs.iter().zip(&results) {
        rows.extend(rows_for(&c.name, r).context("no round finished")?);
        let (ours, theirs) = (&r.tasklm[0].first_tokens, &r.peer[0].first_tokens);
        if ours != theirs {
            notes.push(format!(
                "{}: the first generated ids differ (tasklm {ours:?}, llama.cpp {theirs:?}): the \
                 same prompt ids, numerics that differ",
                c.name
            ));
        }
    }
    let path = |p: &Path| p.display().to_string();
    let load = |q: bool| if q { "quantized" } else { "dequantized" };
    let files = configs
        .iter()
        .map(|c| ConfigFiles {
            config: c.name.clone(),
            tasklm_file: path(&c.tasklm_file),
            tasklm_load: load(c.quantized).into(),
            peer_file: path(&c.peer_file),
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let command = std::iter::once("tasklm".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let table = Table {
        command,
        model: format!("{} ({})", a.model, file_name(&source)),
        files,
        cache_dir: path(&cache_root().join("bench")),
        cpu: Cpu::detect(),
        threads,
        prompt_tokens: ids.len(),
        new_tokens: a.new_tokens,
        runs: a.runs,
        rounds: a.rounds,
        date_utc: super::bench_table::utc_date(now),
        tasklm: format!(
            "tasklm {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            option_env!("TASKLM_GIT_COMMIT").unwrap_or("unknown")
        ),
        peer: format!(
            "llama.cpp via llama-cpp-python {version} (`{}`)",
            peer.python
        ),
        peer_system_info: system_info,
        rows,
        notes,
    };
    println!("{}", table.render());
    let figures: Vec<Figure> = table
        .rows
        .iter()
        .map(|r| {
            Figure::new(
                "generate",
                format!(
                    "{} {}, {} prompt tokens, {} new tokens",
                    a.model, r.label, table.prompt_tokens, a.new_tokens
                ),
                "tokens/s",
                r.tasklm_tokens_per_s.median,
            )
            .with_peer(
                &format!("llama.cpp (llama-cpp-python {version})"),
                r.peer_tokens_per_s.median,
            )
            .with_rss(r.tasklm_peak_rss_bytes, r.peer_peak_rss_bytes)
        })
        .collect();
    append(a.figures.as_deref(), &figures)?;
    if let Some(path) = &a.json {
        let json = serde_json::to_string_pretty(&table)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
