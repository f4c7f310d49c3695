#!/usr/bin/env python3
"""Cuts a real tokenizer.json down to a seed the fuzzer can run fast (stdlib only).

shrink_tokenizer.py TOKENIZER_JSON OUT      keeps the pipeline (normalizer, pre-tokenizer,
    post-processor, decoder, added tokens) and the model's first 400 vocabulary entries, with
    the merges among them, so the result is still a valid tokenizer of the same kind.
shrink_tokenizer.py --template TOKENIZER_CONFIG_JSON OUT   writes the config's chat template
    and a short conversation in the chat_template target's layout (template NUL messages).
"""
import json
import sys

KEEP = 400


def shrink(src, out):
    d = json.load(open(src, encoding="utf-8"))
    m = d.get("model", {})
    vocab = m.get("vocab")
    if isinstance(vocab, dict):
        kept = {k: v for k, v in vocab.items() if isinstance(v, int) and v < KEEP}
        for t in d.get("added_tokens", []):
            kept.setdefault(t["content"], t["id"])
        m["vocab"] = kept
        merges = []
        for mg in m.get("merges", []):
            a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
            if a in kept and b in kept and a + b in kept:
                merges.append(mg)
        if "merges" in m:
            m["merges"] = merges
    elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        m["vocab"] = vocab[:KEEP]
        if m.get("unk_id") is not None and m["unk_id"] >= KEEP:
            m["unk_id"] = 0
    d["added_tokens"] = [t for t in d.get("added_tokens", []) if t["id"] < KEEP + 2000][:64]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False, separators=(",", ":"))


def template(src, out):
    cfg = json.load(open(src, encoding="utf-8"))
    t = cfg.get("chat_template")
    if isinstance(t, list):  # [{"name", "template"}, ...]
        t = t[0].get("template") if t else None
    if not isinstance(t, str):
        return
    msgs = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Bye"}]}
    with open(out, "w", encoding="utf-8") as f:
        f.write(t + "\0" + json.dumps(msgs))


if __name__ == "__main__":
    if sys.argv[1] == "--template":
        template(sys.argv[2], sys.argv[3])
    else:
        shrink(sys.argv[1], sys.argv[2])
