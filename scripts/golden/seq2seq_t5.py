#!/usr/bin/env python3
"""Golden fixtures for the T5 encoder-decoder, from PyTorch/transformers, on tiny random models
that transformers builds from a config (no download):

  tiny_t5/         T5 (relu feed-forward, head tied to the shared embeddings)
  tiny_t5_gated/   T5 v1.1 / Flan-T5 style (gated-gelu, untied lm_head)

Each holds config.json, model.safetensors, generation_config.json, a 64-token Unigram
tokenizer (tokenizer.json, tokenizer_config.json; T5's ids: <pad> 0, </s> 1, <unk> 2) and
golden.safetensors: a
padded source batch (ids, attention mask), labels with -100 (ragged targets), the encoder's last
hidden states, the logits, the mean loss, and every parameter's gradient; plus beam.json:
`generate(num_beams=4, ...)` token ids and sequences_scores for each source alone, and for a
text prompt encoded by the tokenizer (`text_case`, what `tasklm generate --prompt` must give).

Dropout is off (eval mode). Norm weights are randomised so they are exercised.

Usage: python scripts/golden/seq2seq_t5.py
"""
import json, os
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration
from versions import print_versions

v = print_versions("safetensors")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")


TEXT = ["a man is riding a bike in the park", "two dogs are playing with a ball",
        "ein mann fährt fahrrad im park", "zwei hunde spielen mit einem ball"] * 20


def tokenizer(out):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(TEXT, trainers.UnigramTrainer(
        vocab_size=64, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    tok.save(os.path.join(out, "tokenizer.json"))
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>",
               "pad_token": "<pad>", "unk_token": "<unk>"},
              open(os.path.join(out, "tokenizer_config.json"), "w"), indent=1)
    return AutoTokenizer.from_pretrained(out)


def build(name, **kw):
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=3,
                   relative_attention_num_buckets=8, relative_attention_max_distance=20,
                   dropout_rate=0.1, layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
                   decoder_start_token_id=0, **kw)
    model = T5ForConditionalGeneration(cfg).float()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "layer_norm" in n:
                p.copy_(torch.randn_like(p) * 0.1 + 1.0)
            elif "relative_attention_bias" in n:
                p.copy_(torch.randn_like(p))
            else:  # larger weights than the default init, so outputs are not near-uniform
                p.copy_(torch.randn_like(p) * 0.5)
    out = os.path.join(FIX, name)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    model.generation_config.save_pretrained(out)
    hf_tok = tokenizer(out)
    assert len(hf_tok) <= 64, len(hf_tok)
    model.train(False)

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 64, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids = ids * mask
    labels = torch.randint(2, 64, (3, 6), generator=g)
    labels[:, -1] = 1
    labels[1, 4:] = -100
    labels[2, 2:] = -100
    o = model(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
    o.loss.backward()
    tensors = {"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64),
               "labels": labels.to(torch.int64),
               "encoder_hidden": o.encoder_last_hidden_state.detach().contiguous(),
               "logits": o.logits.detach().contiguous(), "loss": o.loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        if p.grad is not None:
            tensors[f"grad.{n}"] = p.grad.detach().contiguous()
    save_file(tensors, os.path.join(out, "golden.safetensors"))

    beams = []
    with torch.no_grad():
        for row in range(3):
            n = int(mask[row].sum())
            src = ids[row:row + 1, :n]
            for kw in ({"num_beams": 4, "max_new_tokens": 8},
                       {"num_beams": 3, "max_new_tokens": 10, "length_penalty": 0.6,
                        "no_repeat_ngram_size": 2, "num_return_sequences": 2}):
                r = model.generate(src, attention_mask=torch.ones_like(src), do_sample=False,
                                   output_scores=True, return_dict_in_generate=True, **kw)
                hyps = []
                for i in range(r.sequences.shape[0]):
                    k = int((r.beam_indices[i] != -1).sum())
                    # Drop the decoder start token: tasklm reports generated ids only.
                    hyps.append({"ids": r.sequences[i, 1:1 + k].tolist(),
                                 "score": float(r.sequences_scores[i])})
                beams.append({"source": src[0].tolist(), "settings": kw, "hypotheses": hyps})
                print(name, src[0].tolist(), kw, [(h["ids"], round(h["score"], 4)) for h in hyps])
    prompt = "a man is playing with two dogs"
    src = torch.tensor([hf_tok(prompt).input_ids])
    with torch.no_grad():
        r = model.generate(src, attention_mask=torch.ones_like(src), do_sample=False,
                           num_beams=4, max_new_tokens=8)
    text_case = {"prompt": prompt, "source": src[0].tolist(), "num_beams": 4, "max_new_tokens": 8,
                 "ids": [t for t in r[0, 1:].tolist()],
                 "text": hf_tok.decode(r[0, 1:], skip_special_tokens=True)}
    print(name, "text case", text_case)
    json.dump({"versions": v, "cases": beams, "text_case": text_case},
              open(os.path.join(out, "beam.json"), "w"), indent=1)
    print(name, "params", sum(p.numel() for p in model.parameters()), "loss", float(o.loss))


build("tiny_t5", feed_forward_proj="relu", tie_word_embeddings=True)
build("tiny_t5_gated", feed_forward_proj="gated-gelu", tie_word_embeddings=False)
