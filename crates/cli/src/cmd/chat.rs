//! `tasklm chat`: a multi-turn conversation in the terminal (streaming, line editing, history,
//! `/reset`, `/exit`), or one answer to a conversation file as JSON.

use super::generate::SamplingArgs;
use anyhow::{Context, Result};
use clap::Args;
use rustyline::error::ReadlineError;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use tasklm_hub::catalog::DEFAULT_MODEL;
use tasklm_tasks::chat::ChatSession;
use tasklm_text::ChatMessage;

#[derive(Args, Clone)]
pub struct ChatArgs {
    /// Model: a catalog name, a trained or Hugging Face directory, a .gguf file or a hub id.
    /// [default: smollm2-135m-instruct]
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub adapter: super::lora::AdapterFlags,
    /// System message, kept at the start of the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Chat template: llama2 or chatml [default: the model's own, or the one it was trained with].
    #[arg(long)]
    pub template: Option<String>,
    /// Answer the last user turn of this conversation ({"messages": [...]}) and print JSON.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Questions about this image (PNG or JPEG), answered by a vision-language model (a LLaVA
    /// directory, e.g. from `train --task vqa`): each turn is one question, answered from the
    /// image alone (no earlier turns in the prompt, as the model was trained).
    #[arg(long)]
    pub image: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(a: ChatArgs) -> Result<()> {
    if let Some(image) = &a.image {
        return image_chat(&a, image);
    }
    let params = a.sampling.params(false);
    params.validate()?;
    // Read the conversation before the model, so a bad file fails in a moment.
    let conversation = a
        .input
        .as_ref()
        .map(|p| read_conversation(p, &a))
        .transpose()?;
    let (model, _view) = a
        .adapter
        .model_spec(a.model.as_deref(), Some(DEFAULT_MODEL))?;
    let session = ChatSession::load(&model, a.template.as_deref())?;
    match conversation {
        Some(messages) => answer(&session, &messages, &params),
        None => interactive(&session, &a, &model, &params),
    }
}

/// `chat --image`: questions about one image, each answered by the LLaVA in `--model`.
fn image_chat(a: &ChatArgs, image: &std::path::Path) -> Result<()> {
    let model = a.model.as_deref().context(
        "--image needs --model: a vision-language model directory (a LLaVA, e.g. from \
         `tasklm train --task vqa`)",
    )?;
    if !image.is_file() {
        anyhow::bail!("--image {}: no such file", image.display());
    }
    let dir = std::path::Path::new(model);
    let vqa = tasklm_tasks::vqa::VqaModel::load(dir, None).with_context(|| {
        format!("--image needs a vision-language model (a LLaVA directory); loading {model}")
    })?;
    let ask = |question: &str| vqa.answer(image, question);
    if let Some(path) = &a.input {
        let messages = read_conversation(path, a)?;
        let question = messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let (answer, score) = ask(&question)?;
        println!(
            "{}",
            json!({"message": {"role": "assistant", "content": answer}, "score": score})
        );
        return Ok(());
    }
    let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
    eprintln!(
        "Questions about {} to {model}; each is answered from the image alone. /exit or Ctrl-D quits.",
        image.display()
    );
    while let Some(line) = next_line(&mut editor)? {
        let line = line.as_str();
        if line == "/exit" || line == "/quit" {
            break;
        }
        let _ = editor.add_history_entry(line);
        match ask(line) {
            Ok((answer, _)) => println!("assistant> {answer}"),
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(())
}

/// The next non-empty line the user types, trimmed; None at the end of input (Ctrl-D).
/// Ctrl-C drops the line being typed.
fn next_line(editor: &mut rustyline::DefaultEditor) -> Result<Option<String>> {
    loop {
        match editor.readline("you> ") {
            Ok(l) if l.trim().is_empty() => continue,
            Ok(l) => return Ok(Some(l.trim().to_string())),
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(None),
            Err(e) => return Err(e).context("reading input"),
        }
    }
}

fn read_conversation(path: &PathBuf, a: &ChatArgs) -> Result<Vec<ChatMessage>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let mut messages = tasklm_data::chat::parse_messages(&v)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if messages.last().map(|m| m.role.as_str()) != Some("user") {
        anyhow::bail!("{}: the last message must be the user's", path.display());
    }
    if let Some(s) = &a.system {
        if messages.first().is_some_and(|m| m.role == "system") {
            messages[0].content = s.clone();
        } else {
            messages.insert(0, ChatMessage::new("system", s));
        }
    }
    Ok(messages)
}

fn answer(
    session: &ChatSession,
    messages: &[ChatMessage],
    params: &tasklm_generate::SamplingParams,
) -> Result<()> {
    let reply = session.reply(messages, params, &mut |_| {})?;
    let g = &reply.generation;
    println!(
        "{}",
        json!({
            "message": {"role": "assistant", "content": g.text},
            "finish_reason": g.finish_reason,
            "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.token_ids.len()},
            "dropped_exchanges": reply.dropped_exchanges,
            "seed": params.seed,
        })
    );
    Ok(())
}

fn fresh_history(system: Option<&str>) -> Vec<ChatMessage> {
    system
        .map(|s| vec![ChatMessage::new("system", s)])
        .unwrap_or_default()
}

fn interactive(
    session: &ChatSession,
    a: &ChatArgs,
    model: &str,
    params: &tasklm_generate::SamplingParams,
) -> Result<()> {
    let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
    let history_file = tasklm_hub::pull::cache_root().join("chat_history.txt");
    let _ = editor.load_history(&history_file);
    eprintln!(
        "Chatting with {} ({} tokens of context). /reset starts over, /exit or Ctrl-D quits.",
        model,
        session.loaded.model.max_context()
    );
    let mut history = fresh_history(a.system.as_deref());
    while let Some(line) = next_line(&mut editor)? {
        let line = line.as_str();
        let _ = editor.add_history_entry(line);
        match line {
            "/exit" | "/quit" => break,
            "/reset" => {
                history = fresh_history(a.system.as_deref());
                eprintln!("(history cleared)");
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage::new("user", line));
        let mut out = std::io::stdout();
        let _ = write!(out, "assistant> ");
        let reply = session.reply(&history, params, &mut |t| {
            let _ = write!(out, "{t}");
            let _ = out.flush();
        });
        println!();
        match reply {
            Ok(r) => {
                if r.dropped_exchanges > 0 {
                    eprintln!(
                        "(the {} oldest exchange(s) no longer fit the context window and were left out)",
                        r.dropped_exchanges
                    );
                    // Keep the history as the model saw it.
                    for _ in 0..r.dropped_exchanges {
                        if let Some(h) = tasklm_data::chat::drop_oldest_turns(&history) {
                            history = h;
                        }
                    }
                }
                history.push(ChatMessage::new("assistant", r.generation.text.trim()));
            }
            Err(e) => {
                history.pop();
                eprintln!("error: {e}");
            }
        }
    }
    let _ = editor.save_history(&history_file);
    Ok(())
}
