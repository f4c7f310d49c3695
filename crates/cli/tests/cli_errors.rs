//! Bad input gets a clear error and a non-zero exit, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tasklm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .output()
        .expect("run tasklm")
}

/// `tasklm generate --model MODEL --prompt hi`.
fn generate_hi(model: &str) -> Output {
    tasklm(&["generate", "--model", model, "--prompt", "hi"])
}

fn assert_clean_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tasklm-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d.join(name)
}

/// A minimal GGUF v3 file with the given string metadata and no tensors.
fn write_gguf(path: &Path, kv: &[(&str, &str)]) {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (k, v) in kv {
        b.extend_from_slice(&(k.len() as u64).to_le_bytes());
        b.extend_from_slice(k.as_bytes());
        b.extend_from_slice(&8u32.to_le_bytes()); // string
        b.extend_from_slice(&(v.len() as u64).to_le_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    std::fs::write(path, b).expect("write gguf");
}

#[test]
fn unknown_catalog_name() {
    let out = generate_hi("no-such-model");
    assert_clean_error(&out, "unknown model `no-such-model`");
    assert_clean_error(&out, "smollm2-135m-instruct");
}

#[test]
fn missing_model_file() {
    let out = generate_hi("./missing/model.gguf");
    assert_clean_error(&out, "no such file or directory");
}

#[test]
fn model_directory_without_weights() {
    let dir = tmp("empty-model");
    std::fs::create_dir_all(&dir).expect("dir");
    let out = generate_hi(dir.to_str().expect("utf8"));
    assert_clean_error(&out, "config.json");
}

#[test]
fn truncated_gguf() {
    let p = tmp("truncated.gguf");
    std::fs::write(&p, b"GGUF\x03\x00\x00\x00\x10").expect("write");
    let out = generate_hi(p.to_str().expect("utf8"));
    assert_clean_error(&out, "not a readable GGUF file");
}

#[test]
fn gguf_with_unknown_architecture() {
    let p = tmp("mamba.gguf");
    write_gguf(&p, &[("general.architecture", "mamba")]);
    let out = generate_hi(p.to_str().expect("utf8"));
    assert_clean_error(
        &out,
        "unknown architecture `mamba` (supported: llama, qwen2)",
    );
}

#[test]
fn hub_id_fails_fast_without_network() {
    let started = std::time::Instant::now();
    let out = generate_hi("HuggingFaceTB/SmolLM2-135M");
    assert_clean_error(&out, "hub model `HuggingFaceTB/SmolLM2-135M`");
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn bad_sampling_option() {
    let out = tasklm(&[
        "generate",
        "--model",
        "./missing.gguf",
        "--prompt",
        "hi",
        "--top-p",
        "0",
    ]);
    assert_clean_error(&out, "top_p must be in (0, 1], got 0");
}

#[test]
fn prompt_longer_than_the_context_window() {
    let Some(model) = tasklm_hub::testing::catalog_model("smollm2-135m-instruct").expect("catalog")
    else {
        return;
    };
    let prompt = "word ".repeat(9000);
    let out = tasklm(&[
        "generate",
        "--model",
        model.to_str().expect("utf8"),
        "--prompt",
        &prompt,
    ]);
    assert_clean_error(&out, "more than the model's context window of 8192");
}

#[test]
fn generate_names_paris_greedily() {
    let Some(model) = tasklm_hub::testing::catalog_model("smollm2-135m-instruct").expect("catalog")
    else {
        return;
    };
    let m = model.to_str().expect("utf8");
    let out = tasklm(&[
        "generate",
        "--model",
        m,
        "--prompt",
        "The capital of France is",
        "--max-new-tokens",
        "8",
        "--temperature",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Paris"));
    let out = tasklm(&[
        "generate",
        "--model",
        m,
        "--prompt",
        "The capital of France is",
        "--max-new-tokens",
        "2",
        "--temperature",
        "0",
        "--json",
        "--top-logprobs",
        "5",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tokens"][0], 7042);
    assert_eq!(v["finish_reason"], "length");
    let first = &v["logprobs"]["content"][0];
    assert_eq!(first["token"], " Paris");
    assert_eq!(first["top_logprobs"].as_array().map(|a| a.len()), Some(5));
    assert!((first["logprob"].as_f64().unwrap_or(0.0) + 0.2581).abs() < 1e-3);
}

/// `tasklm train --task sft` on `data` with extra flags, into a fresh directory.
fn train_sft(data: &Path, extra: &[&str]) -> Output {
    let out = tmp("train-out");
    let mut args = vec![
        "train",
        "--task",
        "sft",
        "--model",
        "no-model-needed-before-this-error",
        "--data",
        data.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    tasklm(&args)
}

#[test]
fn train_rejects_a_missing_data_file() {
    let out = train_sft(Path::new("./missing/train.jsonl"), &[]);
    assert_clean_error(&out, "missing/train.jsonl");
}

#[test]
fn train_names_the_bad_line_of_the_data() {
    let data = tmp("bad.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"text\": 1}\n",
    )
    .expect("write");
    let out = train_sft(&data, &[]);
    assert_clean_error(&out, "bad.jsonl:2");
    assert_clean_error(&out, "`prompt` and `completion`");
}

#[test]
fn train_rejects_bad_settings_from_flags_and_recipes() {
    let data = tmp("ok.jsonl");
    std::fs::write(&data, "{\"prompt\": \"a\", \"completion\": \"b\"}\n").expect("write");
    assert_clean_error(
        &train_sft(&data, &["--lr=-1"]),
        "lr must be a positive number",
    );
    assert_clean_error(
        &train_sft(&data, &["--scheduler", "step"]),
        "scheduler `step`",
    );
    let recipe = tmp("recipe.toml");
    std::fs::write(&recipe, "lr = 1e-4\ngrad_acum = 4\n").expect("write");
    let out = train_sft(&data, &["--config", recipe.to_str().expect("utf-8")]);
    assert_clean_error(&out, "recipe.toml");
    assert_clean_error(&out, "grad_acum");
}

#[test]
fn eval_rejects_a_missing_data_file() {
    let out = tasklm(&[
        "eval",
        "--task",
        "sft",
        "--model",
        "x",
        "--data",
        "./missing/dev.jsonl",
    ]);
    assert_clean_error(&out, "missing/dev.jsonl");
}

#[test]
fn chat_input_errors_name_the_file_and_the_problem() {
    let run = |path: &Path| {
        tasklm(&[
            "chat",
            "--model",
            "x",
            "--input",
            path.to_str().expect("utf-8"),
        ])
    };
    assert_clean_error(&run(Path::new("./missing/conv.json")), "missing/conv.json");
    let bad_role = tmp("role.json");
    std::fs::write(
        &bad_role,
        r#"{"messages": [{"role": "bot", "content": "hi"}]}"#,
    )
    .expect("write");
    assert_clean_error(&run(&bad_role), "messages[0].role is `bot`");
    let last = tmp("last.json");
    std::fs::write(
        &last,
        r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#,
    )
    .expect("write");
    assert_clean_error(&run(&last), "the last message must be the user's");
}

#[test]
fn train_rejects_options_of_another_task() {
    let data = tmp("ok2.jsonl");
    std::fs::write(&data, "{\"prompt\": \"a\", \"completion\": \"b\"}\n").expect("write");
    assert_clean_error(
        &train_sft(&data, &["--template", "llama2"]),
        "--template applies to --task chat",
    );
}

#[test]
fn predict_rejects_tasks_it_does_not_serve() {
    let out = tasklm(&["predict", "--task", "sft", "--model", "x"]);
    assert_clean_error(
        &out,
        "predict serves the classification, tagging, QA and generative tasks",
    );
}

#[test]
fn bench_encoder_refuses_zero_rounds_and_passes() {
    for flag in ["--rounds", "--infer-passes", "--steps"] {
        let out = tasklm(&["bench", "encoder", flag, "0"]);
        assert_clean_error(
            &out,
            "--batch-size, --steps, --infer-passes and --rounds must be >= 1",
        );
    }
}

#[test]
fn bench_with_llama_cpp_names_what_is_missing() {
    let no_python = tasklm(&["bench", "generate", "--peer", "llama.cpp"]);
    assert_clean_error(&no_python, "--peer llama.cpp needs --peer-python PY");
    assert_clean_error(
        &no_python,
        "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl",
    );
    let dir = tmp("hf_dir_for_bench");
    std::fs::create_dir_all(&dir).expect("dir");
    let dir_s = dir.to_str().expect("utf-8 tmp path");
    let hf = tasklm(&[
        "bench",
        "generate",
        "--peer",
        "llama.cpp",
        "--peer-python",
        "python3",
        "--model",
        dir_s,
    ]);
    assert_clean_error(&hf, "--peer llama.cpp needs a GGUF model");
    let gguf = tmp("bench.gguf");
    write_gguf(&gguf, &[("general.architecture", "llama")]);
    let missing = tasklm(&[
        "bench",
        "generate",
        "--peer",
        "llama.cpp",
        "--peer-python",
        "/no/such/python3",
        "--model",
        gguf.to_str().expect("utf-8 tmp path"),
    ]);
    assert_clean_error(&missing, "peer python `/no/such/python3` not found");
    let json = tasklm(&["bench", "generate", "--json", "t.json", "--model", dir_s]);
    assert_clean_error(
        &json,
        "--json writes the side-by-side table of --peer llama.cpp",
    );
}
