#!/usr/bin/env python3
"""Proves that an encoder-decoder trained from scratch by `tasklm train --arch` is a directory
transformers' AutoModelForSeq2SeqLM and AutoTokenizer load, and that transformers generates the
same translations from it as tasklm does.

For each arch (marian and t5 with a Unigram tokenizer, bart with a byte-level BPE one): trains a
tokenizer and a small model (2 + 2 layers, 64 wide) with the tasklm binary on the first
`--pairs` Multi30k en->de training pairs, then translates the first `--sources` validation
sentences with `tasklm eval --predictions` (greedy, and beam search with 4 beams) and with
`model.generate` (same settings, the directory's generation_config.json), and compares the
texts and the tokenizer's ids. Exits non-zero on any difference.

  python scripts/golden/seq2seq_fresh.py --tasklm target/release/tasklm --data ../shared/data/multi30k
"""
import argparse, gzip, json, os, subprocess, sys, tempfile
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from versions import print_versions

print_versions()
ap = argparse.ArgumentParser()
ap.add_argument("--tasklm", required=True)
ap.add_argument("--data", required=True, help="the multi30k directory (train.en.gz, ...)")
ap.add_argument("--pairs", type=int, default=512)
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--sources", type=int, default=16)
ap.add_argument("--arch", nargs="*", default=["marian", "t5", "bart"])
a = ap.parse_args()
torch.set_num_threads(2)


def lines(name, n):
    with gzip.open(os.path.join(a.data, name), "rt", encoding="utf-8") as f:
        return [next(f).strip() for _ in range(n)]


CONFIGS = {
    "t5": "d_model = 64\nd_kv = 16\nd_ff = 128\nnum_layers = 2\nnum_decoder_layers = 2\nnum_heads = 4\n",
    "bart": "d_model = 64\nencoder_layers = 2\ndecoder_layers = 2\nencoder_attention_heads = 4\n"
            "decoder_attention_heads = 4\nencoder_ffn_dim = 128\ndecoder_ffn_dim = 128\n"
            "max_position_embeddings = 128\n",
}
CONFIGS["marian"] = CONFIGS["bart"]

src, tgt = lines("train.en.gz", a.pairs), lines("train.de.gz", a.pairs)
val_src, val_tgt = lines("val.en.gz", a.sources), lines("val.de.gz", a.sources)
failures = 0
with tempfile.TemporaryDirectory() as tmp:
    def path(n):
        return os.path.join(tmp, n)

    def write_jsonl(name, pairs):
        with open(path(name), "w") as f:
            for s, t in pairs:
                f.write(json.dumps({"source": s, "target": t}) + "\n")
        return path(name)

    train = write_jsonl("train.jsonl", zip(src, tgt))
    val = write_jsonl("val.jsonl", zip(val_src, val_tgt))
    with open(path("corpus.txt"), "w") as f:
        f.write("\n".join(src + tgt) + "\n")
    run = lambda *args: subprocess.run([a.tasklm, "--threads", "2", *args], check=True,
                                       capture_output=True, text=True)
    for arch in a.arch:
        kind = "bpe" if arch == "bart" else "unigram"
        tok_dir, out = path(f"tok-{arch}"), path(f"model-{arch}")
        run("tokenizer", "train", "--data", path("corpus.txt"), "--vocab-size", "500",
            "--kind", kind, "--out", tok_dir)
        with open(path(f"{arch}.toml"), "w") as f:
            f.write(CONFIGS[arch])
        run("train", "--task", "translate", "--arch", arch, "--model-config", path(f"{arch}.toml"),
            "--tokenizer", tok_dir, "--data", train, "--src-lang", "en", "--tgt-lang", "de",
            "--out", out, "--max-steps", str(a.steps), "--batch-size", "16", "--lr", "3e-3",
            "--label-smoothing", "0.1", "--save-every", "0")
        tok = AutoTokenizer.from_pretrained(out)
        model = AutoModelForSeq2SeqLM.from_pretrained(out, dtype=torch.float32).eval()
        print(f"{arch}: transformers loaded {type(model).__name__} and {type(tok).__name__}")
        for beams in (1, 4):
            preds = path(f"{arch}-{beams}.jsonl")
            run("eval", "--task", "translate", "--model", out, "--data", val, "--src-lang", "en",
                "--tgt-lang", "de", "--num-beams", str(beams), "--predictions", preds)
            ours = [json.loads(l)["prediction"] for l in open(preds)]
            same = 0
            for s, o in zip(val_src, ours):
                ids = tok(s, return_tensors="pt").input_ids
                with torch.no_grad():
                    g = model.generate(ids, do_sample=False, num_beams=beams, max_new_tokens=128)
                theirs = tok.decode(g[0], skip_special_tokens=True).strip()
                if theirs == o:
                    same += 1
                else:
                    failures += 1
                    print(f"  {arch} beams {beams}: {s!r}\n    tasklm:       {o!r}\n    transformers: {theirs!r}")
            print(f"{arch}, {beams} beam(s): {same}/{len(val_src)} translations identical, "
                  f"e.g. {val_src[0]!r} -> {ours[0]!r}")
print("OK" if failures == 0 else f"{failures} differences")
sys.exit(1 if failures else 0)
