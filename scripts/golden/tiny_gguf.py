#!/usr/bin/env python3
"""The tiny decoder (tests/fixtures/tiny_decoder) as block-quantized GGUF files, for the tests of
LoRA over a quantized base (QLoRA-style) in `crates/tasks/tests/qlora_train.rs`.

Writes into tests/fixtures/:
  tiny_decoder_q.gguf       untied head, the three block formats tasklm has kernels for mixed
                            as llama.cpp mixes them: attention Q8_0, gate/up Q4_1, down Q4_0,
                            output Q8_0, token_embd Q4_0; norms F32
  tiny_decoder_tied_q.gguf  no output.weight (the head is tied to a Q8_0 token_embd), every
                            other matrix Q4_1

The weights are quantized with the gguf package's reference quantizers (llama.cpp's
`quantize_row_*_ref`), Q and K rows permuted as llama.cpp's convert_hf_to_gguf.py does for
llama models, and the byte-level BPE tokenizer written as `tokenizer.ggml.*` (model gpt2).
The tests compare tasklm with itself (the quantized base against its dequantized f32 copy), so
no torch output is stored (torch is not needed).

  python scripts/golden/tiny_gguf.py
"""
import json, os
import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import load_file
from versions import print_versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
SRC = os.path.join(FIX, "tiny_decoder")

NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute: rows (n_head, 2, hd/2) -> (n_head, hd/2, 2)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    rest = hf[len("model.layers."):]
    layer, name = rest.split(".", 1)
    base, suffix = name.rsplit(".", 1)
    return f"blk.{layer}.{NAMES[base]}.{suffix}"


def write(path, formats, tied):
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    tok = json.load(open(os.path.join(SRC, "tokenizer.json")))
    tok_cfg = json.load(open(os.path.join(SRC, "tokenizer_config.json")))
    weights = load_file(os.path.join(SRC, "model.safetensors"))
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // heads

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny_decoder")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_vocab_size(cfg["vocab_size"])

    vocab = tok["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for a in tok["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(vocab.get(tok_cfg["eos_token"], tokens.index(tok_cfg["eos_token"])))
    w.add_pad_token_id(tokens.index(tok_cfg["pad_token"]))
    w.add_add_bos_token(False)
    w.add_chat_template(tok_cfg["chat_template"])

    for hf in sorted(weights):
        if tied and hf == "lm_head.weight":
            continue
        t = weights[hf].astype(np.float32)
        if ".self_attn.q_proj." in hf:
            t = permute(t, heads)
        elif ".self_attn.k_proj." in hf:
            t = permute(t, kv)
        qtype = Q.F32 if t.ndim == 1 else formats(hf)
        data = t if qtype == Q.F32 else gguf.quants.quantize(t, qtype)
        w.add_tensor(gguf_name(hf), data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def mixed(hf):
    if "self_attn" in hf or hf == "lm_head.weight":
        return Q.Q8_0
    if "gate_proj" in hf or "up_proj" in hf:
        return Q.Q4_1
    return Q.Q4_0  # down_proj, token_embd


def tied_formats(hf):
    return Q.Q8_0 if hf == "model.embed_tokens.weight" else Q.Q4_1


if __name__ == "__main__":
    print_versions("gguf", "safetensors")
    write(os.path.join(FIX, "tiny_decoder_q.gguf"), mixed, tied=False)
    write(os.path.join(FIX, "tiny_decoder_tied_q.gguf"), tied_formats, tied=True)
