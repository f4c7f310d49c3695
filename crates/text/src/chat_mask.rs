//! One renderer for training and serving: a conversation rendered through its chat template
//! gives the token ids and, for training, which of them are supervised.
//!
//! The mask is derived for any template by rendering growing prefixes of the conversation:
//! for each assistant turn i, `render(messages[..i], add_generation_prompt=true)` ends where the
//! assistant's content starts and `render(messages[..=i])` ends after its end-of-turn token.
//! Characters in between are the assistant's; a token is supervised when it starts there, up
//! to and including the end-of-turn token (a newline the template puts after it is not).

use crate::{ChatMessage, ChatTemplate, Result, TextError, TextTokenizer};

/// A conversation as tokens, with the supervised positions.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedChat {
    pub text: String,
    pub ids: Vec<u32>,
    /// One flag per id: true for the assistant's content and its end-of-turn token.
    pub supervised: Vec<bool>,
}

fn prefix_error(i: usize) -> TextError {
    TextError::Template(format!(
        "rendering the conversation up to message {} is not a prefix of rendering all of it; \
         this template rewrites earlier turns and cannot give a loss mask",
        i + 1
    ))
}

/// Renders `messages` and marks the assistant turns as supervised.
pub fn render_for_training(
    tpl: &ChatTemplate,
    tok: &TextTokenizer,
    messages: &[ChatMessage],
) -> Result<RenderedChat> {
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err(TextError::Template(
            "no assistant message: nothing to learn (the loss mask would be all zero)".into(),
        ));
    }
    let text = tpl.render(messages, false)?;
    let mut spans = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        let before = tpl.render(&messages[..i], true)?;
        let through = tpl.render(&messages[..=i], false)?;
        if !text.starts_with(&before) {
            return Err(prefix_error(i.saturating_sub(1)));
        }
        if !text.starts_with(&through) || through.len() < before.len() {
            return Err(prefix_error(i));
        }
        // Token offsets count characters.
        spans.push((i, before.chars().count(), through.chars().count()));
    }
    let (ids, offsets) = tok.encode_with_offsets(&text, false)?;
    let mut supervised = vec![false; ids.len()];
    let end_of_turn = tok.token_to_id(tpl.end_of_turn());
    for &(msg, start, end) in &spans {
        let in_span: Vec<usize> = (0..ids.len())
            .filter(|&k| offsets[k].0 >= start && offsets[k].0 < end)
            .collect();
        let eot = in_span
            .iter()
            .rev()
            .find(|&&k| Some(ids[k]) == end_of_turn || tok.is_eos(ids[k]))
            .copied()
            .ok_or_else(|| {
                TextError::Template(format!(
                    "assistant message {} has no end-of-turn token `{}` inside its span: the \
                     model would never learn to stop",
                    msg + 1,
                    tpl.end_of_turn()
                ))
            })?;
        for &k in in_span.iter().filter(|&&k| k <= eot) {
            supervised[k] = true;
        }
    }
    if supervised.iter().all(|&s| s) {
        return Err(TextError::Template(
            "every token is supervised: the template renders nothing but the assistant".into(),
        ));
    }
    if !supervised.iter().any(|&s| s) {
        return Err(TextError::Template(
            "no token is supervised (the assistant messages are empty)".into(),
        ));
    }
    Ok(RenderedChat {
        text,
        ids,
        supervised,
    })
}
