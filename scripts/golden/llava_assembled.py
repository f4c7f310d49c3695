#!/usr/bin/env python3
"""Checks that transformers' LlavaForConditionalGeneration loads a LLaVA directory tasklm made
from parts (`cargo run -p tasklm-tasks --example assemble_llava -- VISION DECODER DIR`) and
computes tasklm's logits for the input in DIR/check.safetensors (every weight used: no
tensor missing or unexpected on loading; a ViT's unused pooler aside). Prints the largest
logit difference; fails above 1e-4 of the largest logit (at least 1e-4: float sums over 30
layers of SmolLM2 differ by about 1e-4 on logits of 20 or more).

  python scripts/golden/llava_assembled.py DIR
"""
import sys
import torch
from safetensors.torch import load_file
from transformers import LlavaForConditionalGeneration
from versions import print_versions

print_versions("safetensors")
d = sys.argv[1]
model, info = LlavaForConditionalGeneration.from_pretrained(d, dtype=torch.float32,
                                                           output_loading_info=True)
model.eval()
missing = [k for k in info["missing_keys"] if "pooler" not in k]
assert not missing and not info["unexpected_keys"], info
c = load_file(f"{d}/check.safetensors")
with torch.no_grad():
    logits = model(input_ids=c["input_ids"], pixel_values=c["pixel_values"],
                   attention_mask=torch.ones_like(c["input_ids"])).logits
gap = (logits - c["logits"]).abs().max().item()
top = logits.abs().max().item()
print(f"transformers vs tasklm logits {tuple(logits.shape)}: max |difference| {gap:.3g} "
      f"(largest |logit| {top:.3g})")
assert gap < 1e-4 * max(1.0, top), gap
