#!/usr/bin/env python3
"""Golden fixtures for the vision encoders and image preprocessing, from PyTorch/transformers,
on tiny random models that transformers builds from a config (no download):

  tiny_vit/          ViTForImageClassification (3 labels, backbone under `vit.`), with a
                     ViTImageProcessor preprocessor_config.json (32x32 bilinear, mean/std 0.5)
  tiny_vit_model/    the same backbone as a bare ViTModel with a pooler (names at the top)
  tiny_clip_vision/  CLIPVisionModel (quick_gelu; transformers 5 saves it without the
                     `vision_model.` prefix that CLIPModel checkpoints have), with a CLIPImageProcessor
                     preprocessor_config.json (short edge 36, centre crop 32, bicubic)

Each golden.safetensors holds a batch of 3 random images (`pixel_values`), `labels`, every
layer's hidden states (`hidden.0` = embeddings ... `hidden.N`), `last_hidden_state`, the pooled
output, the logits and mean cross-entropy loss of a classification head, and every parameter's
gradient (`grad.NAME`, under the saved checkpoint's names). For ViT the head is ViTForImageClassification's `classifier` (on the
normed [CLS]); for CLIP it is a linear head on `pooler_output` made here (`head.weight`,
`head.bias`, and their gradients `grad.head.*`). Dropout is off (eval mode); layer-norm weights
are randomised so they are exercised.

tests/fixtures/vision_images/ holds two small derived images (an easy-VQA image re-encoded as
JPEG by PIL, and one resized to a non-square 50x37 PNG), the processor configs in
processors.json, and golden.safetensors: `{processor}.{image}` = transformers' pixel_values for
that image (3, H, W), from transformers' PIL image processors (`ViTImageProcessorPil`,
`CLIPImageProcessorPil`: PIL's resize, as transformers' processors without torchvision), for the two derived images and easy-VQA training images 0-2 (read in place
from ../shared/data/easy_vqa; not copied).

Usage: python scripts/golden/vision.py
"""
import json, os
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, ViTConfig,
                          ViTForImageClassification, ViTImageProcessorPil, ViTModel)
from versions import print_versions

v = print_versions("safetensors", "pillow")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
EASY_VQA = os.path.join(os.path.dirname(ROOT), "shared", "data", "easy_vqa", "train", "images")
if not os.path.isdir(EASY_VQA):
    EASY_VQA = "/work/shared/data/easy_vqa/train/images"


def randomize(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n and n.endswith("weight"):
                p.copy_(torch.randn_like(p) * 0.1 + 1.0)
            elif "norm" in n:
                p.copy_(torch.randn_like(p) * 0.1)
            else:  # larger than the default init, so outputs are not near-uniform
                p.copy_(torch.randn_like(p) * 0.3)


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 32, 32, generator=g), torch.tensor([0, 2, 1])


def saved_names(model, path):
    """Each parameter's name in the saved model.safetensors. transformers 5 renames modules
    inside (ViT's `vit.layers.N.attention.q_proj`) and converts back to the checkpoint names
    on save (`vit.encoder.layer.N.attention.attention.query`); the tensors are matched by
    value (random, so each is unique)."""
    saved = load_file(os.path.join(path, "model.safetensors"))
    out = {}
    for n, p in model.named_parameters():
        hits = [k for k, t in saved.items() if t.shape == p.shape and torch.equal(t, p.detach())]
        assert len(hits) == 1, (n, hits)
        out[n] = hits[0]
    return out


def grads(model, tensors, names):
    for n, p in model.named_parameters():
        assert p.grad is not None, f"{n} received no gradient"
        tensors[f"grad.{names[n]}"] = p.grad.detach().contiguous()


def save(name, tensors):
    out = os.path.join(FIX, name)
    save_file({k: t.detach().clone().contiguous() for k, t in tensors.items()},
              os.path.join(out, "golden.safetensors"), metadata={"versions": json.dumps(v)})


def vit():
    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, image_size=32, patch_size=8, num_channels=3,
                    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                    id2label={0: "circle", 1: "rectangle", 2: "triangle"},
                    label2id={"circle": 0, "rectangle": 1, "triangle": 2})
    model = ViTForImageClassification(cfg).float()
    randomize(model)
    out = os.path.join(FIX, "tiny_vit")
    model.save_pretrained(out, safe_serialization=True)
    ViTImageProcessorPil(size={"height": 32, "width": 32}, resample=2, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(out)
    model.train(False)
    pixels, labels = batch()
    o = model(pixel_values=pixels, labels=labels, output_hidden_states=True)
    o.loss.backward()
    t = {"pixel_values": pixels, "labels": labels.to(torch.int64),
         "logits": o.logits.detach(), "loss": o.loss.detach().reshape(1)}
    for i, h in enumerate(o.hidden_states):
        t[f"hidden.{i}"] = h.detach()
    with torch.no_grad():
        t["last_hidden_state"] = model.vit(pixel_values=pixels).last_hidden_state
    grads(model, t, saved_names(model, out))
    save("tiny_vit", t)
    print("tiny_vit loss", o.loss.item(), "layers", len(o.hidden_states))

    # The same backbone as a bare ViTModel with a pooler: names at the top.
    torch.manual_seed(2)
    bare = ViTModel(cfg, add_pooling_layer=True).float()
    randomize(bare)
    missing = bare.load_state_dict(model.vit.state_dict(), strict=False)
    assert missing.missing_keys == ["pooler.dense.weight", "pooler.dense.bias"], missing
    out = os.path.join(FIX, "tiny_vit_model")
    bare.save_pretrained(out, safe_serialization=True)
    bare.train(False)
    with torch.no_grad():
        ob = bare(pixel_values=pixels)
    save("tiny_vit_model", {"pixel_values": pixels, "last_hidden_state": ob.last_hidden_state,
                            "pooler_output": ob.pooler_output})


def clip():
    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8, num_channels=3,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5, attention_dropout=0.1)
    model = CLIPVisionModel(cfg).float()
    randomize(model)
    out = os.path.join(FIX, "tiny_clip_vision")
    model.save_pretrained(out, safe_serialization=True)
    CLIPImageProcessorPil(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
                       resample=3).save_pretrained(out)
    model.train(False)
    pixels, labels = batch()
    g = torch.Generator().manual_seed(3)
    w = (torch.randn(3, 32, generator=g) * 0.3).requires_grad_()
    b = (torch.randn(3, generator=g) * 0.1).requires_grad_()
    o = model(pixel_values=pixels, output_hidden_states=True)
    logits = o.pooler_output @ w.T + b
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    t = {"pixel_values": pixels, "labels": labels.to(torch.int64),
         "head.weight": w.detach(), "head.bias": b.detach(),
         "grad.head.weight": w.grad, "grad.head.bias": b.grad,
         "last_hidden_state": o.last_hidden_state.detach(),
         "pooler_output": o.pooler_output.detach(),
         "logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for i, h in enumerate(o.hidden_states):
        t[f"hidden.{i}"] = h.detach()
    grads(model, t, saved_names(model, out))
    save("tiny_clip_vision", t)
    print("tiny_clip_vision loss", loss.item(), "layers", len(o.hidden_states))


PROCESSORS = {
    "vit_bilinear_32": {"image_processor_type": "ViTImageProcessor", "do_resize": True,
                        "size": {"height": 32, "width": 32}, "resample": 2,
                        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    "vit_bicubic_48x40": {"image_processor_type": "ViTImageProcessor", "do_resize": True,
                          "size": {"height": 48, "width": 40}, "resample": 3,
                          "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                          "image_mean": [0.485, 0.456, 0.406],
                          "image_std": [0.229, 0.224, 0.225]},
    "vit_bilinear_up_72": {"image_processor_type": "ViTImageProcessor", "do_resize": True,
                           "size": {"height": 72, "width": 72}, "resample": 2,
                           "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    "clip_36_crop_32": {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
                        "size": {"shortest_edge": 36}, "resample": 3,
                        "do_center_crop": True, "crop_size": {"height": 32, "width": 32},
                        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                        "image_mean": [0.48145466, 0.4578275, 0.40821073],
                        "image_std": [0.26862954, 0.26130258, 0.27577711],
                        "do_convert_rgb": True},
    # The crop is larger than the resized image: transformers pads it with zeros.
    "clip_20_crop_24_pad": {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
                            "size": {"shortest_edge": 20}, "resample": 3,
                            "do_center_crop": True, "crop_size": {"height": 24, "width": 24},
                            "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                            "image_mean": [0.48145466, 0.4578275, 0.40821073],
                            "image_std": [0.26862954, 0.26130258, 0.27577711],
                            "do_convert_rgb": True},
}


def processor(cfg):
    kw = {k: x for k, x in cfg.items() if k != "image_processor_type"}
    cls = {"ViTImageProcessor": ViTImageProcessorPil, "CLIPImageProcessor": CLIPImageProcessorPil}
    return cls[cfg["image_processor_type"]](**kw)


def images():
    out = os.path.join(FIX, "vision_images")
    os.makedirs(out, exist_ok=True)
    src0 = Image.open(os.path.join(EASY_VQA, "0.png"))
    print("easy-vqa image mode", src0.mode, src0.size)
    src0.convert("RGB").save(os.path.join(out, "shape.jpg"), quality=90)
    Image.open(os.path.join(EASY_VQA, "1.png")).convert("RGB").resize(
        (50, 37), Image.BICUBIC).save(os.path.join(out, "wide.png"))
    json.dump(PROCESSORS, open(os.path.join(out, "processors.json"), "w"), indent=1)
    files = {"shape_jpg": os.path.join(out, "shape.jpg"), "wide_png": os.path.join(out, "wide.png")}
    for i in range(3):
        files[f"easy_vqa_{i}"] = os.path.join(EASY_VQA, f"{i}.png")
    t = {}
    for pname, cfg in PROCESSORS.items():
        proc = processor(cfg)
        for iname, path in files.items():
            px = proc(images=Image.open(path), return_tensors="pt")["pixel_values"][0]
            t[f"{pname}.{iname}"] = px.to(torch.float32)
            print(pname, iname, tuple(px.shape), type(proc).__name__)
    save_file(t, os.path.join(out, "golden.safetensors"), metadata={"versions": json.dumps(v)})


vit()
clip()
images()
