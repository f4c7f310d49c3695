#!/usr/bin/env python3
"""Pinned per-step losses (as llm.c pins its expected losses): 10 SFT updates of the tiny
decoder (tests/fixtures/tiny_decoder, from scripts/golden/tiny_models.py) on a fixed batch, in
PyTorch, replicating tasklm's trainer update exactly:

- the loss of an update is the summed cross-entropy of the supervised next-token positions
  (label != -100, position t predicting token t+1) over all its micro-batches, divided by the
  number of supervised tokens across the whole accumulated batch (not per micro-batch);
- every update here is one pass over the 4 rows (batch size 2, 2 micro-batches), so the data
  order the trainer's seed picks only changes the summation order;
- gradient clipping to a global L2 norm as `torch.nn.utils.clip_grad_norm_` (coefficient
  max_norm / (norm + 1e-6), only when below 1);
- AdamW as `torch.optim.AdamW` (betas 0.9/0.999, eps 1e-8, decoupled weight decay), with no
  decay on rank-1 parameters (norm scales; the rule transformers' Trainer applies);
- the learning rate of update k (k = 0, 1, ...) is transformers' linear schedule with
  ceil(warmup_ratio * steps) warmup steps, so update 0 has learning rate 0;
- the recorded loss of an update is the one computed before it is applied; dropout is off
  (the tiny Llama has none).

Writes tests/fixtures/sft_losses.json: the versions used, the trainer arguments (the keys of a
tasklm recipe), the rows (ids and labels), and per update the loss, the gradient norm before
clipping and the learning rate.

  python scripts/golden/sft_losses.py
"""
import json, math, os
import torch
from transformers import AutoTokenizer, LlamaForCausalLM, get_linear_schedule_with_warmup
from versions import print_versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
MODEL = os.path.join(FIX, "tiny_decoder")
ARGS = {"max_steps": 10, "batch_size": 2, "grad_accum": 2, "lr": 3e-3, "weight_decay": 0.1,
        "warmup_ratio": 0.2, "scheduler": "linear", "max_grad_norm": 0.5, "seed": 42,
        "save_every": 0}
PAIRS = [("Review: a great film Sentiment:", " positive"),
         ("What is the capital of France?", " The capital of France is Paris."),
         ("Tom has 3 apples and buys 4 more. How many apples does he have?", " 3 + 4 = 7. #### 7"),
         ("Translate English to German: a dog runs in the park.", " Ein Hund rennt im Park.")]


def rows(tok):
    out = []
    for prompt, completion in PAIRS:
        p = tok(prompt, add_special_tokens=False).input_ids
        c = tok(completion, add_special_tokens=False).input_ids + [tok.eos_token_id]
        out.append({"input_ids": p + c, "labels": [-100] * len(p) + c})
    return out


def main():
    versions = print_versions("tokenizers")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(MODEL)
    data = rows(tok)
    model = LlamaForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager")
    model.train()
    named = sorted(model.named_parameters())
    decay = [p for _, p in named if p.dim() >= 2]
    no_decay = [p for _, p in named if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ARGS["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=ARGS["lr"], betas=(0.9, 0.999), eps=1e-8, foreach=False)
    steps = ARGS["max_steps"]
    warmup = math.ceil(ARGS["warmup_ratio"] * steps)
    sched = get_linear_schedule_with_warmup(opt, warmup, steps)
    n = len(data)
    assert n == ARGS["batch_size"] * ARGS["grad_accum"], "each update is one pass over the rows"
    micro = [list(range(i, min(i + ARGS["batch_size"], n))) for i in range(0, n, ARGS["batch_size"])]
    scored = sum(sum(1 for l in r["labels"][1:] if l != -100) for r in data)
    losses, norms, lrs = [], [], []
    for step in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for m in micro:
            part = torch.zeros(())
            for i in m:  # one row at a time: no padding, the same sums as a padded batch
                ids = torch.tensor([data[i]["input_ids"]])
                labels = torch.tensor(data[i]["labels"])
                logits = model(input_ids=ids).logits[0]
                part = part + torch.nn.functional.cross_entropy(
                    logits[:-1], labels[1:], ignore_index=-100, reduction="sum")
            (part / scored).backward()
            total += part.item()
        losses.append(total / scored)
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), ARGS["max_grad_norm"]).item())
        opt.step()
        sched.step()
        print(f"step {step + 1}: loss {losses[-1]:.6f} grad_norm {norms[-1]:.6f} lr {lrs[-1]:.6g}")
    assert any(x > ARGS["max_grad_norm"] for x in norms), "clipping is never exercised"
    assert losses[-1] < losses[0] - 0.1, "the loss must fall"
    with open(os.path.join(FIX, "sft_losses.json"), "w") as f:
        json.dump({"versions": versions,
                   "model": "tiny_decoder", "args": ARGS, "scored_tokens": scored, "rows": data,
                   "losses": losses, "grad_norms": norms, "lrs": lrs}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
