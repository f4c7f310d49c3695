#!/usr/bin/env python3
"""Golden sentence embeddings of all-minilm-l6-v2 from sentence-transformers.

Encodes the first 100 questions of SQuAD's train.json (the shared copy beside the repository)
with SentenceTransformer(model).encode (its modules.json: mean pooling, Normalize; its
max_seq_length), batch size 32, f32, and writes into tests/fixtures/:
  minilm_embeddings.json          {"model", "versions", "sentences": [...]}
  minilm_embeddings.safetensors   "embeddings": (100, 384) f32, in sentence order

Usage (in a venv with torch, sentence-transformers, safetensors):
  python scripts/golden/embeddings.py [--model ~/.cache/tasklm/models/all-minilm-l6-v2]
      [--squad ../shared/data/squad/train.json]
"""
import argparse, json, os
import torch
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from versions import print_versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
HOME = os.environ.get("TASKLM_HOME", os.path.expanduser("~/.cache/tasklm"))

ap = argparse.ArgumentParser()
ap.add_argument("--model", default=os.path.join(HOME, "models", "all-minilm-l6-v2"))
ap.add_argument("--squad", default=os.path.join(ROOT, "..", "shared", "data", "squad", "train.json"))
ap.add_argument("-n", type=int, default=100)
a = ap.parse_args()
versions = print_versions("sentence-transformers", "safetensors")

data = json.load(open(a.squad))["data"]
sentences = [q["question"] for art in data for p in art["paragraphs"] for q in p["qas"]][: a.n]
model = SentenceTransformer(a.model, device="cpu")
emb = model.encode(sentences, batch_size=32, convert_to_tensor=True).float().contiguous()
print(f"{len(sentences)} sentences -> {tuple(emb.shape)}, max_seq_length {model.max_seq_length}")
save_file({"embeddings": emb}, os.path.join(FIX, "minilm_embeddings.safetensors"))
with open(os.path.join(FIX, "minilm_embeddings.json"), "w") as f:
    json.dump({"model": "all-minilm-l6-v2", "versions": versions, "sentences": sentences}, f,
              indent=1, ensure_ascii=False)
