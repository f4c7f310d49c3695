//! `--lora` for every training runner: the architecture's default targets and the
//! `adapter_config.json` a run writes beside its `adapter_model.safetensors`.

use tasklm_hub::{AdapterConfig, ModelKind};
use tasklm_train::LoraTraining;

/// The layers `--lora` adapts when `--lora-targets` is not given, as PEFT's defaults: the
/// query and value projections.
pub fn default_targets(kind: ModelKind) -> Vec<String> {
    let names: &[&str] = match kind {
        ModelKind::Decoder => &["q_proj", "v_proj"],
        ModelKind::Encoder => &["query", "value"],
        ModelKind::Seq2Seq => &["q", "v"],
        // ViT's names; CLIP's (`q_proj`, `v_proj`) are the decoder's.
        ModelKind::Vision => &["query", "value"],
    };
    names.iter().map(|s| s.to_string()).collect()
}

/// The job's LoRA settings with the defaults of `kind` filled in and the run's seed.
pub fn lora_settings(lora: &LoraTraining, kind: ModelKind, seed: u64) -> LoraTraining {
    let mut l = lora.clone();
    if l.targets.is_empty() {
        l.targets = default_targets(kind);
    }
    l.seed = seed;
    l
}

/// The LoRA settings of `job` on a model of `kind`, None without `--lora`.
pub fn job_lora(job: &crate::TrainJob, kind: ModelKind) -> Option<LoraTraining> {
    job.options
        .lora
        .as_ref()
        .map(|l| lora_settings(l, kind, job.args.seed))
}

/// PEFT's `task_type` of a task trained on an encoder.
pub fn encoder_task_type(task: crate::TaskKind) -> &'static str {
    match task {
        crate::TaskKind::Ner => "TOKEN_CLS",
        crate::TaskKind::Qa => "QUESTION_ANS",
        _ => "SEQ_CLS",
    }
}

/// `adapter_config.json` of a run on `base` that adapted `layers`: `task_type` is PEFT's
/// (`CAUSAL_LM`, `SEQ_CLS`, `TOKEN_CLS`, `QUESTION_ANS`), the base its absolute path, so that
/// `PeftModel.from_pretrained` and `tasklm --model OUT` find it.
pub fn adapter_config(
    lora: &LoraTraining,
    layers: &[String],
    task_type: &str,
    base: &std::path::Path,
) -> AdapterConfig {
    let path = base;
    let base_model = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    AdapterConfig {
        task_type: task_type.to_string(),
        base_model: base_model.to_string_lossy().into_owned(),
        spec: lora.spec,
        target_modules: tasklm_train::lora::target_modules(layers),
        modules_to_save: lora.modules_to_save.clone(),
    }
}
