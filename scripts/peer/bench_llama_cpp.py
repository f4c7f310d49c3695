#!/usr/bin/env python3
"""llama.cpp peer of `tasklm bench generate --peer llama.cpp`, through llama-cpp-python's
low-level API. Three modes, each printing one JSON line on stdout:

  probe     -> {"llama_cpp": VERSION, "system_info": "..."}
  quantize  --input IN.gguf --output OUT.gguf --type F32|Q8_0 [--threads T]
            -> {"output": OUT, "made": true|false}  (made once: an existing OUT is kept;
               written to a temporary name, then renamed, so nothing half-written is left)
  measure   --model M.gguf --prompt-ids 1,2,3 --new-tokens 128 --runs 5 --threads 2
            -> {"prefill_tokens_per_s", "decode_tokens_per_s", "peak_rss_bytes",
                "llama_cpp", "system_info"}

The measurement matches tasklm's: the same prompt ids (no tokenization, no BOS added), greedy,
a fixed number of new tokens (EOS ignored). Prefill is the prompt's llama_decode alone (one
batch, logits of the last position only). Decode is the rest, timed as tasklm times it: the
argmax over the prefill's logits, then one llama_decode per new token, each followed by the
argmax over its logits; new_tokens - 1 tokens over that wall time. One warm-up run, then the
median of --runs runs. Peak RSS is this process's ru_maxrss (Python itself included).

Errors go to stderr with exit status 2 (bad use), 3 (no llama_cpp module), 4 (llama.cpp failed).
"""
import argparse, ctypes, json, os, resource, statistics, sys, time

WHEEL = "../shared/wheels/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"


def fail(code, msg):
    print(f"bench_llama_cpp.py: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import llama_cpp
except ImportError as e:
    fail(3, f"no llama_cpp module in {sys.executable} ({e}): install llama-cpp-python 0.3.36 "
            f"into it: `{sys.executable} -m pip install {WHEEL} numpy` (built for AVX2), or "
            f"natively for this CPU: `CMAKE_ARGS=-DGGML_NATIVE=ON {sys.executable} -m pip install "
            f"llama-cpp-python==0.3.36` (about 40 minutes on 2 cores)")


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _quiet(level, text, user_data):
    pass


def system_info():
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def probe(_a):
    return {"llama_cpp": llama_cpp.__version__, "system_info": system_info()}


FTYPES = {"F32": "LLAMA_FTYPE_ALL_F32", "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}


def quantize(a):
    if os.path.exists(a.output):
        return {"output": a.output, "made": False}
    tmp = f"{a.output}.tmp-{os.getpid()}"
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = getattr(llama_cpp, FTYPES[a.type])
    p.allow_requantize = True
    p.nthread = a.threads
    try:
        os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
        rc = llama_cpp.llama_model_quantize(a.input.encode(), tmp.encode(), ctypes.byref(p))
        if rc != 0 or not os.path.isfile(tmp):
            fail(4, f"llama_model_quantize({a.input} -> {a.type}) returned {rc}")
        os.replace(tmp, a.output)
    except OSError as e:
        fail(4, f"writing {a.output}: {e}")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"output": a.output, "made": True}


def measure(a):
    import numpy as np

    ids = [int(x) for x in a.prompt_ids.split(",") if x]
    if not ids or a.new_tokens < 2 or a.runs < 1:
        fail(2, "need prompt ids, --new-tokens >= 2 and --runs >= 1")
    llama_cpp.llama_backend_init()
    mp = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(a.model.encode(), mp)
    if not model:
        fail(4, f"llama.cpp could not load {a.model}")
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = len(ids) + a.new_tokens + 16
    cp.n_batch = cp.n_ubatch = max(len(ids), 512)  # the prompt is one batch
    cp.n_threads = cp.n_threads_batch = a.threads
    cp.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model, cp)
    if not ctx:
        fail(4, f"llama.cpp could not make a context for {a.model}")
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    prompt = (llama_cpp.llama_token * len(ids))(*ids)
    one = (llama_cpp.llama_token * 1)()

    def decode(arr, n):
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, n))
        if rc != 0:
            fail(4, f"llama_decode returned {rc}")

    def argmax():
        p = llama_cpp.llama_get_logits_ith(ctx, -1)
        return int(np.ctypeslib.as_array(p, shape=(n_vocab,)).argmax())

    prefill, dec, tokens = [], [], []
    for run in range(a.runs + 1):  # the first run warms up
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        t0 = time.perf_counter()
        decode(prompt, len(ids))
        llama_cpp.llama_synchronize(ctx)
        t1 = time.perf_counter()
        out = [argmax()]
        for _ in range(a.new_tokens - 1):
            one[0] = out[-1]
            decode(one, 1)
            out.append(argmax())
        t2 = time.perf_counter()
        tokens = out
        if run > 0:
            prefill.append(len(ids) / (t1 - t0))
            dec.append((a.new_tokens - 1) / (t2 - t1))
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return {
        "prefill_tokens_per_s": statistics.median(prefill),
        "decode_tokens_per_s": statistics.median(dec),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "llama_cpp": llama_cpp.__version__,
        "system_info": system_info(),
        "first_tokens": tokens[:8],
    }


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    sub.add_parser("probe")
    q = sub.add_parser("quantize")
    q.add_argument("--input", required=True)
    q.add_argument("--output", required=True)
    q.add_argument("--type", choices=sorted(FTYPES), required=True)
    q.add_argument("--threads", type=int, default=2)
    m = sub.add_parser("measure")
    m.add_argument("--model", required=True)
    m.add_argument("--prompt-ids", required=True)
    m.add_argument("--new-tokens", type=int, default=128)
    m.add_argument("--runs", type=int, default=5)
    m.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not os.environ.get("TASKLM_PEER_VERBOSE"):
        llama_cpp.llama_log_set(_quiet, None)
    print(json.dumps({"probe": probe, "quantize": quantize, "measure": measure}[a.mode](a)))


main()
