//! Task plumbing through the `tasklm` binary with no pulled model: for every task, train a
//! few updates of the tiny random models in `tests/fixtures/` (`tiny_decoder`, `tiny_encoder`,
//! from `scripts/golden/tiny_models.py`) on tiny data written here, evaluate with `--json`
//! (the metric keys the README promises), predict (the output records' keys and types), and
//! check that the trained directory reloads. The command line is the contract: nothing here
//! calls the library.

mod plumbing;

use plumbing::*;
use serde_json::{json, Value};
use std::path::Path;

#[test]
fn sft_memorises_two_rows_and_reloads() {
    let d = scratch("sft");
    let data = write(
        &d,
        "train.jsonl",
        &jsonl(&[
            json!({"prompt": "What is the capital of France?", "completion": " Paris."}),
            json!({"instruction": "Review: a great film", "input": "", "output": "positive"}),
        ]),
    );
    let base = eval(
        "sft",
        &decoder(),
        &data,
        &[],
        &["loss", "perplexity", "tokens"],
        2,
    );
    let out = train(
        "sft",
        &decoder(),
        &data,
        &d.join("out"),
        &[
            "--max-steps",
            "24",
            "--lr",
            "1e-2",
            "--eval",
            &data,
            "--eval-every",
            "12",
        ],
    );
    assert_loss_falls(&out, 24, 2.0);
    let evals = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
    assert!(evals.contains("eval_loss"), "no evaluation logged: {evals}");
    for f in ["tokenizer_config.json", "generation_config.json"] {
        assert!(out.join(f).is_file(), "trained sft directory lacks {f}");
    }
    let m = eval(
        "sft",
        path(&out),
        &data,
        &[],
        &["loss", "perplexity", "tokens"],
        2,
    );
    let (l0, l1) = (
        base["loss"].as_f64().unwrap_or(0.0),
        m["loss"].as_f64().unwrap_or(0.0),
    );
    assert!(l1 < l0 - 2.0, "trained loss {l1} vs base {l0}");
    let ppl = m["perplexity"].as_f64().unwrap_or(0.0);
    assert!((ppl - l1.exp()).abs() < 1e-6 * ppl.max(1.0), "{m}");
    let g: Value = serde_json::from_str(
        tasklm(&[
            "generate",
            "--model",
            path(&out),
            "--prompt",
            "What is the capital of France?",
            "--max-new-tokens",
            "4",
            "--temperature",
            "0",
            "--json",
        ])
        .trim(),
    )
    .expect("generate --json");
    let tokens = g["tokens"].as_array().expect("tokens");
    assert!(
        !tokens.is_empty() && tokens.len() <= 4 && tokens.iter().all(Value::is_u64),
        "{g}"
    );
    assert!(
        string(&g["text"], "text").starts_with(" Paris"),
        "memorised answer: {g}"
    );
    assert!(
        g["usage"]["prompt_tokens"].is_u64() && g["finish_reason"].is_string(),
        "{g}"
    );
}

#[test]
fn chat_trains_on_assistant_turns_and_answers_as_json() {
    let d = scratch("chat");
    let conv = |q: &str, a: &str| {
        json!({"messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": q}, {"role": "assistant", "content": a}]})
    };
    let data = write(
        &d,
        "chat.jsonl",
        &jsonl(&[
            conv("hi there!", "Hello!"),
            conv("what is two plus two?", "four."),
        ]),
    );
    let out = train(
        "chat",
        &decoder(),
        &data,
        &d.join("out"),
        &["--max-steps", "12", "--lr", "1e-2"],
    );
    assert_loss_falls(&out, 12, 0.5);
    let tc = read_json(&out.join("tokenizer_config.json"));
    assert!(
        string(&tc["chat_template"], "chat_template").contains("<|im_start|>"),
        "{tc}"
    );
    eval(
        "chat",
        path(&out),
        &data,
        &[],
        &["loss", "perplexity", "tokens"],
        2,
    );
    let input = write(
        &d,
        "conv.json",
        &json!({"messages": [{"role": "user", "content": "hi there!"}]}).to_string(),
    );
    let r: Value = serde_json::from_str(
        tasklm(&[
            "chat",
            "--model",
            path(&out),
            "--input",
            &input,
            "--max-new-tokens",
            "3",
            "--temperature",
            "0",
        ])
        .trim(),
    )
    .expect("chat --input prints JSON");
    assert_eq!(r["message"]["role"], "assistant", "{r}");
    string(&r["message"]["content"], "message.content");
    assert!(
        r["finish_reason"].is_string() && r["usage"]["completion_tokens"].is_u64(),
        "{r}"
    );
    assert!(r["dropped_exchanges"].is_u64() && r["seed"].is_u64(), "{r}");
}

fn check_label_predictions(preds: &[Value], labels: &[&str]) {
    for p in preds {
        let l = string(&p["label"], "label");
        assert!(
            labels.contains(&l),
            "label {l:?} is not one of {labels:?}: {p}"
        );
        unit_interval(&p["score"], "score");
    }
}

#[test]
fn classify_with_the_encoder_head_and_with_decoder_label_words() {
    let d = scratch("classify");
    let tsv = reviews_tsv();
    let data_tsv = write(&d, "train.tsv", &tsv);
    let data_jsonl = write(
        &d,
        "train.jsonl",
        &jsonl(&REVIEWS.map(|(t, l)| json!({"text": t, "label": l}))),
    );
    let keys = ["accuracy", "macro_f1"];
    let records = [
        json!({"text": "a great film"}),
        json!({"text": "a bad film"}),
    ];
    // Encoder: a classification head over [CLS].
    eval("classify", &encoder(), &data_tsv, &[], &keys, 8);
    let out = train(
        "classify",
        &encoder(),
        &data_tsv,
        &d.join("enc"),
        // One batch of all rows: 40 updates take the loss from ln(labels) to near 0.
        &["--max-steps", "40", "--batch-size", "8", "--lr", "5e-3"],
    );
    assert_loss_falls(&out, 40, 0.3);
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(
        cfg["architectures"][0], "BertForSequenceClassification",
        "{cfg}"
    );
    assert_eq!(
        cfg["id2label"].as_object().map(|m| m.len()),
        Some(2),
        "{cfg}"
    );
    let m = eval("classify", path(&out), &data_tsv, &[], &keys, 8);
    unit_interval(&m["accuracy"], "accuracy");
    let preds = predict("classify", path(&out), &d, &records, &[]);
    check_label_predictions(&preds, &["0", "1"]);
    // Decoder: the label words ` negative`/` positive` completing the prompt.
    let out = train(
        "classify",
        &decoder(),
        &data_jsonl,
        &d.join("dec"),
        &["--max-steps", "10", "--lr", "1e-2"],
    );
    assert_loss_falls(&out, 10, 0.5);
    let m = eval(
        "classify",
        path(&out),
        &data_jsonl,
        &["--calibrate"],
        &keys,
        8,
    );
    unit_interval(&m["macro_f1"], "macro_f1");
    let preds = predict("classify", path(&out), &d, &records, &[]);
    check_label_predictions(&preds, &["0", "1"]);
}

#[test]
fn nli_with_the_encoder_head_and_with_decoder_label_words() {
    let d = scratch("nli");
    let rows = [
        (
            "A man is playing a guitar.",
            "A person plays music.",
            "entailment",
        ),
        (
            "A woman is sleeping.",
            "A woman is running.",
            "contradiction",
        ),
        (
            "Two kids play in the garden.",
            "The kids are brothers.",
            "neutral",
        ),
        (
            "A dog runs in the park.",
            "An animal is outside.",
            "entailment",
        ),
        (
            "The cat sat on the mat.",
            "The cat is standing.",
            "contradiction",
        ),
        ("Anna moved to Rome.", "Anna likes Rome.", "neutral"),
    ];
    let data = write(
        &d,
        "nli.jsonl",
        &jsonl(&rows.map(|(p, h, l)| json!({"premise": p, "hypothesis": h, "label": l}))),
    );
    let keys = ["accuracy", "macro_f1"];
    let records = [json!({"premise": "A man sleeps.", "hypothesis": "A man is awake."})];
    let labels = ["entailment", "neutral", "contradiction"];
    let out = train(
        "nli",
        &encoder(),
        &data,
        &d.join("enc"),
        // One batch of all rows: 40 updates take the loss from ln(labels) to near 0.
        &["--max-steps", "40", "--batch-size", "8", "--lr", "5e-3"],
    );
    assert_loss_falls(&out, 40, 0.3);
    assert_eq!(
        read_json(&out.join("config.json"))["id2label"]
            .as_object()
            .map(|m| m.len()),
        Some(3)
    );
    eval("nli", path(&out), &data, &[], &keys, 6);
    check_label_predictions(&predict("nli", path(&out), &d, &records, &[]), &labels);
    let out = train(
        "nli",
        &decoder(),
        &data,
        &d.join("dec"),
        &["--max-steps", "10", "--lr", "1e-2"],
    );
    assert_loss_falls(&out, 10, 0.5);
    eval("nli", path(&out), &data, &[], &keys, 6);
    check_label_predictions(&predict("nli", path(&out), &d, &records, &[]), &labels);
}

#[test]
fn ner_tags_words_and_predicts_entities_with_offsets() {
    let d = scratch("ner");
    let sentences = [
        "John B-PER|Smith I-PER|lives O|in O|Paris B-LOC|. O",
        "Mary B-PER|visited O|Berlin B-LOC|with O|Peter B-PER|. O",
        "Anna B-PER|joined O|Acme B-ORG|Corp I-ORG|in O|Rome B-LOC|. O",
        "The O|United B-ORG|Nations I-ORG|met O|in O|New B-LOC|York I-LOC|. O",
    ];
    let conll: String = sentences
        .iter()
        .map(|s| s.split('|').map(|w| format!("{w}\n")).collect::<String>() + "\n")
        .collect();
    let data = write(&d, "train.txt", &format!("-DOCSTART- O\n\n{conll}"));
    let out = train(
        "ner",
        &encoder(),
        &data,
        &d.join("out"),
        &["--max-steps", "30", "--lr", "2e-2"],
    );
    assert_loss_falls(&out, 30, 0.3);
    assert_eq!(
        read_json(&out.join("config.json"))["architectures"][0],
        "BertForTokenClassification"
    );
    let m = eval(
        "ner",
        path(&out),
        &data,
        &[],
        &["precision", "recall", "f1"],
        4,
    );
    for k in ["f1_PER", "f1_LOC", "f1_ORG"] {
        unit_interval(&m[k], k);
    }
    let text = "John Smith lives in Paris.";
    let preds = predict("ner", path(&out), &d, &[json!({"text": text})], &[]);
    let ents = preds[0]["entities"]
        .as_array()
        .unwrap_or_else(|| panic!("entities: {}", preds[0]));
    assert!(
        !ents.is_empty(),
        "a trained tagger finds an entity in a training sentence: {}",
        preds[0]
    );
    for e in ents {
        let (s, t) = (
            e["start"].as_u64().expect("start") as usize,
            e["end"].as_u64().expect("end") as usize,
        );
        let span: String = text.chars().skip(s).take(t.saturating_sub(s)).collect();
        assert_eq!(
            span,
            string(&e["entity"], "entity"),
            "character offsets: {e}"
        );
        assert!(
            ["PER", "LOC", "ORG"].contains(&string(&e["type"], "type")),
            "{e}"
        );
        unit_interval(&e["score"], "score");
    }
}

#[test]
fn qa_trains_a_span_head_and_answers_from_the_context() {
    let d = scratch("qa");
    let ctx1 = "John Smith lives in Paris and works for Acme Corp.";
    let ctx2 = "The cat sat on the mat. The dog ran in the park.";
    let qa = |q: &str, ctx: &str, a: &str, id: &str| json!({"id": id, "question": q, "answers": [{"text": a, "answer_start": ctx.find(a).expect("answer in context")}]});
    let squad = json!({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": ctx1, "qas": [qa("Where does John live?", ctx1, "Paris", "q1"), qa("Who works for Acme?", ctx1, "John Smith", "q2")]},
        {"context": ctx2, "qas": [qa("Where did the cat sit?", ctx2, "on the mat", "q3"), qa("Where did the dog run?", ctx2, "in the park", "q4")]}]}]});
    let data = write(&d, "squad.json", &squad.to_string());
    let out = train(
        "qa",
        &encoder(),
        &data,
        &d.join("out"),
        &[
            "--max-steps",
            "20",
            "--lr",
            "2e-2",
            "--max-seq-len",
            "32",
            "--doc-stride",
            "8",
        ],
    );
    assert_loss_falls(&out, 20, 0.3);
    assert_eq!(
        read_json(&out.join("config.json"))["architectures"][0],
        "BertForQuestionAnswering"
    );
    let m = eval("qa", path(&out), &data, &[], &["exact_match", "f1"], 4);
    assert!(
        (0.0..=100.0).contains(&m["f1"].as_f64().unwrap_or(-1.0)),
        "{m}"
    );
    let preds = predict(
        "qa",
        path(&out),
        &d,
        &[json!({"question": "Where does John live?", "context": ctx1})],
        &[],
    );
    let p = &preds[0];
    let (s, e) = (
        p["start"].as_u64().expect("start") as usize,
        p["end"].as_u64().expect("end") as usize,
    );
    let span: String = ctx1.chars().skip(s).take(e.saturating_sub(s)).collect();
    assert_eq!(
        span,
        string(&p["answer"], "answer"),
        "the answer is the context at start..end: {p}"
    );
    assert!(p["score"].as_f64().is_some_and(f64::is_finite), "{p}");
}

/// Trains a generative task, evaluates it with `--predictions`, and predicts.
fn generative(
    task: &str,
    data: &str,
    d: &Path,
    keys: &[&str],
    n: u64,
    record: Value,
    extra: &[&str],
) {
    let mut args = vec!["--max-steps", "12", "--lr", "1e-2"];
    args.extend_from_slice(extra);
    let out = train(task, &decoder(), data, &d.join(task), &args);
    assert_loss_falls(&out, 12, 0.5);
    let preds = d.join(format!("{task}-preds.jsonl"));
    let mut eval_args = vec!["--max-new-tokens", "6", "--predictions", path(&preds)];
    eval_args.extend_from_slice(extra);
    eval(task, path(&out), data, &eval_args, keys, n);
    let lines = std::fs::read_to_string(&preds).expect("--predictions file");
    assert_eq!(lines.lines().count() as u64, n, "{task}: {lines}");
    for l in lines.lines() {
        let p: Value = serde_json::from_str(l).expect("prediction line");
        string(&p["id"], "id");
        string(&p["prediction"], "prediction");
        let refs = p["references"].as_array().expect("references");
        assert!(!refs.is_empty() && refs.iter().all(Value::is_string), "{p}");
        let score = p["score"].as_f64().expect("score");
        assert!((0.0..=100.0).contains(&score), "{task}: score {score}");
    }
    let got = predict(task, path(&out), d, &[record], extra);
    string(&got[0]["prediction"], "prediction");
}

#[test]
fn generative_tasks_train_evaluate_and_predict() {
    let d = scratch("generative");
    let genqa = write(
        &d,
        "genqa.jsonl",
        &jsonl(&[
            json!({"question": "What is the capital of France?", "answer": "Paris"}),
            json!({"question": "Where did the cat sit?", "context": "The cat sat on the mat.", "answer": ["on the mat", "the mat"]}),
        ]),
    );
    generative(
        "genqa",
        &genqa,
        &d,
        &["exact_match", "f1"],
        2,
        json!({"question": "What is the capital of Germany?"}),
        &[],
    );
    let summ = write(
        &d,
        "summarize.jsonl",
        &jsonl(&[
            json!({"id": "s1", "dialogue": "#Person1#: Shall we meet at noon? #Person2#: Yes, at the station.", "summary": "They meet at noon."}),
            json!({"id": "s2", "dialogue": "#Person1#: Hello, how are you? #Person2#: Fine, thanks.", "summary": "They greet."}),
        ]),
    );
    generative(
        "summarize",
        &summ,
        &d,
        &["rouge1", "rouge2", "rougeL"],
        2,
        json!({"dialogue": "#Person1#: Hi! #Person2#: Hello."}),
        &[],
    );
    write(
        &d,
        "pairs.en",
        "a dog runs in the park.\ntwo kids play in the garden.\n",
    );
    write(
        &d,
        "pairs.de",
        "Ein Hund rennt im Park.\nZwei Kinder spielen im Garten.\n",
    );
    let langs = ["--src-lang", "en", "--tgt-lang", "de"];
    let prefix = d.join("pairs");
    generative(
        "translate",
        path(&prefix),
        &d,
        &["bleu", "chrf"],
        2,
        json!({"source": "a man reads a book."}),
        &langs,
    );
    let code = write(
        &d,
        "code.jsonl",
        &jsonl(&[
            json!({"task_id": "t/1", "prompt": "def add(a, b):\n", "canonical_solution": "    return a + b\n",
               "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "entry_point": "add"}),
            json!({"task_id": "t/2", "prompt": "def is_even(n):\n", "canonical_solution": "    return n % 2 == 0\n",
               "test": "def check(candidate):\n    assert candidate(4)\n", "entry_point": "is_even"}),
        ]),
    );
    generative(
        "code",
        &code,
        &d,
        &["pass@1"],
        2,
        json!({"prompt": "def double(x):\n"}),
        &[],
    );
    let gsm = write(
        &d,
        "gsm.jsonl",
        &jsonl(&[
            json!({"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = 7.\n#### 7"}),
            json!({"question": "There are 10 birds and 6 fly away. How many are left?", "answer": "10 - 6 = 4.\n#### 4"}),
        ]),
    );
    generative(
        "reasoning",
        &gsm,
        &d,
        &["exact_match"],
        2,
        json!({"question": "What is 2 + 2?"}),
        &[],
    );
}
