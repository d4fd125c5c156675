#!/usr/bin/env bash
# The GPU checks, on a machine with an NVIDIA GPU, its driver and the CUDA toolkit (nvcc on
# PATH, or CUDA_HOME): from a clean checkout it builds the `cuda` binary, runs the GPU parity
# tests at the CPU's tolerances, and measures GPU embedding. Prints one table; exits non-zero
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
  if "$@" >"$log" 2>&1; then
    rows+=("$(printf '%-44s %-6s %6ss' "$name" ok $((SECONDS - start)))")
  else
    rows+=("$(printf '%-44s %-6s %6ss' "$name" FAILED $((SECONDS - start)))")
    failed=1
    echo "== $name failed; its last lines:" >&2
    tail -n 30 "$log" >&2
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

echo
printf '%-44s %-6s %7s\n' "check" "result" "time"
for r in "${rows[@]}"; do echo "$r"; done
echo
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
echo "embedding: $embed"
echo "Not yet part of this check: bench generate on the GPU (it measures GGUF decoding on"
echo "CPU threads) and the real-size synthetic Gemma 4 E4B."
exit $failed
