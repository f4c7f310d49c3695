//! Runs a generated program against its task's tests: `prompt + completion + test +
//! check(entry_point)` in a separate `python3` process, in a fresh temporary directory, with a
//! wall-clock timeout, address-space and CPU limits, output capped, and the socket module
//! disabled (no network). Passing means exit status 0.

use crate::{Result, TaskError};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Limits of one test run.
#[derive(Clone, Copy, Debug)]
pub struct ExecLimits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// Bytes of stdout/stderr kept (the rest is read and dropped).
    pub max_output: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            max_output: 4096,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecOutcome {
    pub passed: bool,
    pub timed_out: bool,
    /// The start of stderr (the failing assertion or exception).
    pub error: String,
}

/// The harness: limits set from inside Python before the program runs; sockets refused.
const HARNESS: &str = r#"
import resource, socket, sys
mem = int(sys.argv[1]); cpu = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
def _no_network(*a, **k):
    raise OSError("network access is disabled in tasklm's code sandbox")
socket.socket = _no_network
socket.create_connection = _no_network
src = open("program.py").read()
exec(compile(src, "program.py", "exec"), {"__name__": "__main__"})
"#;

/// The program a completion is tested as.
pub fn program(prompt: &str, completion: &str, test: &str, entry_point: &str) -> String {
    format!("{prompt}{completion}\n\n{test}\n\ncheck({entry_point})\n")
}

fn capped(mut r: impl Read, max: usize) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Runs `source` with `python` under `limits`.
pub fn run_python(python: &str, source: &str, limits: ExecLimits) -> Result<ExecOutcome> {
    let dir = tempfile::tempdir().map_err(|e| TaskError::Invalid(format!("temp dir: {e}")))?;
    let io = |p: &Path, e: std::io::Error| TaskError::File {
        path: p.into(),
        msg: e.to_string(),
    };
    let prog = dir.path().join("program.py");
    std::fs::write(&prog, source).map_err(|e| io(&prog, e))?;
    let cpu = limits.timeout.as_secs().max(1) + 1;
    let mut child = Command::new(python)
        .arg("-c")
        .arg(HARNESS)
        .arg(limits.memory_bytes.to_string())
        .arg(cpu.to_string())
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TaskError::Invalid(format!("running `{python}` for the code tests: {e}")))?;
    let max = limits.max_output;
    let out = child
        .stdout
        .take()
        .map(|o| std::thread::spawn(move || capped(o, max)));
    let err = child
        .stderr
        .take()
        .map(|e| std::thread::spawn(move || capped(e, max)));
    let start = Instant::now();
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(s)) => break (Some(s), false),
            Ok(None) if start.elapsed() >= limits.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(TaskError::Invalid(format!("waiting for `{python}`: {e}"))),
        }
    };
    let _ = out.map(|h| h.join());
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(ExecOutcome {
        passed: status.is_some_and(|s| s.success()),
        timed_out,
        error: if timed_out {
            format!("timed out after {:?}", limits.timeout)
        } else {
            stderr.lines().last().unwrap_or_default().to_string()
        },
    })
}
