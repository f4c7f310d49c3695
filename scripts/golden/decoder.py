#!/usr/bin/env python3
"""Golden fixtures for the decoder, from PyTorch/transformers.

Writes into tests/fixtures/:
  tiny_llama/, tiny_qwen2/      random tiny checkpoints (config.json, model.safetensors) and
                                golden.safetensors: input ids, labels, logits, loss, every gradient
  smollm2_logits.safetensors    last-position logits (f32) of the real SmolLM2-135M-Instruct GGUF,
                                dequantized by transformers, for fixed prompts, plus their ids
  smollm2_golden.json           prompts, ids, greedy continuation with top-5 logprobs per step
  smollm2_tokenizer.json        token ids transformers gives for ~3,000 real lines of ../shared/data
                                (referenced by file/row/field, the text is not copied) plus our
                                own emoji/unicode lines
  qwen_coder_{logits.safetensors,golden.json,tokenizer.json}
                                the same three for Qwen2.5-Coder-0.5B-Instruct's GGUF (the catalog's
                                six-part file: mixed Q5_0/Q4_K/Q6_K/Q8_0, dequantized by transformers)

Usage (in a venv with torch, transformers, gguf, accelerate, safetensors):
  python scripts/golden/decoder.py --gguf PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf
  python scripts/golden/decoder.py --qwen-gguf PATH/TO/Qwen2.5-Coder-0.5B-Instruct.gguf   # only Qwen
"""
import argparse, gzip, json, os, sys
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from versions import print_versions

print_versions('gguf', 'accelerate', 'safetensors')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
DATA = os.path.join(ROOT, "..", "shared", "data")


def tiny(kind):
    torch.manual_seed(0 if kind == "llama" else 1)
    common = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)
    if kind == "llama":
        cfg, cls = LlamaConfig(**common), LlamaForCausalLM
    else:
        cfg, cls = Qwen2Config(**common, use_sliding_window=False), Qwen2ForCausalLM
    model = cls(cfg).float()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:  # norms start at 1 and biases at 0: randomise so they are tested
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in n else 0.0))
    out = os.path.join(FIX, f"tiny_{kind}")
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    ids = torch.randint(0, 128, (2, 10))
    labels = ids.clone()
    labels[:, :3] = -100
    labels[1, 7] = -100
    model.train(False)
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 128), labels[:, 1:].reshape(-1), ignore_index=-100)
    loss.backward()
    tensors = {"input_ids": ids.to(torch.int64), "labels": labels.to(torch.int64),
               "logits": logits.detach().contiguous(), "loss": loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        tensors[f"grad.{n}"] = p.grad.detach().contiguous()
    save_file(tensors, os.path.join(out, "golden.safetensors"))
    print(f"tiny_{kind}: loss {loss.item():.6f}")


def tokenizer_items():
    """(file, row, field) references to real text, read the same way by the Rust test."""
    items = []
    for lang in ["en", "de", "fr", "cs"]:
        items += [(f"multi30k/val.{lang}.gz", i, None) for i in range(400)]
    items += [("mbpp/mbxp_mbpp_release_v1.jsonl", i, f) for i in range(200) for f in ["prompt", "canonical_solution"]]
    items += [("gsm8k/train.jsonl", i, f) for i in range(400) for f in ["question", "answer"]]
    items += [("sst2/dev.tsv", i, "sentence") for i in range(300)]
    return items


def read_item(file, row, field):
    path = os.path.join(DATA, file)
    if file.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read().split("\n")[row]
    if file.endswith(".tsv"):
        with open(path, encoding="utf-8") as f:
            return f.read().split("\n")[row + 1].split("\t")[0]
    with open(path, encoding="utf-8") as f:
        return json.loads(f.read().split("\n")[row])[field]


EXTRA = [
    "I love this movie 😍🔥 10/10 would watch again 👍🏽",
    "Family: 👨‍👩‍👧‍👦 flags: 🇫🇷🇩🇪 keycap: 1️⃣",
    "日本語のテキストと中文文本，还有한국어 문장。",
    "Ελληνικά, русский текст, עברית, العربية",
    "Mixed\ttabs\n\nand   spaces   and\r\nCRLF",
    "Numbers: 3.14159, 1,000,000, -42, 0x1F, 1e-9, 2024-11-28",
    "def f(x):\n    return {'a': [x ** 2 for _ in range(10)]}  # comment",
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "  leading spaces and trailing   ",
    "Ünïcödé àccénts çà et là — “quotes” ‘single’ … ellipsis",
]


def gguf_golden(gguf_path, prefix):
    folder, name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()

    items = tokenizer_items()
    rows = [{"file": f, "row": r, "field": fld, "ids": tok(read_item(f, r, fld), add_special_tokens=True).input_ids}
            for f, r, fld in items]
    extra = [{"text": t, "ids": tok(t, add_special_tokens=True).input_ids} for t in EXTRA]
    with open(os.path.join(FIX, f"{prefix}_tokenizer.json"), "w") as f:
        json.dump({"items": rows, "extra": extra}, f, ensure_ascii=False, separators=(",", ":"))

    chat = tok.apply_chat_template([{"role": "user", "content": "What's the capital of Germany?"}],
                                   tokenize=False, add_generation_prompt=True)
    prompts = ["The capital of France is", chat,
               "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
               "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt."]
    tensors, golden = {}, {"prompts": [], "chat_prompt": chat}
    with torch.no_grad():
        for i, p in enumerate(prompts):
            ids = tok(p, return_tensors="pt").input_ids
            logits = model(input_ids=ids).logits[0]
            tensors[f"logits.{i}"] = logits[-1].contiguous()
            tensors[f"ids.{i}"] = ids[0].to(torch.int64).contiguous()
            # Greedy continuation with top-5 logprobs at each step.
            out = model.generate(ids, max_new_tokens=8, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, pad_token_id=tok.eos_token_id)
            steps = []
            for s, score in zip(out.sequences[0, ids.shape[1]:].tolist(), out.scores):
                lp = torch.log_softmax(score[0].float(), -1)
                top = torch.topk(lp, 5)
                steps.append({"id": s, "logprob": lp[s].item(),
                              "top": [[j, v] for j, v in zip(top.indices.tolist(), top.values.tolist())]})
            golden["prompts"].append({"text": p, "ids": ids[0].tolist(), "greedy": steps,
                                      "greedy_text": tok.decode(out.sequences[0, ids.shape[1]:])})
            print(repr(p[:40]), "->", repr(golden["prompts"][-1]["greedy_text"]))
    save_file(tensors, os.path.join(FIX, f"{prefix}_logits.safetensors"))
    with open(os.path.join(FIX, f"{prefix}_golden.json"), "w") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
    paris = golden["prompts"][0]["greedy"][0]
    print("top token after 'The capital of France is':", paris["id"], round(paris["logprob"], 4))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", help="SmolLM2-135M-Instruct GGUF: the tiny fixtures and smollm2_*")
    ap.add_argument("--qwen-gguf", help="Qwen2.5-Coder-0.5B-Instruct GGUF: qwen_coder_*")
    a = ap.parse_args()
    if not a.gguf and not a.qwen_gguf:
        ap.error("give --gguf and/or --qwen-gguf")
    os.makedirs(FIX, exist_ok=True)
    if a.gguf:
        tiny("llama")
        tiny("qwen2")
        gguf_golden(a.gguf, "smollm2")
    if a.qwen_gguf:
        gguf_golden(a.qwen_gguf, "qwen_coder")
