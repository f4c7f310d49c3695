//! Conversations for chat fine-tuning: `{"messages": [{"role", "content"}, ...]}` JSONL (the
//! layout transformers, TRL and OpenAI use), rendered through the chat template with the loss on
//! assistant turns only.

use crate::collate::{Features, IGNORE_INDEX};
use crate::sft::{EncodeStats, Truncation};
use crate::{DataError, Result};
use serde_json::Value;
use std::path::Path;
use tasklm_text::{render_for_training, ChatMessage, ChatTemplate, TextTokenizer};

#[derive(Clone, Debug, PartialEq)]
pub struct ChatRecord {
    pub messages: Vec<ChatMessage>,
    /// 1-based line in the source file, for messages.
    pub line: usize,
}

const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// Parses one `{"messages": [...]}` object.
pub fn parse_messages(v: &Value) -> std::result::Result<Vec<ChatMessage>, String> {
    let list = v
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("expected a `messages` array")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").and_then(Value::as_str);
        match (role, content) {
            (Some(r), Some(c)) if ROLES.contains(&r) => out.push(ChatMessage::new(r, c)),
            (Some(r), Some(_)) => {
                return Err(format!(
                    "messages[{i}].role is `{r}`: expected system, user or assistant"
                ))
            }
            _ => {
                return Err(format!(
                    "messages[{i}] needs string fields `role` and `content`"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("`messages` is empty".into());
    }
    Ok(out)
}

/// Reads one conversation per non-empty line.
pub fn read_chat_jsonl(path: &Path) -> Result<Vec<ChatRecord>> {
    parse_chat_jsonl(path, &crate::jsonl::read_text(path)?)
}

/// [`read_chat_jsonl`] over the file's text; `path` names it in errors.
pub fn parse_chat_jsonl(path: &Path, text: &str) -> Result<Vec<ChatRecord>> {
    let mut out = Vec::new();
    for (line, v) in crate::jsonl::parse_jsonl(path, text)? {
        let err = |msg: String| DataError::record(path, line, msg);
        let messages = parse_messages(&v).map_err(err)?;
        out.push(ChatRecord { messages, line });
    }
    if out.is_empty() {
        return Err(DataError::File {
            path: path.into(),
            msg: "no records".into(),
        });
    }
    Ok(out)
}

/// The conversation without its oldest exchange (the system message stays): the turns up to
/// the second user message after the first are removed. None when nothing can be removed.
pub fn drop_oldest_turns(messages: &[ChatMessage]) -> Option<Vec<ChatMessage>> {
    let sys = usize::from(messages.first().is_some_and(|m| m.role == "system"));
    let rest = &messages[sys..];
    let next_user = rest.iter().skip(1).position(|m| m.role == "user")? + 1;
    let mut out = messages[..sys].to_vec();
    out.extend_from_slice(&rest[next_user..]);
    Some(out)
}

/// Renders `rec` with labels on the assistant turns. A conversation longer than `max_len`
/// loses its oldest exchanges (with [`Truncation::Left`]) or is dropped; None when dropped.
pub fn encode_chat(
    tpl: &ChatTemplate,
    tok: &TextTokenizer,
    rec: &ChatRecord,
    max_len: usize,
    trunc: Truncation,
    stats: &mut EncodeStats,
) -> Result<Option<Features>> {
    let mut messages = rec.messages.clone();
    let mut truncated = false;
    loop {
        let r = render_for_training(tpl, tok, &messages)
            .map_err(|e| DataError::Invalid(format!("conversation at line {}: {e}", rec.line)))?;
        if r.ids.len() <= max_len {
            if truncated {
                stats.truncated += 1;
            }
            let labels = r
                .ids
                .iter()
                .zip(&r.supervised)
                .map(|(&t, &s)| if s { i64::from(t) } else { IGNORE_INDEX })
                .collect();
            return Ok(Some(Features::new(r.ids, labels)));
        }
        let shorter = match trunc {
            Truncation::Left => {
                drop_oldest_turns(&messages).filter(|m| m.iter().any(|m| m.role == "assistant"))
            }
            Truncation::Drop => None,
        };
        match shorter {
            Some(m) => {
                messages = m;
                truncated = true;
            }
            None => {
                stats.dropped += 1;
                return Ok(None);
            }
        }
    }
}
