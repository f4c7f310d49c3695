//! The code sandbox: a right completion passes its tests, a wrong one fails, an endless loop
//! is stopped by the timeout, network access is refused; pass@k over samples; the generative
//! scorer on real MBPP canonical solutions (when ../shared/data is present).

use anyhow::Result;
use std::time::Duration;
use tasklm_tasks::generative::code_exec::{program, run_python, ExecLimits};
use tasklm_tasks::generative::{score, GenData, GenEvalOptions, GenTask};

const PROMPT: &str = "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n";
const TEST: &str = "def check(candidate):\n    assert candidate(2, 3) == 5\n";

fn limits() -> ExecLimits {
    ExecLimits {
        timeout: Duration::from_secs(3),
        ..ExecLimits::default()
    }
}

#[test]
fn right_passes_wrong_fails_loops_time_out_and_sockets_are_refused() -> Result<()> {
    let run = |body: &str| run_python("python3", &program(PROMPT, body, TEST, "add"), limits());
    assert!(run("    return a + b\n")?.passed);
    let wrong = run("    return a - b\n")?;
    assert!(
        !wrong.passed && wrong.error.contains("AssertionError"),
        "{wrong:?}"
    );
    let endless = run("    while True:\n        pass\n")?;
    assert!(!endless.passed && endless.timed_out, "{endless:?}");
    let net = run("    import socket\n    socket.socket()\n    return a + b\n")?;
    assert!(!net.passed && net.error.contains("network"), "{net:?}");
    Ok(())
}

#[test]
fn canonical_mbpp_solutions_pass_and_pass_at_k_counts_samples() -> Result<()> {
    let Some(path) = tasklm_hub::testing::shared_path("mbpp/mbxp_mbpp_release_v1.jsonl")? else {
        return Ok(());
    };
    let data = GenData {
        task: GenTask::Code,
        path,
        langs: None,
    };
    let mut records = data.read()?;
    records.truncate(5);
    // Sample 1 is the canonical solution, sample 2 a wrong body: pass@1 = 50, pass@2 = 100.
    let gens: Vec<Vec<String>> = records
        .iter()
        .map(|r| vec![r.target.clone(), "\treturn None\n".to_string()])
        .collect();
    let opts = GenEvalOptions {
        sampling: Default::default(),
        samples: 2,
        limit: None,
        batch_size: 1,
        python: "python3".into(),
        progress: false,
        beam: None,
    };
    let (metrics, preds) = score(&data, &records, &gens, &opts)?;
    let get = |k: &str| metrics.iter().find(|m| m.0 == k).and_then(|m| m.1.as_f64());
    assert_eq!(get("pass@1"), Some(50.0), "{metrics:?}");
    assert_eq!(get("pass@2"), Some(100.0), "{metrics:?}");
    assert_eq!(preds[0].id, "MBPP/1");
    Ok(())
}
