#!/usr/bin/env python3
"""Golden fixtures for BART and Marian (the post-norm encoder-decoders), from PyTorch/transformers,
on tiny random models that transformers builds from a config (no download):

  tiny_bart/    BartForConditionalGeneration: learned positions (offset 2), layernorm_embedding,
                exact GELU, tied head + final_logits_bias, decoder start 2, forced_eos 2
  tiny_marian/  MarianMTModel: sinusoidal positions, scale_embedding, swish (as opus-mt), no
                embedding norm, decoder start = pad = the last id, pad never generated
                (generation_config.json `bad_words_ids: [[pad]]`, as opus-mt ships it)

Each holds config.json, model.safetensors, generation_config.json, a Unigram tokenizer
(tokenizer.json, tokenizer_config.json; BART's ids <s> 0, <pad> 1, </s> 2, <unk> 3; Marian's
</s> 0, <unk> 1, <pad> the last id: each model's vocabulary is its tokenizer's) and golden.safetensors: a padded source batch (ids, attention mask),
labels with -100 (ragged targets), the encoder's last hidden states, the logits, the mean loss,
and every parameter's gradient; plus beam.json: `generate(num_beams=..., ...)` token ids and
sequences_scores for each source alone under several settings (`settings` holds every
generation option in effect, the generation config's forced ids included), and a text prompt
encoded by the tokenizer (`text_case`, what `tasklm generate --prompt` must give).

Dropout is off (eval mode). Weights are drawn with std 0.5 (norm scales 1 +- 0.1) so outputs are
not near-uniform; final_logits_bias is random too (Marian's pad entry raised by 3, so that the
pad ban decides the search).

Usage: python scripts/golden/seq2seq_bart.py
"""
import json, os
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AutoTokenizer, BartConfig, BartForConditionalGeneration, MarianConfig,
                          MarianMTModel)
from versions import print_versions

v = print_versions("safetensors")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")

TEXT = ["a man is riding a bike in the park", "two dogs are playing with a ball",
        "ein mann fährt fahrrad im park", "zwei hunde spielen mit einem ball"] * 20
VOCAB = 64


def tokenizer(out, marian):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    if marian:  # </s> 0, <unk> 1, ..., <pad> last, as opus-mt's vocab.json
        tok.train_from_iterator(TEXT, trainers.UnigramTrainer(
            vocab_size=VOCAB - 1, special_tokens=["</s>", "<unk>"], unk_token="<unk>"))
        tok.add_special_tokens(["<pad>"])
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", 0)])
        specials = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    else:
        tok.train_from_iterator(TEXT, trainers.UnigramTrainer(
            vocab_size=VOCAB, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"))
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", 0), ("</s>", 2)])
        specials = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                    "unk_token": "<unk>"}
    tok.save(os.path.join(out, "tokenizer.json"))
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", **specials},
              open(os.path.join(out, "tokenizer_config.json"), "w"), indent=1)
    hf = AutoTokenizer.from_pretrained(out)
    assert len(hf) <= VOCAB, len(hf)
    return hf


def randomise(model, marian):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if not p.requires_grad:  # Marian's fixed sinusoidal positions
                continue
            if "norm" in n and n.endswith("weight"):
                p.copy_(torch.randn_like(p) * 0.1 + 1.0)
            elif "norm" in n:
                p.copy_(torch.randn_like(p) * 0.1)
            else:
                p.copy_(torch.randn_like(p) * 0.5)
        model.final_logits_bias.copy_(torch.randn_like(model.final_logits_bias) * 0.5)
        if marian:
            model.final_logits_bias[0, model.config.pad_token_id] += 3.0


def build(name, marian):
    out = os.path.join(FIX, name)
    os.makedirs(out, exist_ok=True)
    hf_tok = tokenizer(out, marian)
    # The model has exactly the tokenizer's entries (Marian's pad is the last id).
    vocab = len(hf_tok)
    torch.manual_seed(0)
    common = dict(vocab_size=vocab, d_model=16, encoder_layers=2, decoder_layers=2,
                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=32,
                  decoder_ffn_dim=32, max_position_embeddings=32, dropout=0.1,
                  attention_dropout=0.1, activation_dropout=0.1)
    if marian:
        pad = vocab - 1
        assert hf_tok.pad_token_id == pad
        cfg = MarianConfig(**common, activation_function="swish", scale_embedding=True,
                           pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
                           forced_eos_token_id=0)
        model = MarianMTModel(cfg).float()
    else:
        pad = 1
        cfg = BartConfig(**common, activation_function="gelu", pad_token_id=1, bos_token_id=0,
                         eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)
        model = BartForConditionalGeneration(cfg).float()
    randomise(model, marian)
    if marian:
        model.generation_config.bad_words_ids = [[pad]]
    model.save_pretrained(out, safe_serialization=True)
    model.generation_config.save_pretrained(out)
    model.train(False)
    gen = model.generation_config
    defaults = {k: getattr(gen, k) for k in ("forced_bos_token_id", "forced_eos_token_id")
                if getattr(gen, k) is not None}
    print(name, "generation config:", gen.to_diff_dict())

    g = torch.Generator().manual_seed(1)
    low = 2 if marian else 4  # no special ids inside the sources and labels
    ids = torch.randint(low, vocab - 1, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids = torch.where(mask == 1, ids, torch.full_like(ids, pad))
    labels = torch.randint(low, vocab - 1, (3, 6), generator=g)
    labels[:, -1] = cfg.eos_token_id
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

    settings = [{"num_beams": 4, "max_new_tokens": 8},
                {"num_beams": 3, "max_new_tokens": 10, "length_penalty": 0.6,
                 "no_repeat_ngram_size": 2, "num_return_sequences": 2}]
    if marian:
        settings.append({"num_beams": 4, "max_new_tokens": 6, "early_stopping": "never",
                         "min_new_tokens": 2, "length_penalty": 1.5})
    else:
        settings.append({"num_beams": 4, "max_new_tokens": 7, "forced_bos_token_id": 0,
                         "early_stopping": True, "min_new_tokens": 3})
    beams = []
    with torch.no_grad():
        for row in range(3):
            n = int(mask[row].sum())
            src = ids[row:row + 1, :n]
            for kw in settings:
                r = model.generate(src, attention_mask=torch.ones_like(src), do_sample=False,
                                   output_scores=True, return_dict_in_generate=True, **kw)
                hyps = []
                for i in range(r.sequences.shape[0]):
                    k = int((r.beam_indices[i] != -1).sum())
                    # Drop the decoder start token: tasklm reports generated ids only.
                    hyps.append({"ids": r.sequences[i, 1:1 + k].tolist(),
                                 "score": float(r.sequences_scores[i])})
                    assert pad not in hyps[-1]["ids"] or not marian
                beams.append({"source": src[0].tolist(), "settings": {**defaults, **kw},
                              "hypotheses": hyps})
                print(name, src[0].tolist(), kw, [(h["ids"], round(h["score"], 4)) for h in hyps])
        if marian:  # without the ban the search would produce pad
            src = ids[0:1]
            r = model.generate(src, do_sample=False, num_beams=4, max_new_tokens=8,
                               bad_words_ids=None)
            print(name, "without bad_words_ids:", r[0].tolist())
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


build("tiny_bart", marian=False)
build("tiny_marian", marian=True)
