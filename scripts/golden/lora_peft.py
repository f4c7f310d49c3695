#!/usr/bin/env python3
"""LoRA adapters made by PEFT, for tasklm to load; and adapters made by tasklm, for PEFT to load.

Default (writes fixtures into tests/fixtures/):
  lora_decoder/   a PEFT LoRA adapter (CAUSAL_LM, r 4, alpha 8, rsLoRA, targets q_proj, v_proj,
                  up_proj, down_proj, lm_head saved whole) on tiny_decoder, with B drawn non-zero
                  so the adapter changes the logits; base_model_name_or_path `../tiny_decoder`
  lora_encoder/   a PEFT LoRA adapter (SEQ_CLS, 3 labels, r 4, alpha 16, targets query, value,
                  the classifier saved whole as PEFT does for SEQ_CLS) on tiny_encoder
  lora_golden.safetensors   input ids and PeftModel's logits for both (decoder: every
                  position's (B, T, V) logits; encoder: the (B, n_labels) classification logits)
  lora_seq2seq/   a PEFT LoRA adapter (SEQ_2_SEQ_LM, r 4, alpha 8, targets q_proj, v_proj, fc1)
                  on tiny_bart, B drawn non-zero
  lora_seq2seq_golden.safetensors   its source ids, labels and PeftModel's teacher-forced
                  (B, T, V) logits (decoder inputs: the labels shifted right from the start id)

--check ADAPTER --merged MERGED: loads an adapter that tasklm wrote (CAUSAL_LM, or SEQ_2_SEQ_LM
  with AutoModelForSeq2SeqLM) with
  peft.PeftModel.from_pretrained(base, ADAPTER) (base from its adapter_config.json, or --base),
  checks that every tensor in the file reached the model, and compares its logits with
  transformers' on MERGED (`tasklm merge` of the same adapter); prints the largest difference.

  python scripts/golden/lora_peft.py
  python scripts/golden/lora_peft.py --check OUT --merged MERGED [--base DIR]
"""
import argparse, json, os
import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoModelForCausalLM, AutoModelForSeq2SeqLM,
                          AutoModelForSequenceClassification)
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from versions import print_versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
IDS = [[5, 17, 42, 99, 7, 250, 3, 64], [11, 12, 13, 14, 15, 16, 17, 18]]


def nonzero_b(model, seed):
    """Draws every lora_B (zero after PEFT's init) so that the adapter changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def relative_base(out, base):
    """Names the base relative to the adapter (tasklm tries that), and drops PEFT's model card."""
    os.remove(os.path.join(out, "README.md"))
    path = os.path.join(out, "adapter_config.json")
    cfg = json.load(open(path))
    cfg["base_model_name_or_path"] = base
    json.dump(cfg, open(path, "w"), indent=2, sort_keys=True)


def decoder(ids):
    base = AutoModelForCausalLM.from_pretrained(os.path.join(FIX, "tiny_decoder"), dtype=torch.float32)
    cfg = LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, lora_alpha=8, lora_dropout=0.1,
                     target_modules=["q_proj", "v_proj", "up_proj", "down_proj"],
                     modules_to_save=["lm_head"], use_rslora=True)
    torch.manual_seed(1)
    model = get_peft_model(base, cfg)
    nonzero_b(model, 2)
    with torch.no_grad():
        # The saved head differs from the base's, so loading it is tested too.
        head = model.base_model.model.lm_head.modules_to_save["default"].weight
        head.add_(torch.randn(head.shape, generator=torch.Generator().manual_seed(3)) * 0.05)
    model.eval()
    out = os.path.join(FIX, "lora_decoder")
    model.save_pretrained(out)
    relative_base(out, "../tiny_decoder")
    with torch.no_grad():
        return model(input_ids=ids).logits


def encoder(ids):
    torch.manual_seed(4)
    base = AutoModelForSequenceClassification.from_pretrained(
        os.path.join(FIX, "tiny_encoder"), num_labels=3, dtype=torch.float32)
    cfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=16, lora_dropout=0.0,
                     target_modules=["query", "value"])
    model = get_peft_model(base, cfg)
    nonzero_b(model, 5)
    model.eval()
    out = os.path.join(FIX, "lora_encoder")
    model.save_pretrained(out)
    relative_base(out, "../tiny_encoder")
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


SRC = [[5, 17, 22, 9, 7, 30, 3, 2], [11, 12, 13, 14, 15, 16, 17, 2]]
LABELS = [[8, 19, 4, 33, 2], [21, 6, 40, 10, 2]]


def seq2seq():
    base = AutoModelForSeq2SeqLM.from_pretrained(os.path.join(FIX, "tiny_bart"), dtype=torch.float32)
    cfg = LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=4, lora_alpha=8, lora_dropout=0.0,
                     target_modules=["q_proj", "v_proj", "fc1"])
    torch.manual_seed(6)
    model = get_peft_model(base, cfg)
    nonzero_b(model, 7)
    model.eval()
    out = os.path.join(FIX, "lora_seq2seq")
    model.save_pretrained(out)
    relative_base(out, "../tiny_bart")
    src, labels = torch.tensor(SRC), torch.tensor(LABELS)
    with torch.no_grad():
        logits = model(input_ids=src, attention_mask=torch.ones_like(src), labels=labels).logits
    return {"input_ids": src.to(torch.int64), "labels": labels.to(torch.int64),
            "logits": logits.contiguous()}


def check(adapter, merged, base_dir):
    cfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
    base_dir = base_dir or cfg["base_model_name_or_path"]
    seq2seq = cfg["task_type"] == "SEQ_2_SEQ_LM"
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    base = auto.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).eval()
    # Every tensor of the file must have reached a parameter (PEFT only warns on a miss).
    saved = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    params = dict(model.named_parameters())
    for key, t in saved.items():
        name = key.replace(".lora_A.weight", ".lora_A.default.weight")
        name = name.replace(".lora_B.weight", ".lora_B.default.weight")
        if name not in params:
            stem = key[: -len(".weight")]
            name = f"{stem}.modules_to_save.default.weight"
        assert name in params, f"{key} reached no parameter of the PEFT model"
        assert torch.equal(params[name].detach(), t), f"{key} differs after loading"
    plain = auto.from_pretrained(merged, dtype=torch.float32).eval()
    if seq2seq:
        # Ids under the smallest vocabulary the fixtures have (tiny_bart's 44).
        src, labels = torch.tensor(SRC), torch.tensor(LABELS)
        run = lambda m: m(input_ids=src, attention_mask=torch.ones_like(src), labels=labels).logits
    else:
        ids = torch.tensor(IDS)
        run = lambda m: m(input_ids=ids).logits
    with torch.no_grad():
        a, b = run(model), run(plain)
    gap = (a - b).abs().max().item()
    print(f"{len(saved)} adapter tensors loaded by PEFT; PeftModel vs tasklm merge: "
          f"max |logit difference| {gap:.3g} over {tuple(a.shape)}")
    assert gap < 1e-4, gap


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--check")
    p.add_argument("--merged")
    p.add_argument("--base")
    a = p.parse_args()
    v = print_versions("peft")
    if a.check:
        return check(a.check, a.merged, a.base)
    ids = torch.tensor(IDS)
    dec, enc = decoder(ids), encoder(ids)
    save_file({"input_ids": ids.to(torch.int64), "decoder_logits": dec.contiguous(),
               "encoder_logits": enc.contiguous()},
              os.path.join(FIX, "lora_golden.safetensors"),
              metadata={"versions": json.dumps(v)})
    print("decoder logits", tuple(dec.shape), "encoder logits", tuple(enc.shape))
    s2s = seq2seq()
    save_file(s2s, os.path.join(FIX, "lora_seq2seq_golden.safetensors"),
              metadata={"versions": json.dumps(v)})
    print("seq2seq logits", tuple(s2s["logits"].shape))


if __name__ == "__main__":
    main()
