#!/usr/bin/env python3
"""PyTorch/transformers peer of `recipes/multi30k-seq2seq.sh`'s training: the same small
Marian-style encoder-decoder (the `config.json` tasklm wrote, loaded as `MarianConfig` and
freshly initialised by `MarianMTModel`), the same tokenizer (the `tokenizer.json` tasklm
trained), the same data (Multi30k train en->de), batches (64 pairs of similar length: shuffled
mega-batches of 50 batches sorted by length, as transformers' `group_by_length`), loss
(cross-entropy with label smoothing 0.1 on the target tokens), optimizer (AdamW lr 1e-3,
weight decay 0.01 on matrices only as tasklm, clipping 1.0) and warmup. Runs `--steps` updates
and prints training tokens/s (each pair's source + target tokens, padding left out, as tasklm
counts them) and the mean loss of the last 20 updates.

Side by side in one run: `--tasklm BIN` first trains tasklm for the same number of updates
(`tasklm train --task translate --arch marian ... --max-steps N` into a scratch directory) and
reads its tokens/s from that run's metrics.jsonl, then runs PyTorch and prints both and the
ratio.

  python scripts/peer/multi30k_seq2seq.py --tasklm target/release/tasklm \
      --tokenizer OUT/tokenizer --data ../shared/data/multi30k --steps 100 --threads 2
"""
import argparse, gzip, json, os, random, subprocess, tempfile, time
import torch
from transformers import MarianConfig, MarianMTModel, AutoTokenizer, get_cosine_schedule_with_warmup
from transformers.models.marian.modeling_marian import shift_tokens_right

ap = argparse.ArgumentParser()
ap.add_argument("--tokenizer", required=True, help="the tokenizer directory tasklm trained")
ap.add_argument("--data", required=True, help="the multi30k directory")
ap.add_argument("--model-config", default="recipes/multi30k-marian.toml")
ap.add_argument("--tasklm", help="also train tasklm for --steps updates first")
ap.add_argument("--config-dir", help="a tasklm output directory with config.json (else made by --tasklm)")
ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--batch-size", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
random.seed(a.seed)
LR, WD, CLIP, EPS = 1e-3, 0.01, 1.0, 0.1


def lines(name):
    with gzip.open(os.path.join(a.data, name), "rt", encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f]


tmp = tempfile.mkdtemp(prefix="multi30k-peer-")
ours = None
config_dir = a.config_dir
if a.tasklm:
    config_dir = os.path.join(tmp, "tasklm")
    subprocess.run([a.tasklm, "--threads", str(a.threads), "train", "--task", "translate", "--arch", "marian",
                    "--model-config", a.model_config, "--tokenizer", a.tokenizer,
                    "--data", os.path.join(a.data, "train"), "--src-lang", "en", "--tgt-lang", "de",
                    "--out", config_dir, "--max-steps", str(a.steps), "--batch-size", str(a.batch_size),
                    "--lr", str(LR), "--weight-decay", str(WD), "--warmup-ratio", "0.05",
                    "--scheduler", "cosine", "--label-smoothing", str(EPS), "--save-every", "0"],
                   check=True)
    recs = [json.loads(l) for l in open(os.path.join(config_dir, "metrics.jsonl")) if '"loss"' in l]
    # The first update pays for warm-up allocations in both: measured from the second.
    toks = sum(r["tokens"] for r in recs[1:])
    secs = recs[-1]["elapsed_s"] - recs[0]["elapsed_s"]
    ours = {"tokens_per_s": toks / secs, "last20_loss": sum(r["loss"] for r in recs[-20:]) / len(recs[-20:])}
    print("tasklm:", json.dumps(ours), flush=True)
if not config_dir:
    raise SystemExit("give --tasklm or --config-dir")

tok = AutoTokenizer.from_pretrained(a.tokenizer)
cfg = MarianConfig.from_pretrained(config_dir)
model = MarianMTModel(cfg).train()
src, tgt = lines("train.en.gz"), lines("train.de.gz")
enc = [(tok(s).input_ids, tok(t).input_ids) for s, t in zip(src, tgt)]
lengths = [len(s) + len(t) for s, t in enc]

# transformers' LengthGroupedSampler: shuffle, cut into mega-batches of 50 batches, sort each
# by length (longest first), then batches in order.
idx = list(range(len(enc)))
random.shuffle(idx)
mega = a.batch_size * 50
order = []
for i in range(0, len(idx), mega):
    order += sorted(idx[i:i + mega], key=lambda j: -lengths[j])
batches = [order[i:i + a.batch_size] for i in range(0, len(order), a.batch_size)]

decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}], lr=LR)
sched = get_cosine_schedule_with_warmup(opt, int(0.05 * a.steps + 0.999), a.steps)
loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=EPS)
pad = cfg.pad_token_id
times, toks, losses = [], [], []
for step in range(a.steps):
    b = [enc[j] for j in batches[step % len(batches)]]
    S, T = max(len(s) for s, _ in b), max(len(t) for _, t in b)
    ids = torch.tensor([s + [pad] * (S - len(s)) for s, _ in b])
    mask = (ids != pad).long()
    labels = torch.tensor([t + [-100] * (T - len(t)) for _, t in b])
    t0 = time.perf_counter()
    dec = shift_tokens_right(labels, pad, cfg.decoder_start_token_id)
    logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
    loss = loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - t0)
    toks.append(sum(len(s) + len(t) for s, t in b))
    losses.append(loss.item())
peer = {"tokens_per_s": sum(toks[1:]) / sum(times[1:]), "last20_loss": sum(losses[-20:]) / len(losses[-20:])}
print("pytorch:", json.dumps(peer), flush=True)
print(f"torch {torch.__version__}, threads {a.threads}, {a.steps} updates of {a.batch_size} pairs")
if ours:
    print(f"training tokens/s: tasklm {ours['tokens_per_s']:.0f}, PyTorch {peer['tokens_per_s']:.0f}, "
          f"ratio {ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x")
