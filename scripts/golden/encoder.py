#!/usr/bin/env python3
"""Golden fixtures for the BERT encoder and its heads, from PyTorch/transformers.

Writes into tests/fixtures/:
  tiny_bert/                  a random tiny BertForSequenceClassification (config.json,
                              model.safetensors) and golden.safetensors: a padded pair batch
                              (ids, token types, attention mask, labels), the last hidden states,
                              the logits, the mean cross-entropy loss, and every gradient
  minilm_golden.safetensors   all-minilm-l6-v2 (BertModel) on real sentences, single and paired,
                              right-padded in one batch: ids, token types, mask, last hidden
                              states, and the loss of a fixed seeded 3-label head on the pooler
                              output (head weights included)

Dropout is off (eval mode) so the values are deterministic.

Usage (in a venv with torch, transformers, safetensors):
  python scripts/golden/encoder.py --minilm ~/.cache/tasklm/models/all-minilm-l6-v2
"""
import argparse, os
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel
from versions import print_versions

print_versions('safetensors')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")


def tiny():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=32, type_vocab_size=2,
                     num_labels=3, hidden_act="gelu", layer_norm_eps=1e-12)
    model = BertForSequenceClassification(cfg).float()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:  # LayerNorm weights start at 1 and biases at 0: randomise them
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "LayerNorm.weight" in n else 0.0))
    out = os.path.join(FIX, "tiny_bert")
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    ids = torch.randint(1, 64, (3, 9))
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # row 1 has 6 real tokens, row 2 has 4
    mask[2, 4:] = 0
    ids = ids * mask  # padding id 0
    types = types * mask
    labels = torch.tensor([0, 2, 1])
    model.train(False)
    out_ = model(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
    loss = torch.nn.functional.cross_entropy(out_.logits, labels)
    loss.backward()
    tensors = {"input_ids": ids.to(torch.int64), "token_type_ids": types.to(torch.int64),
               "attention_mask": mask.to(torch.int64), "labels": labels.to(torch.int64),
               "hidden": out_.hidden_states[-1].detach().contiguous(),
               "logits": out_.logits.detach().contiguous(), "loss": loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        tensors[f"grad.{n}"] = p.grad.detach().contiguous()
    save_file(tensors, os.path.join(out, "golden.safetensors"))
    print(f"tiny_bert: loss {loss.item():.6f}")


def minilm(path):
    tok = AutoTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path).float()
    model.train(False)
    firsts = ["A man is playing a guitar on stage.",
              "the film is a charming, funny and moving ride",
              "Where is the Eiffel Tower?"]
    seconds = [None, None, "The Eiffel Tower is in Paris, France, on the Champ de Mars."]
    enc = [tok(a, b) if b else tok(a) for a, b in zip(firsts, seconds)]
    t = max(len(e["input_ids"]) for e in enc)
    pad = lambda v, x: v + [x] * (t - len(v))
    ids = torch.tensor([pad(e["input_ids"], tok.pad_token_id) for e in enc])
    types = torch.tensor([pad(e["token_type_ids"], 0) for e in enc])
    mask = torch.tensor([pad(e["attention_mask"], 0) for e in enc])
    out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    g = torch.Generator().manual_seed(7)
    head_w = torch.randn(3, model.config.hidden_size, generator=g) * 0.02
    head_b = torch.randn(3, generator=g) * 0.02
    logits = out.pooler_output @ head_w.T + head_b
    labels = torch.tensor([2, 0, 1])
    loss = torch.nn.functional.cross_entropy(logits, labels)
    save_file({"input_ids": ids.to(torch.int64), "token_type_ids": types.to(torch.int64),
               "attention_mask": mask.to(torch.int64), "labels": labels.to(torch.int64),
               "hidden": out.last_hidden_state.detach().contiguous(),
               "head_weight": head_w.contiguous(), "head_bias": head_b.contiguous(),
               "logits": logits.detach().contiguous(), "loss": loss.detach().reshape(1)},
              os.path.join(FIX, "minilm_golden.safetensors"))
    print(f"minilm: {ids.shape[0]} rows x {t} tokens, loss {loss.item():.6f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", required=True, help="all-minilm-l6-v2 model directory")
    a = ap.parse_args()
    tiny()
    minilm(a.minilm)
