#!/usr/bin/env python3
"""Golden fixture for the vision-language model (issue 18): a tiny random
LlavaForConditionalGeneration that transformers builds from a config (no download): a CLIP
vision tower (32x32 images, 8x8 patches: 16 patch features + CLS), the Linear-GELU-Linear
projector, a Llama decoder; `vision_feature_layer` -2, `vision_feature_select_strategy`
default (CLS dropped), image token id 60.

Writes tests/fixtures/tiny_llava/ (save_pretrained: config.json, model.safetensors) and its
golden.safetensors: `input_ids` (2, 24) with 16 image tokens per row at different offsets,
`pixel_values` (2, 3, 32, 32), `image_features` (2, 16, 32) (the projector's output),
`logits` (2, 24, 64), `labels` (-100 on the prompt and image positions), `loss`, and the
gradient of every parameter (`grad.NAME`, under the file's names: transformers 5 writes
LLaVA's legacy `language_model.model.*`, `language_model.lm_head.*`, `vision_tower.*` (CLIP
without `vision_model.`), `multi_modal_projector.*`). Dropout off, norm weights
randomised.

Usage: python scripts/golden/llava.py
"""
import json, os
import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from versions import print_versions

v = print_versions("safetensors")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tiny_llava")
IMAGE = 60

torch.manual_seed(0)
vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, image_size=32, patch_size=8, projection_dim=32)
text = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                   tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE,
                  projector_hidden_act="gelu", vision_feature_layer=-2,
                  vision_feature_select_strategy="default")
model = LlavaForConditionalGeneration(cfg).eval()
with torch.no_grad():
    for n, p in model.named_parameters():
        if "norm" in n and n.endswith("weight"):
            p.copy_(torch.randn_like(p) * 0.1 + 1.0)
        elif "norm" in n or n.endswith("bias"):
            p.copy_(torch.randn_like(p) * 0.1)
        else:
            p.copy_(torch.randn_like(p) * 0.2)
model.save_pretrained(OUT)

g = torch.Generator().manual_seed(1)
pixels = torch.randn(2, 3, 32, 32, generator=g)
rows = []
for start in (3, 5):
    ids = torch.randint(3, 60, (24,), generator=g)
    ids[start:start + 16] = IMAGE
    rows.append(ids)
ids = torch.stack(rows)
labels = ids.clone()
labels[0, :19] = -100
labels[1, :21] = -100
with torch.no_grad():
    feats = model.model.get_image_features(pixel_values=pixels,
                                           vision_feature_layer=-2,
                                           vision_feature_select_strategy="default")
    # transformers 5 returns an output whose pooler_output is the per-image feature list.
    if hasattr(feats, "pooler_output"):
        feats = feats.pooler_output
    if isinstance(feats, (list, tuple)):
        feats = torch.stack(list(feats))
out = model(input_ids=ids, pixel_values=pixels, attention_mask=torch.ones_like(ids), labels=labels)
out.loss.backward()
golden = {"input_ids": ids.to(torch.int64), "pixel_values": pixels, "labels": labels.to(torch.int64),
          "image_features": feats.reshape(2, 16, 32).contiguous(),
          "logits": out.logits.detach().contiguous(), "loss": out.loss.detach().reshape(1)}
saved = {k for k in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
    os.path.join(OUT, "model.safetensors"))}
params = dict(model.named_parameters())


def param_name(saved_name):
    """transformers 5 saves LLaVA under its legacy names; in memory they sit under `model.`."""
    for old, new in [("language_model.model.", "model.language_model."),
                     ("language_model.lm_head.", "lm_head."),
                     ("vision_tower.", "model.vision_tower."),
                     ("multi_modal_projector.", "model.multi_modal_projector.")]:
        if saved_name.startswith(old):
            return new + saved_name[len(old):]
    return saved_name


for name in sorted(saved):
    p = params.get(param_name(name))
    if p is None:
        raise SystemExit(f"saved tensor {name} is no parameter: names differ between the state dict and the file")
    # The vision tower's post_layernorm and last layer feed nothing at layer -2: no gradient.
    golden[f"grad.{name}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).contiguous()
save_file(golden, os.path.join(OUT, "golden.safetensors"), metadata={"versions": json.dumps(v)})
print("saved", len(saved), "tensors; loss", out.loss.item(), "logits", tuple(out.logits.shape))
print(sorted(saved)[:6], "...", sorted(saved)[-3:])
