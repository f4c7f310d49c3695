#!/usr/bin/env python3
"""Writes small GGUF files for the `gguf` fuzz target's seed corpus (stdlib only).

tiny_llama.gguf: a 1-layer llama (hidden 32, 2 heads, 1 KV head) with a byte-level BPE
vocabulary in `tokenizer.ggml.*`, tensors in F32, F16 and Q8_0 (v3, 32-byte alignment).
tiny_qwen2_v2.gguf: the same as qwen2 in GGUF v2 with an explicit `general.alignment`.
Weights are deterministic pseudo-random numbers; only the layout matters to the fuzzer.
"""
import random
import struct
import sys

F32, F16, Q8_0 = 0, 1, 8
T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9


def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, t, payload):
    return s(key) + struct.pack("<I", t) + payload


def arr(t, items):
    out = struct.pack("<IQ", t, len(items))
    for it in items:
        out += s(it) if t == T_STRING else struct.pack({T_I32: "<i", T_U32: "<I"}[t], it)
    return out


def byte_alphabet():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def q8_0(values):
    out = b""
    for i in range(0, len(values), 32):
        block = values[i:i + 32]
        amax = max(abs(v) for v in block) or 1.0
        d = amax / 127
        out += struct.pack("<e", d) + struct.pack(f"<{len(block)}b", *(round(v / d) for v in block))
    return out


def tensor_bytes(dtype, values):
    if dtype == F32:
        return struct.pack(f"<{len(values)}f", *values)
    if dtype == F16:
        return struct.pack(f"<{len(values)}e", *values)
    return q8_0(values)


def write(path, arch, version, alignment):
    rng = random.Random(13)
    hidden, heads, kv_heads, ff, vocab_extra = 32, 2, 1, 64, ["<|im_start|>", "<|im_end|>", "Ġt", "he"]
    head_dim = hidden // heads
    tokens = byte_alphabet() + vocab_extra
    types = [1] * 256 + [3, 3, 1, 1]
    md = [
        kv("general.architecture", T_STRING, s(arch)),
        kv("general.name", T_STRING, s("tiny fuzz seed")),
        kv(f"{arch}.context_length", T_U32, struct.pack("<I", 64)),
        kv(f"{arch}.embedding_length", T_U32, struct.pack("<I", hidden)),
        kv(f"{arch}.feed_forward_length", T_U32, struct.pack("<I", ff)),
        kv(f"{arch}.block_count", T_U32, struct.pack("<I", 1)),
        kv(f"{arch}.attention.head_count", T_U32, struct.pack("<I", heads)),
        kv(f"{arch}.attention.head_count_kv", T_U32, struct.pack("<I", kv_heads)),
        kv(f"{arch}.attention.layer_norm_rms_epsilon", T_F32, struct.pack("<f", 1e-5)),
        kv(f"{arch}.rope.freq_base", T_F32, struct.pack("<f", 10000.0)),
        kv("tokenizer.ggml.model", T_STRING, s("gpt2")),
        kv("tokenizer.ggml.pre", T_STRING, s("qwen2" if arch == "qwen2" else "llama-bpe")),
        kv("tokenizer.ggml.tokens", T_ARRAY, arr(T_STRING, tokens)),
        kv("tokenizer.ggml.token_type", T_ARRAY, arr(T_I32, types)),
        kv("tokenizer.ggml.merges", T_ARRAY, arr(T_STRING, ["Ġ t", "h e"])),
        kv("tokenizer.ggml.bos_token_id", T_U32, struct.pack("<I", 256)),
        kv("tokenizer.ggml.eos_token_id", T_U32, struct.pack("<I", 257)),
        kv("tokenizer.ggml.add_bos_token", T_BOOL, b"\x00"),
        kv("tokenizer.chat_template", T_STRING,
           s("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")),
    ]
    if alignment is not None:
        md.append(kv("general.alignment", T_U32, struct.pack("<I", alignment)))
    align = alignment or 32
    v = len(tokens)
    shapes = [  # (name, ggml dims innermost first, dtype)
        ("token_embd.weight", [hidden, v], Q8_0),
        ("output_norm.weight", [hidden], F32),
        ("blk.0.attn_norm.weight", [hidden], F32),
        ("blk.0.ffn_norm.weight", [hidden], F16),
        ("blk.0.attn_q.weight", [hidden, hidden], Q8_0),
        ("blk.0.attn_k.weight", [hidden, kv_heads * head_dim], Q8_0),
        ("blk.0.attn_v.weight", [hidden, kv_heads * head_dim], F16),
        ("blk.0.attn_output.weight", [hidden, hidden], F32),
        ("blk.0.ffn_gate.weight", [hidden, ff], Q8_0),
        ("blk.0.ffn_up.weight", [hidden, ff], Q8_0),
        ("blk.0.ffn_down.weight", [ff, hidden], Q8_0),
    ]
    if arch == "qwen2":
        shapes += [(f"blk.0.attn_{p}.bias", [n], F32)
                   for p, n in [("q", hidden), ("k", head_dim), ("v", head_dim)]]
    infos, blobs, offset = b"", [], 0
    for name, dims, dtype in shapes:
        n = 1
        for d in dims:
            n *= d
        data = tensor_bytes(dtype, [rng.uniform(-0.5, 0.5) for _ in range(n)])
        infos += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", dtype, offset)
        pad = (-len(data)) % align
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
    head = b"GGUF" + struct.pack("<IQQ", version, len(shapes), len(md)) + b"".join(md) + infos
    head += b"\0" * ((-len(head)) % align)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    write(f"{out}/tiny_llama.gguf", "llama", 3, None)
    write(f"{out}/tiny_qwen2_v2.gguf", "qwen2", 2, 64)
