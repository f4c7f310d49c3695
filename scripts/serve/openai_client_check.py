#!/usr/bin/env python3
"""Checks `tasklm serve` with the official `openai` Python client: models, chat, streaming chat,
completions, embeddings, logprobs and error cases, against a server this script starts.

    python3 scripts/serve/openai_client_check.py --tasklm target/debug/tasklm \
        --decoder tests/fixtures/tiny_decoder --encoder tests/fixtures/tiny_encoder

Exit status 0 when every check passes; each failure is printed with what was expected.
"""
import argparse
import base64
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import openai

KEY = "tasklm-check-key"


def start(args):
    cmd = [args.tasklm, "serve", "--port", "0", "--api-key", KEY,
           "--model", f"gen={args.decoder}", "--model", f"emb={args.encoder}",
           "--max-tokens", "64"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + 120
    while time.time() < deadline and port is None:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                sys.exit(f"tasklm serve exited with {proc.returncode} before listening")
            continue
        sys.stderr.write("  server: " + line)
        m = re.search(r"listening on http://[\d.]+:(\d+)", line)
        if m:
            port = int(m.group(1))
    if port is None:
        proc.kill()
        sys.exit("tasklm serve did not say where it listens")
    # Keep reading the server's messages so that its stderr pipe never fills.
    threading.Thread(target=lambda: [sys.stderr.write("  server: " + l) for l in proc.stderr],
                     daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except Exception:
            time.sleep(0.2)
    proc.kill()
    sys.exit("tasklm serve did not become healthy")


FAILURES = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        FAILURES.append(name)


def run_checks(client, bad_client):
    models = client.models.list()
    ids = sorted(m.id for m in models.data)
    check("models.list names both models", ids == ["emb", "gen"], ids)

    msgs = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say something."}]
    r = client.chat.completions.create(model="gen", messages=msgs, max_tokens=8,
                                       temperature=0, seed=1)
    c = r.choices[0]
    check("chat: one choice with assistant text",
          c.message.role == "assistant" and isinstance(c.message.content, str), r)
    check("chat: finish_reason", c.finish_reason in ("stop", "length"), c.finish_reason)
    check("chat: usage adds up",
          r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
          and 1 <= r.usage.completion_tokens <= 8, r.usage)

    stream = client.chat.completions.create(model="gen", messages=msgs, max_tokens=8,
                                            temperature=0, seed=1, stream=True,
                                            stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    check("streaming chat gives the same greedy text", text == c.message.content,
          (text, c.message.content))
    check("streaming chat ends with a finish reason", finish == c.finish_reason, finish)
    check("streaming chat usage chunk", usage is not None
          and usage.completion_tokens == r.usage.completion_tokens, usage)

    r = client.chat.completions.create(model="gen", messages=msgs, max_tokens=4,
                                       logprobs=True, top_logprobs=2)
    lp = r.choices[0].logprobs.content
    check("chat logprobs", len(lp) >= 1 and all(len(t.top_logprobs) == 2 for t in lp)
          and all(t.logprob <= 0 for t in lp), lp)

    r = client.completions.create(model="gen", prompt="Once upon a time", max_tokens=6,
                                  temperature=0, logprobs=1)
    ch = r.choices[0]
    check("completions: text and legacy logprobs",
          isinstance(ch.text, str) and len(ch.logprobs.tokens) == len(ch.logprobs.token_logprobs)
          == r.usage.completion_tokens, r)

    e = client.embeddings.create(model="emb", input=["a cat sat", "the dog ran"])
    v = e.data[1].embedding
    norm = sum(x * x for x in v) ** 0.5
    check("embeddings (the client asks for base64) are unit vectors",
          len(e.data) == 2 and abs(norm - 1) < 1e-4, norm)
    f = client.embeddings.create(model="emb", input="the dog ran", encoding_format="float")
    check("embeddings as floats match", max(abs(a - b) for a, b in zip(f.data[0].embedding, v)) < 1e-5)

    try:
        client.chat.completions.create(model="nope", messages=msgs)
        check("unknown model is 404", False, "no error")
    except openai.NotFoundError as err:
        check("unknown model is 404", err.status_code == 404 and err.body["code"] == "model_not_found",
              err.body)
    try:
        client.chat.completions.create(model="gen", messages=msgs, temperature=5)
        check("temperature 5 is 400", False, "no error")
    except openai.BadRequestError as err:
        check("temperature 5 is 400 naming the field", err.body.get("param") == "temperature", err.body)
    try:
        client.chat.completions.create(model="gen", messages=msgs, max_tokens=1000)
        check("max_tokens over the cap is 400", False, "no error")
    except openai.BadRequestError as err:
        check("max_tokens over the cap is 400", err.body.get("param") == "max_tokens", err.body)
    try:
        bad_client.models.list()
        check("a wrong key is 401", False, "no error")
    except openai.AuthenticationError as err:
        check("a wrong key is 401", err.status_code == 401, err)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tasklm", required=True)
    p.add_argument("--decoder", required=True)
    p.add_argument("--encoder", required=True)
    args = p.parse_args()
    print(f"openai {openai.__version__}")
    proc, base = start(args)
    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0)
        bad = openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0)
        run_checks(client, bad)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed"
        check("SIGTERM stops the server cleanly", code == 0, code)
    if FAILURES:
        sys.exit(f"{len(FAILURES)} check(s) failed: {', '.join(FAILURES)}")
    print("all openai client checks passed")


if __name__ == "__main__":
    main()
