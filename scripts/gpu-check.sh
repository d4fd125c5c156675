#!/usr/bin/env bash
# The GPU checks, on a machine with an NVIDIA GPU, its driver and the CUDA toolkit (nvcc on
# PATH, or CUDA_HOME): from a clean checkout it builds the `cuda` binary, runs the GPU parity
# tests at the CPU's tolerances, and measures GPU embedding and Gemma 4 decoding (the fixture and
# a random-weight model at E4B's size). Prints one table; exits non-zero
# if any step fails.
#
#   bash scripts/gpu-check.sh            # CUDA_COMPUTE_CAP is read from nvidia-smi when unset
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU here (nvidia-smi -L failed)" >&2
  exit 1
fi
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  CUDA_COMPUTE_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '.')
  export CUDA_COMPUTE_CAP
fi

rows=()
failed=0
# step NAME COMMAND…: runs it, timing it, and records a row of the table.
step() {
  local name=$1
  shift
  local start=$SECONDS log
  log=$(mktemp)
  # Standard output alone in $LAST_LOG (a --json report stays parseable); errors beside it.
  if "$@" >"$log" 2>"$log.err"; then
    rows+=("$(printf '%-44s %-6s %6ss' "$name" ok $((SECONDS - start)))")
  else
    rows+=("$(printf '%-44s %-6s %6ss' "$name" FAILED $((SECONDS - start)))")
    failed=1
    echo "== $name failed; its last lines:" >&2
    tail -n 30 "$log" "$log.err" >&2
  fi
  LAST_LOG=$log
}

step "build (release, --features cuda)" cargo build --release --features cuda
step "fetch the assets" target/release/medlit fetch
export MEDLIT_TEST_DEVICE=cuda
step "Gemma 4 parity on cuda (f32 and bf16)" \
  cargo test --release --features cuda -p medlit-generate --test gemma4
step "MiniLM f32 encoder parity on cuda" \
  cargo test --release --features cuda -p medlit-indexer --test minilm_candle
step "bench embed --device cuda (1,000 passages)" \
  target/release/medlit bench embed --device cuda --passages 1000 --json
embed=$(tail -n 1 "$LAST_LOG")
# The Gemma 4 decoder on the GPU: the parity fixture, then a random-weight model at E4B's
# published size (15 GB of bf16 written to $MEDLIT_HOME/bench/synthetic, removed after).
# The default GGUF model decodes on the CPU's int8 kernels only, so it is not measured here.
# summarise LOG: one line of a `bench generate --json` report.
summarise() {
  python3 - "$1" <<'PY' 2>/dev/null || echo "no report"
import json, sys
v = json.load(open(sys.argv[1]))
r = v["rows"][0]
name = (v.get("synthetic") or {}).get("name") or v["model"]
print(f"{name} on {v['device']} in {v['dtype']}: prefill {r['medlit']['prefill_tok_s']:.1f} tok/s, "
      f"decode {r['medlit']['decode_tok_s']:.1f} tok/s, load {r['load_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
PY
}
step "bench generate, Gemma 4 fixture on cuda" \
  target/release/medlit bench generate --model generate/tests/fixtures/gemma4_tiny/model \
  --device cuda --threads 1 --runs 1 --json
fixture=$(summarise "$LAST_LOG")
step "bench generate, synthetic E4B on cuda (bf16)" \
  target/release/medlit bench generate --synthetic gemma4-e4b --device cuda --threads 1 \
  --prompt-tokens 512 --gen-tokens 128 --runs 1 --json
e4b=$(summarise "$LAST_LOG")

echo
printf '%-44s %-6s %7s\n' "check" "result" "time"
for r in "${rows[@]}"; do echo "$r"; done
echo
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
echo "embedding: $embed"
echo "decoder: $fixture"
echo "decoder: $e4b"
exit $failed
