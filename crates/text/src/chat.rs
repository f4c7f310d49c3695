//! Chat templates: the model's own Jinja template, rendered with the globals transformers
//! provides (`messages`, `bos_token`, `eos_token`, `add_generation_prompt`, `raise_exception`).

use crate::{Result, TextError};
use serde::{Deserialize, Serialize};

/// One turn of a conversation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled Jinja chat template.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    end_of_turn: String,
    max_output: usize,
}

/// Instructions one rendering may execute by default: templates that ship with models take a
/// few hundred per message, so this bounds a hostile template's loops (a second or two) while
/// leaving room for conversations of tens of thousands of turns.
pub const DEFAULT_FUEL: u64 = 50_000_000;
/// Bytes one rendering may produce by default.
pub const DEFAULT_MAX_OUTPUT: usize = 64 << 20;

/// Collects rendered text, failing once it would pass `cap` bytes.
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
    exceeded: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.cap {
            self.exceeded = true;
            return Err(std::io::Error::other("chat template output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Llama 2's chat format: `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer}</s>`,
/// one `<s>...</s>` per exchange, the system prompt inside the first user turn.
pub const LLAMA2_TEMPLATE: &str = "{% if messages and messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}{% set loop_messages = messages[1:] %}{% else %}{% set system_message = none %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message is not none %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + eos_token }}{% endif %}{% endfor %}";

/// ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), as SmolLM2 and Qwen use it.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The built-in templates `--template` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinTemplate {
    Llama2,
    ChatMl,
}

impl BuiltinTemplate {
    pub const NAMES: [&'static str; 2] = ["llama2", "chatml"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama2" => Some(Self::Llama2),
            "chatml" => Some(Self::ChatMl),
            _ => None,
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Self::Llama2 => LLAMA2_TEMPLATE,
            Self::ChatMl => CHATML_TEMPLATE,
        }
    }

    /// The token that closes an assistant turn: the tokenizer's EOS for Llama 2 (`</s>`),
    /// `<|im_end|>` for ChatML.
    pub fn end_of_turn(self, eos_token: &str) -> String {
        match self {
            Self::Llama2 => eos_token.into(),
            Self::ChatMl => "<|im_end|>".into(),
        }
    }
}

fn raise_exception(msg: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        msg,
    ))
}

impl ChatTemplate {
    /// Compiles `source`; an assistant turn ends with `eos_token`.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        Self::with_end_of_turn(source, bos_token, eos_token, eos_token)
    }

    /// A built-in template with the tokenizer's BOS/EOS strings.
    pub fn builtin(t: BuiltinTemplate, bos_token: &str, eos_token: &str) -> Result<Self> {
        Self::with_end_of_turn(t.source(), bos_token, eos_token, &t.end_of_turn(eos_token))
    }

    /// Compiles `source`; `end_of_turn` is the token that closes an assistant turn.
    pub fn with_end_of_turn(
        source: &str,
        bos_token: &str,
        eos_token: &str,
        end_of_turn: &str,
    ) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        // transformers renders with trim_blocks and lstrip_blocks.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Python string methods (`.strip()`, `.startswith()`, ...) that templates use.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.set_fuel(Some(DEFAULT_FUEL));
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| TextError::Template(format!("does not compile: {e}")))?;
        Ok(Self {
            env,
            source: source.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            end_of_turn: end_of_turn.into(),
            max_output: DEFAULT_MAX_OUTPUT,
        })
    }

    /// Bounds each rendering to `fuel` template instructions and `max_output` bytes of
    /// output (defaults [`DEFAULT_FUEL`] and [`DEFAULT_MAX_OUTPUT`]); past either, `render`
    /// fails with an error saying which.
    pub fn set_limits(&mut self, fuel: u64, max_output: usize) {
        self.env.set_fuel(Some(fuel));
        self.max_output = max_output;
    }

    /// The Jinja source (saved as `chat_template` with a trained model).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The token that closes an assistant turn.
    pub fn end_of_turn(&self) -> &str {
        &self.end_of_turn
    }

    /// Renders `messages`, ending with the assistant's header when `add_generation_prompt`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| TextError::Template(e.to_string()))?;
        let mut out = CappedWriter {
            buf: Vec::new(),
            cap: self.max_output,
            exceeded: false,
        };
        // minijinja 2.24 panics on some hostile input (`''[::-1]` indexes an empty string):
        // a template comes from the model's files, so a panic becomes this call's error.
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tmpl.render_captured_to(
                minijinja::context! {
                    messages => messages,
                    bos_token => self.bos_token,
                    eos_token => self.eos_token,
                    add_generation_prompt => add_generation_prompt,
                },
                &mut out,
            )
            .map(|_| ())
        }))
        .map_err(|payload| {
            let msg = crate::error::panic_message(payload.as_ref());
            TextError::Template(format!(
                "rendering failed: the template engine panicked ({msg})"
            ))
        })?;
        if out.exceeded {
            return Err(TextError::Template(format!(
                "rendering failed: the output passed the limit of {} bytes",
                self.max_output
            )));
        }
        match rendered {
            Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => {
                Err(TextError::Template(format!(
                    "rendering failed: the template ran more than its budget of {} \
                     instructions (a loop that does not end?)",
                    self.env.fuel().unwrap_or(0)
                )))
            }
            Err(e) => Err(TextError::Template(format!("rendering failed: {e}"))),
            Ok(_) => String::from_utf8(out.buf)
                .map_err(|e| TextError::Template(format!("rendering failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chatml_with_generation_prompt() -> Result<()> {
        let src = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let t = ChatTemplate::new(src, "<s>", "</s>")?;
        let out = t.render(&[ChatMessage::new("user", " Hi ")], true)?;
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        Ok(())
    }

    #[test]
    fn hostile_templates_hit_the_budget_or_the_output_limit() -> Result<()> {
        let msgs = [ChatMessage::new("user", "hi")];
        let spin =
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
        let mut t = ChatTemplate::new(spin, "", "")?;
        t.set_limits(100_000, 1 << 20);
        let err = t
            .render(&msgs, false)
            .expect_err("10^10 iterations")
            .to_string();
        assert!(err.contains("budget of 100000 instructions"), "{err}");
        let mut t = ChatTemplate::new(
            "{% for m in messages %}{{ 'x' * 1000 }}{% endfor %}",
            "",
            "",
        )?;
        t.set_limits(100_000, 100);
        let err = t.render(&msgs, false).expect_err("1000 bytes").to_string();
        assert!(err.contains("limit of 100 bytes"), "{err}");
        // The defaults leave ordinary templates alone.
        let t = ChatTemplate::builtin(BuiltinTemplate::ChatMl, "<s>", "</s>")?;
        let long: Vec<ChatMessage> = (0..2000)
            .map(|i| ChatMessage::new(["user", "assistant"][i % 2], "some words"))
            .collect();
        assert_eq!(t.render(&long, false)?.matches("<|im_end|>").count(), 2000);
        Ok(())
    }

    #[test]
    fn a_panic_inside_the_template_engine_is_an_error() -> Result<()> {
        // Found by fuzzing: minijinja 2.24 indexes out of bounds reversing an empty string.
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ m.content[::-1] }}{% endfor %}",
            "",
            "",
        )?;
        let err = t
            .render(&[ChatMessage::new("user", "")], false)
            .expect_err("panic");
        assert!(
            err.to_string().contains("template engine panicked"),
            "{err}"
        );
        assert_eq!(t.render(&[ChatMessage::new("user", "ab")], false)?, "ba");
        Ok(())
    }

    #[test]
    fn raise_exception_surfaces_as_error() {
        let t = ChatTemplate::new("{{ raise_exception('only user turns') }}", "", "").unwrap();
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("only user turns"), "{err}");
    }
}
