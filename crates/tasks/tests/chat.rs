//! Chat on the real SmolLM2-135M-Instruct: multi-turn answers that need the history, history
//! trimmed to the context window, and training that saves its template with the model.
//! Skips when the model is not cached (CI pulls it and requires it).

use anyhow::Result;
use tasklm_generate::SamplingParams;
use tasklm_hub::testing::catalog_model;
use tasklm_tasks::chat::ChatSession;
use tasklm_tasks::{EvalJob, TaskKind, TaskOptions, TrainJob};
use tasklm_text::ChatMessage;
use tasklm_train::TrainArgs;

const MODEL: &str = "smollm2-135m-instruct";

#[test]
fn the_second_answer_uses_the_history() -> Result<()> {
    if catalog_model(MODEL)?.is_none() {
        return Ok(());
    }
    let s = ChatSession::load(MODEL, None)?;
    let greedy = SamplingParams::greedy(24);
    let mut history = vec![ChatMessage::new("user", "What's the capital of Germany?")];
    let first = s.reply(&history, &greedy, &mut |_| {})?;
    assert!(
        first.generation.text.contains("Berlin"),
        "{}",
        first.generation.text
    );
    history.push(ChatMessage::new("assistant", &first.generation.text));
    history.push(ChatMessage::new("user", "What about France?"));
    let second = s.reply(&history, &greedy, &mut |_| {})?;
    assert!(
        second.generation.text.contains("Paris"),
        "{}",
        second.generation.text
    );
    assert_eq!(second.dropped_exchanges, 0);
    Ok(())
}

#[test]
fn old_exchanges_leave_the_context_first_and_the_system_message_stays() -> Result<()> {
    if catalog_model(MODEL)?.is_none() {
        return Ok(());
    }
    let s = ChatSession::load(MODEL, None)?;
    let ctx = s.loaded.model.max_context();
    let long = "word ".repeat(ctx / 3);
    let mut history = vec![ChatMessage::new("system", "Be brief.")];
    for i in 0..3 {
        history.push(ChatMessage::new("user", &format!("{i}: {long}")));
        history.push(ChatMessage::new("assistant", "ok"));
    }
    history.push(ChatMessage::new("user", "And now?"));
    let (ids, dropped) = s.prompt_ids(&history, 256)?;
    assert!(
        dropped >= 1 && ids.len() + 256 <= ctx,
        "dropped {dropped}, {} ids",
        ids.len()
    );
    let text = s.loaded.tokenizer.decode(&ids, false)?;
    assert!(text.contains("Be brief.") && text.contains("And now?") && !text.contains("0: word"));
    // A last message that cannot fit is an error, not a silent cut.
    let too_long = vec![ChatMessage::new("user", &"word ".repeat(ctx + 10))];
    let err = s.prompt_ids(&too_long, 256).expect_err("cannot fit");
    assert!(err.to_string().contains("does not fit"), "{err}");
    Ok(())
}

#[test]
fn chat_training_saves_the_template_it_used() -> Result<()> {
    if catalog_model(MODEL)?.is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("conv.jsonl");
    let conv = serde_json::json!({"messages": [
        {"role": "user", "content": "Say the code word."},
        {"role": "assistant", "content": "Pineapple."},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": "Pineapple again."},
    ]});
    std::fs::write(&data, format!("{conv}\n{conv}\n"))?;
    let out = tmp.path().join("out");
    let quiet = |_: &str| {};
    let llama2 = TaskOptions {
        template: Some("llama2".into()),
        ..TaskOptions::default()
    };
    let eval = |model: &str, options: TaskOptions| {
        tasklm_tasks::evaluate(
            &EvalJob {
                max_seq_len: Some(128),
                batch_size: 2,
                options,
                ..EvalJob::new(TaskKind::Chat, model, data.clone())
            },
            &quiet,
        )
    };
    let before = eval(MODEL, llama2.clone())?;
    let job = TrainJob {
        max_seq_len: Some(128),
        args: TrainArgs {
            max_steps: Some(3),
            batch_size: 2,
            lr: 3e-4,
            ..TrainArgs::default()
        },
        options: llama2,
        ..TrainJob::new(TaskKind::Chat, MODEL, data.clone(), out.clone())
    };
    tasklm_tasks::train(&job, &quiet)?;
    let dir = out.to_str().expect("utf-8");
    // The directory renders with the template it was trained with, without --template.
    let s = ChatSession::load(dir, None)?;
    let text = s.template.render(&[ChatMessage::new("user", "hi")], true)?;
    assert!(text.contains("[INST] hi [/INST]"), "{text}");
    let after = eval(dir, TaskOptions::default())?;
    let loss = |r: &tasklm_tasks::Report| r.metric_f64("loss").unwrap_or(f64::NAN);
    assert!(
        loss(&after) < loss(&before) * 0.7,
        "loss {} -> {}",
        loss(&before),
        loss(&after)
    );
    Ok(())
}

#[test]
fn an_unknown_template_is_named_with_the_choices() -> Result<()> {
    if catalog_model(MODEL)?.is_none() {
        return Ok(());
    }
    let err = ChatSession::load(MODEL, Some("vicuna"))
        .err()
        .expect("unknown template");
    assert!(
        err.to_string()
            .contains("--template vicuna: expected one of llama2, chatml"),
        "{err}"
    );
    Ok(())
}
