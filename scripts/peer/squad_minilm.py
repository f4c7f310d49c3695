#!/usr/bin/env python3
"""PyTorch/transformers peer of `recipes/minilm-squad.sh`: the same split of squad/train.json
(first 35 articles train, last 3 held out), the same recipe (question first, `only_second`
truncation, max length 256, doc stride 128, windows without the answer point at [CLS]; batch 16,
AdamW lr 1e-4, weight decay 0.01 except biases and LayerNorm, linear schedule with 6% warmup,
clipping at 1.0, 1 epoch; n-best 20, answers <= 30 tokens), written as transformers'
`examples/pytorch/question-answering/run_qa.py` does it, with the official SQuAD v1.1 EM/F1.
Prints the untrained and fine-tuned scores, the wall time and the training tokens/s, one JSON
line each.

  python scripts/peer/squad_minilm.py --model ~/.cache/tasklm/models/all-minilm-l6-v2 \
      --data ../shared/data/squad/train.json --threads 2
"""
import argparse, collections, json, math, random, re, string, time
import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--train-articles", type=int, default=35)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
random.seed(a.seed)
MAX_LEN, STRIDE, BATCH, LR, WD, WARMUP, N_BEST, MAX_ANSWER = 256, 128, 16, 1e-4, 0.01, 0.06, 20, 30


def examples(articles):
    out = []
    for art in articles:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                out.append({"context": para["context"], "question": qa["question"].lstrip(),
                            "answers": [x["text"] for x in qa["answers"]],
                            "starts": [x["answer_start"] for x in qa["answers"]]})
    return out


data = json.load(open(a.data))["data"]
train_ex, eval_ex = examples(data[:a.train_articles]), examples(data[a.train_articles:])
tok = AutoTokenizer.from_pretrained(a.model)
model = AutoModelForQuestionAnswering.from_pretrained(a.model, dtype=torch.float32)


def encode(exs):
    return tok([e["question"] for e in exs], [e["context"] for e in exs], truncation="only_second",
               max_length=MAX_LEN, stride=STRIDE, return_overflowing_tokens=True,
               return_offsets_mapping=True)


def train_features(exs):
    enc = encode(exs)
    feats = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids, seq = enc["input_ids"][i], enc.sequence_ids(i)
        e = exs[enc["overflow_to_sample_mapping"][i]]
        s_char = e["starts"][0]
        e_char = s_char + len(e["answers"][0])
        ts = 0
        while seq[ts] != 1:
            ts += 1
        te = len(ids) - 1
        while seq[te] != 1:
            te -= 1
        if not (offsets[ts][0] <= s_char and offsets[te][1] >= e_char):
            start = end = ids.index(tok.cls_token_id)
        else:
            while ts < len(offsets) and offsets[ts][0] <= s_char:
                ts += 1
            start = ts - 1
            while offsets[te][1] >= e_char:
                te -= 1
            end = te + 1
        feats.append((ids, enc["token_type_ids"][i], start, end))
    return feats


def pad(rows):
    n = max(len(r) for r in rows)
    return torch.tensor([r + [0] * (n - len(r)) for r in rows])


def normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(pred, truth):
    p, t = normalize(pred).split(), normalize(truth).split()
    same = sum((collections.Counter(p) & collections.Counter(t)).values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(t)
    return 2 * prec * rec / (prec + rec)


def evaluate():
    model.eval()
    enc = encode(eval_ex)
    n = len(enc["input_ids"])
    starts, ends = [], []
    with torch.no_grad():
        for b in range(0, n, 64):
            ids = pad(enc["input_ids"][b:b + 64])
            out = model(input_ids=ids, attention_mask=(ids != 0).long(),
                        token_type_ids=pad(enc["token_type_ids"][b:b + 64]))
            for k in range(ids.shape[0]):
                starts.append(out.start_logits[k].numpy())
                ends.append(out.end_logits[k].numpy())
    best = {}
    for i in range(n):
        ex_i = enc["overflow_to_sample_mapping"][i]
        seq, offsets = enc.sequence_ids(i), enc["offset_mapping"][i]
        s_log, e_log = starts[i][:len(offsets)], ends[i][:len(offsets)]
        for s in np.argsort(s_log)[-1:-N_BEST - 1:-1]:
            for e in np.argsort(e_log)[-1:-N_BEST - 1:-1]:
                if seq[s] != 1 or seq[e] != 1 or e < s or e - s + 1 > MAX_ANSWER:
                    continue
                score = s_log[s] + e_log[e]
                if ex_i not in best or score > best[ex_i][0]:
                    ctx = eval_ex[ex_i]["context"]
                    best[ex_i] = (score, ctx[offsets[s][0]:offsets[e][1]])
    em = f = 0.0
    for i, e in enumerate(eval_ex):
        pred = best.get(i, (0, ""))[1]
        em += max(float(normalize(pred) == normalize(t)) for t in e["answers"])
        f += max(f1(pred, t) for t in e["answers"])
    return {"exact_match": 100 * em / len(eval_ex), "f1": 100 * f / len(eval_ex),
            "questions": len(eval_ex)}


print(json.dumps({"untrained": evaluate()}), flush=True)
feats = train_features(train_ex)
steps = math.ceil(len(feats) / BATCH)
warm = math.ceil(WARMUP * steps)
no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                         {"params": no_decay, "weight_decay": 0.0}], lr=LR)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: s / max(1, warm) if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
order = list(range(len(feats)))
random.shuffle(order)
model.train()
tokens, t0 = 0, time.perf_counter()
for step in range(steps):
    batch = [feats[j] for j in order[step * BATCH:(step + 1) * BATCH]]
    ids = pad([f[0] for f in batch])
    tokens += sum(len(f[0]) for f in batch)
    out = model(input_ids=ids, attention_mask=(ids != 0).long(),
                token_type_ids=pad([f[1] for f in batch]),
                start_positions=torch.tensor([f[2] for f in batch]),
                end_positions=torch.tensor([f[3] for f in batch]))
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    if step % 50 == 0:
        print(json.dumps({"step": step, "of": steps, "loss": out.loss.item(),
                          "elapsed_s": round(time.perf_counter() - t0, 1)}), flush=True)
dt = time.perf_counter() - t0
print(json.dumps({"windows": len(feats), "updates": steps, "train_s": round(dt, 1),
                  "train_tokens_per_s": round(tokens / dt, 1)}), flush=True)
print(json.dumps({"fine_tuned": evaluate()}), flush=True)
