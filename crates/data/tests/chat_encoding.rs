//! Chat encoding: one renderer gives ids and the loss mask, derived by rendering growing
//! prefixes; the Llama 2 Germany/France table token by token; errors that name the record.

use anyhow::Result;
use candle_core::Device;
use tasklm_data::chat::drop_oldest_turns;
use tasklm_data::{encode_chat, ChatRecord, EncodeStats, Truncation, IGNORE_INDEX};
use tasklm_hub::testing::catalog_model;
use tasklm_hub::{load_checkpoint, ModelSource};
use tasklm_text::{BuiltinTemplate, ChatMessage, ChatTemplate, TextTokenizer};

fn tokenizer() -> Result<Option<TextTokenizer>> {
    let Some(p) = catalog_model("smollm2-135m-instruct")? else {
        return Ok(None);
    };
    Ok(Some(
        load_checkpoint(&ModelSource::Gguf(p), candle_core::DType::F32, &Device::Cpu)?.tokenizer,
    ))
}

fn germany_france() -> ChatRecord {
    ChatRecord {
        messages: vec![
            ChatMessage::new("user", "What's the capital of Germany?"),
            ChatMessage::new("assistant", "The capital of Germany is Berlin."),
            ChatMessage::new("user", "What about France?"),
            ChatMessage::new("assistant", "The capital of France is Paris."),
        ],
        line: 1,
    }
}

/// (token text, scored) for each position of an encoded conversation.
fn table(tok: &TextTokenizer, ids: &[u32], labels: &[i64]) -> Result<Vec<(String, bool)>> {
    ids.iter()
        .zip(labels)
        .map(|(&id, &l)| Ok((tok.decode(&[id], false)?, l != IGNORE_INDEX)))
        .collect()
}

#[test]
fn llama2_template_supervises_exactly_the_answers_and_their_eos() -> Result<()> {
    let Some(mut tok) = tokenizer()? else {
        return Ok(());
    };
    // Llama 2's BOS/EOS as special tokens of this vocabulary.
    tok.add_special_tokens(&["<s>", "</s>"])?;
    let tpl = ChatTemplate::builtin(BuiltinTemplate::Llama2, "<s>", "</s>")?;
    let rec = germany_france();
    assert_eq!(
        tpl.render(&rec.messages, false)?,
        "<s>[INST] What's the capital of Germany? [/INST] The capital of Germany is Berlin.</s>\
         <s>[INST] What about France? [/INST] The capital of France is Paris.</s>"
    );
    let mut stats = EncodeStats::default();
    let f = encode_chat(&tpl, &tok, &rec, 512, Truncation::Left, &mut stats)?.expect("kept");
    let t = table(&tok, &f.input_ids, &f.labels)?;
    let scored: String = t
        .iter()
        .filter(|(_, s)| *s)
        .map(|(x, _)| x.as_str())
        .collect();
    assert_eq!(
        scored,
        " The capital of Germany is Berlin.</s> The capital of France is Paris.</s>"
    );
    // The table of the issue, position by position.
    let at = |text: &str, nth: usize| -> usize {
        t.iter()
            .enumerate()
            .filter(|(_, (x, _))| x == text)
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no token {text:?} #{nth} in {t:?}"))
    };
    let the = at(" the", 0); // `<s>[INST] What's` -> ` the`
    assert!(!t[the].1 && t[the - 1].0 == "'s");
    let the_answer = at(" The", 0); // `...Germany? [/INST]` -> ` The`
    assert!(t[the_answer].1 && t[the_answer - 1].0.ends_with(']'));
    let eos = at("</s>", 0); // `...is Berlin.` -> `</s>`
    assert!(t[eos].1 && t[eos - 1].0 == ".");
    let second_bos = eos + 1;
    assert_eq!(t[second_bos], ("<s>".to_string(), false));
    assert!(t[at("</s>", 1)].1);
    assert_eq!(t.iter().filter(|(x, s)| x == "<s>" && *s).count(), 0);
    Ok(())
}

#[test]
fn the_models_own_chatml_template_supervises_content_and_im_end_only() -> Result<()> {
    let Some(tok) = tokenizer()? else {
        return Ok(());
    };
    let src = tok
        .chat_template
        .clone()
        .expect("SmolLM2 has a chat template");
    let tpl = ChatTemplate::new(&src, "<|im_start|>", "<|im_end|>")?;
    let mut stats = EncodeStats::default();
    let f = encode_chat(
        &tpl,
        &tok,
        &germany_france(),
        512,
        Truncation::Left,
        &mut stats,
    )?
    .expect("kept");
    let t = table(&tok, &f.input_ids, &f.labels)?;
    let scored: Vec<&str> = t
        .iter()
        .filter(|(_, s)| *s)
        .map(|(x, _)| x.as_str())
        .collect();
    assert_eq!(
        scored.concat(),
        "The capital of Germany is Berlin.<|im_end|>The capital of France is Paris.<|im_end|>"
    );
    // The newline the template writes after <|im_end|> and the headers are not scored.
    let first_end = t
        .iter()
        .position(|(x, s)| x == "<|im_end|>" && *s)
        .expect("scored end");
    assert!(!t[first_end + 1].1);
    Ok(())
}

#[test]
fn bad_conversations_are_errors_naming_the_record() -> Result<()> {
    let Some(tok) = tokenizer()? else {
        return Ok(());
    };
    let tpl = ChatTemplate::builtin(BuiltinTemplate::ChatMl, "", "")?;
    let mut stats = EncodeStats::default();
    let no_answer = ChatRecord {
        messages: vec![ChatMessage::new("user", "hello")],
        line: 7,
    };
    let err = encode_chat(&tpl, &tok, &no_answer, 512, Truncation::Left, &mut stats)
        .expect_err("nothing supervised");
    assert!(
        err.to_string().contains("line 7") && err.to_string().contains("all zero"),
        "{err}"
    );
    // A template that never closes the assistant turn: the end-of-turn token is outside the mask.
    let open = ChatTemplate::with_end_of_turn(
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",
        "",
        "",
        "<|im_end|>",
    )?;
    let err = encode_chat(
        &open,
        &tok,
        &germany_france(),
        512,
        Truncation::Left,
        &mut stats,
    )
    .expect_err("no end of turn");
    assert!(err.to_string().contains("end-of-turn"), "{err}");
    Ok(())
}

#[test]
fn long_conversations_lose_their_oldest_exchanges_then_are_dropped() -> Result<()> {
    let Some(tok) = tokenizer()? else {
        return Ok(());
    };
    let mut rec = germany_france();
    rec.messages
        .insert(0, ChatMessage::new("system", "Be brief."));
    let shorter = drop_oldest_turns(&rec.messages).expect("droppable");
    assert_eq!(shorter.len(), 3);
    assert_eq!(shorter[0].role, "system");
    assert_eq!(shorter[1].content, "What about France?");
    let tpl = ChatTemplate::builtin(BuiltinTemplate::ChatMl, "", "")?;
    let mut stats = EncodeStats::default();
    let full = encode_chat(&tpl, &tok, &rec, 512, Truncation::Left, &mut stats)?.expect("kept");
    let cut = encode_chat(
        &tpl,
        &tok,
        &rec,
        full.input_ids.len() - 1,
        Truncation::Left,
        &mut stats,
    )?
    .expect("kept, shorter");
    assert!(cut.input_ids.len() < full.input_ids.len());
    assert_eq!(stats.truncated, 1);
    assert!(encode_chat(&tpl, &tok, &rec, 8, Truncation::Left, &mut stats)?.is_none());
    assert_eq!(stats.dropped, 1);
    Ok(())
}
