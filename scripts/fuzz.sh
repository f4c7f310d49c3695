#!/usr/bin/env bash
# Fuzzes the parsers a user's file reaches (fuzz/, cargo-fuzz + libFuzzer + ASan, nightly).
#
#   scripts/fuzz.sh TARGET SECONDS   run one target for SECONDS (seeds prepared first); with
#                                    FUZZ_RUNS=N it stops after N inputs (libFuzzer's -runs)
#   scripts/fuzz.sh smoke SECONDS    build once, then run every target for SECONDS each (CI)
#   scripts/fuzz.sh seeds            only prepare the seed corpora under fuzz/corpus/
#   scripts/fuzz.sh list             the targets
#
# Every run refuses inputs that allocate more than 1 GB (-malloc_limit_mb, -rss_limit_mb) and
# treats an input that runs longer than FUZZ_TIMEOUT seconds (default 25) as a hang. A crash
# leaves its input in fuzz/artifacts/TARGET/; rerun it with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# Seeds: fuzz/seeds/TARGET (committed, small), plus cuts of the real files when they are here:
# the cached models in $TASKLM_HOME (default ~/.cache/tasklm) and the data in ../shared/data
# (or $TASKLM_DATA). The corpus grows in fuzz/corpus/TARGET (ignored by git) across runs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
TARGETS=(gguf gguf_tokenizer safetensors tokenizer_json chat_template jsonl tsv conll squad image image_processor)
models=${TASKLM_HOME:-$HOME/.cache/tasklm}
data=${TASKLM_DATA:-$root/../shared/data}
timeout=${FUZZ_TIMEOUT:-25}
# candle runs its CPU ops on rayon: one thread keeps tiny inputs from paying for a pool.
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
# The sanitizer build rebuilds every dependency (tens of minutes on 2 cores): keep it outside
# the checkout, so a fresh clone on the same machine (CI) reuses it.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$models/fuzz-target}

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

# Largest input per target: big enough for the seeds that matter, small enough to stay fast.
max_len() {
    case $1 in
        gguf | gguf_tokenizer) echo 65536 ;;
        safetensors | tokenizer_json) echo 131072 ;;
        squad | image) echo 65536 ;;
        *) echo 16384 ;;
    esac
}

ensure_tools() {
    if ! rustup toolchain list | grep -q '^nightly'; then
        echo "fuzz.sh: installing the nightly toolchain (cargo-fuzz needs it)" >&2
        rustup toolchain install nightly --profile minimal
    fi
    if ! command -v cargo-fuzz >/dev/null 2>&1; then
        echo "fuzz.sh: installing cargo-fuzz" >&2
        cargo install cargo-fuzz --locked
    fi
}

# Copies $2.. into corpus dir $1 under their own names (existing entries are kept).
add() {
    local dir=$1
    shift
    for f in "$@"; do
        [ -f "$f" ] && cp -n "$f" "$dir/" 2>/dev/null || true
    done
}

# First $3 bytes of $2 into corpus dir $1 as $4.
add_head() {
    [ -f "$2" ] && head -c "$3" "$2" >"$1/$4" || true
}

# First $3 lines of $2 (gunzipped when it ends in .gz) into corpus dir $1 as $4.
add_lines() {
    [ -f "$2" ] || return 0
    case $2 in
        *.gz) gzip -dc "$2" | head -n "$3" >"$1/$4" || true ;;
        *) head -n "$3" "$2" >"$1/$4" || true ;;
    esac
}

prepare() {
    local t=$1 dir=fuzz/corpus/$1
    mkdir -p "$dir" "fuzz/artifacts/$t"
    add "$dir" fuzz/seeds/"$t"/*
    case $t in
        gguf | gguf_tokenizer)
            add "$dir" fuzz/seeds/gguf/*
            local n=0
            while IFS= read -r f; do
                n=$((n + 1))
                add_head "$dir" "$f" 65536 "cached_head_$n.gguf"
            done < <(find "$models" -name '*.gguf' 2>/dev/null | sort | head -n 4)
            ;;
        safetensors)
            add "$dir" tests/fixtures/adamw.safetensors
            for m in tiny_llama tiny_bert tiny_qwen2; do
                add_head "$dir" "tests/fixtures/$m/model.safetensors" 131072 "$m.safetensors"
                add_head "$dir" "tests/fixtures/$m/model.safetensors" 2048 "${m}_cut.safetensors"
            done
            local n=0
            while IFS= read -r f; do
                n=$((n + 1))
                add_head "$dir" "$f" 65536 "cached_head_$n.safetensors"
            done < <(find "$models" -name '*.safetensors' 2>/dev/null | sort | head -n 4)
            ;;
        tokenizer_json)
            local n=0
            while IFS= read -r f; do
                n=$((n + 1))
                add_head "$dir" "$f" 4096 "cached_cut_$n.json"
                if command -v python3 >/dev/null; then
                    python3 fuzz/seeds/shrink_tokenizer.py "$f" "$dir/cached_small_$n.json" || true
                fi
            done < <(find "$models" -name tokenizer.json 2>/dev/null | sort | head -n 4)
            ;;
        chat_template)
            local n=0
            while IFS= read -r f; do
                n=$((n + 1))
                if command -v python3 >/dev/null; then
                    python3 fuzz/seeds/shrink_tokenizer.py --template "$f" "$dir/cached_template_$n.txt" || true
                fi
            done < <(find "$models" -name tokenizer_config.json 2>/dev/null | sort | head -n 4)
            ;;
        jsonl)
            local n=0
            while IFS= read -r f; do
                n=$((n + 1))
                add_lines "$dir" "$f" 4 "data_$n.jsonl"
            done < <(find "$data" -name '*.jsonl' 2>/dev/null | sort | head -n 24)
            ;;
        tsv)
            add_lines "$dir" "$data/sst2/train.tsv" 30 sst2_train.tsv
            add_lines "$dir" "$data/sst2/dev.tsv" 30 sst2_dev.tsv
            ;;
        conll)
            add_lines "$dir" "$data/conll2003/train.txt" 80 conll_train.txt
            add_lines "$dir" "$data/conll2003/valid.txt" 80 conll_valid.txt
            ;;
        squad)
            add_head "$dir" "$data/squad/train.json" 4096 squad_cut.json
            if command -v python3 >/dev/null && [ -f "$data/squad/train.json" ]; then
                python3 - "$data/squad/train.json" "$dir/squad_small.json" <<'EOF' || true
import json, sys
d = json.load(open(sys.argv[1]))
p = d["data"][0]["paragraphs"][0]
p["qas"] = p["qas"][:3]
d["data"] = [{"title": d["data"][0]["title"], "paragraphs": [p]}]
json.dump(d, open(sys.argv[2], "w"), ensure_ascii=False)
EOF
            fi
            ;;
        image)
            local n=0
            while IFS= read -r f; do
                n=$((n + 1))
                add_head "$dir" "$f" 16384 "easy_vqa_$n.png"
            done < <(find "$data/easy_vqa" -name '*.png' 2>/dev/null | sort | head -n 3)
            ;;
        image_processor)
            add "$dir" tests/fixtures/tiny_vit/preprocessor_config.json
            ;;
    esac
}

run() {
    local t=$1 secs=$2
    prepare "$t"
    echo "fuzz.sh: $t for ${secs}s" >&2
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=1024 \
        -max_len="$(max_len "$t")" -timeout="$timeout" -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" -runs="${FUZZ_RUNS:--1}"
}

[ $# -ge 1 ] || usage
case $1 in
    list) printf '%s\n' "${TARGETS[@]}" ;;
    seeds) for t in "${TARGETS[@]}"; do prepare "$t"; done ;;
    smoke)
        [ $# -eq 2 ] || usage
        ensure_tools
        cargo +nightly fuzz build
        for t in "${TARGETS[@]}"; do run "$t" "$2"; done
        ;;
    *)
        [ $# -eq 2 ] || usage
        if ! printf '%s\n' "${TARGETS[@]}" | grep -qx "$1"; then
            echo "fuzz.sh: unknown target \`$1\` (targets: ${TARGETS[*]}, or smoke)" >&2
            exit 2
        fi
        ensure_tools
        run "$1" "$2"
        ;;
esac
