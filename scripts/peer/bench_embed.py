#!/usr/bin/env python3
"""sentence-transformers peer of `tasklm bench embed`: the same sentences (a JSON list in
`--texts`), `SentenceTransformer(model).encode(texts, batch_size)` on the CPU, f32, `--threads`
threads. One warm-up pass, then `--runs` timed passes; prints one JSON line:
{"sentences_per_s": (median), "peak_rss_bytes": ..., "torch": ..., "sentence_transformers": ...}.

  python scripts/peer/bench_embed.py --model DIR --texts texts.json --batch-size 32 --runs 3
"""
import argparse, json, statistics, time
import torch
import sentence_transformers
from sentence_transformers import SentenceTransformer

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--texts", required=True)
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
texts = json.load(open(a.texts))
model = SentenceTransformer(a.model, device="cpu")
model.encode(texts, batch_size=a.batch_size)
times = []
for _ in range(a.runs):
    t0 = time.perf_counter()
    model.encode(texts, batch_size=a.batch_size)
    times.append(time.perf_counter() - t0)
hwm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"sentences_per_s": len(texts) / statistics.median(times),
                  "peak_rss_bytes": hwm_kb * 1024,
                  "torch": torch.__version__,
                  "sentence_transformers": sentence_transformers.__version__}))
