#!/usr/bin/env python3
"""Golden values for tasklm's beam search: transformers' `generate(num_beams=...)` on a tiny
random Llama with peaked logits (weights drawn with std 1, so beams really differ and
hypotheses really end), for several prompts and settings: the token ids of every returned
hypothesis (cut to its own length by `beam_indices`) and its `sequences_scores`.

Writes tests/fixtures/tiny_beam/ (the model, with tiny_decoder's tokenizer) and
tests/fixtures/beam_golden.json. Usage: python scripts/golden/beam_search.py
"""
import collections, json, os, shutil
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from versions import print_versions

v = print_versions()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIX, "tiny_beam")
os.makedirs(OUT, exist_ok=True)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(FIX, "tiny_decoder", f), os.path.join(OUT, f))
base = json.load(open(os.path.join(FIX, "tiny_decoder", "config.json")))
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=base["vocab_size"], hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0,
                  tie_word_embeddings=False, bos_token_id=None, eos_token_id=base["eos_token_id"],
                  pad_token_id=base["pad_token_id"], initializer_range=1.0)
model = LlamaForCausalLM(cfg).float().eval()
model.save_pretrained(OUT, safe_serialization=True)
model.generation_config.save_pretrained(OUT)

g = torch.Generator().manual_seed(1)
prompts = [torch.randint(3, cfg.vocab_size, (n,), generator=g).tolist() for n in (3, 7, 12)]

# End-of-sequence tokens the model actually produces: the most frequent greedy tokens.
counts = collections.Counter()
with torch.no_grad():
    for p in prompts:
        out = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                             do_sample=False, max_new_tokens=20, eos_token_id=None)
        counts.update(out[0, len(p):].tolist())
common = [t for t, _ in counts.most_common(3)]
print("greedy's most common tokens", counts.most_common(3))

CASES = [
    {"num_beams": 4, "max_new_tokens": 12, "eos": [common[0]]},
    {"num_beams": 4, "max_new_tokens": 10, "eos": [common[0]], "length_penalty": 0.5,
     "early_stopping": True, "num_return_sequences": 2},
    {"num_beams": 3, "max_new_tokens": 10, "eos": [common[1]], "length_penalty": 2.0,
     "early_stopping": "never", "no_repeat_ngram_size": 2},
    {"num_beams": 4, "max_new_tokens": 12, "eos": [common[0], common[1]], "min_new_tokens": 5,
     "num_return_sequences": 3},
    {"num_beams": 2, "max_new_tokens": 6, "eos": [common[2]], "forced_eos_token_id": common[2],
     "length_penalty": -1.0},
    {"num_beams": 5, "max_new_tokens": 16, "eos": [cfg.eos_token_id], "no_repeat_ngram_size": 3},
]
results = []
with torch.no_grad():
    for case in CASES:
        for p in prompts:
            kw = {k: x for k, x in case.items() if k != "eos"}
            out = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                 do_sample=False, eos_token_id=case["eos"], pad_token_id=cfg.pad_token_id,
                                 output_scores=True, return_dict_in_generate=True, **kw)
            hyps = []
            for i in range(out.sequences.shape[0]):
                n = int((out.beam_indices[i] != -1).sum())
                hyps.append({"ids": out.sequences[i, len(p):len(p) + n].tolist(),
                             "score": float(out.sequences_scores[i])})
            results.append({"prompt": p, "settings": case, "hypotheses": hyps})
            print(case, p, [(h["ids"], round(h["score"], 4)) for h in hyps])
json.dump({"versions": v, "cases": results}, open(os.path.join(FIX, "beam_golden.json"), "w"), indent=1)
print("wrote", OUT, "and beam_golden.json")
