#!/usr/bin/env bash
# The GPU path in one run, on one GPU; the two steps are cut off at 180 s and 290 s, so the
# whole run stays under 8 minutes (the default sizes are meant to finish well within them):
#   1. the tests marked gpu (tests/test_gpu.py): training steps in fp32, --hf-bf16 and
#      ParlAI's --fp16, search, length groups and serving, on CUDA;
#   2. bench/gpu_bench.py: ours vs the transformers Trainer on t5-small and a Qwen2.5-0.5B
#      shape (random init), tokens/s and MFU against this device's matmul peak.
#
#   bench/gpu.sh            # on a machine with CUDA
#   bench/gpu.sh --cpu      # the same two steps on the CPU, tiny models: checks the script
#
# PYTHON (default: the repository's .venv, else python3) runs both; RESULTS names a folder
# for the log and the JSON of the measured runs (default: a new temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RESULTS=${RESULTS:-$(mktemp -d -t gpu_bench.XXXXXX)}
mkdir -p "$RESULTS"
export HF_HUB_OFFLINE=1

case "${1:-}" in
  --cpu) device=cpu; bench_args=(--device cpu --tiny --steps 3 --warmup 1) ;;
  "") device=cuda; bench_args=(--device cuda) ;;
  *) echo "usage: bench/gpu.sh [--cpu]" >&2; exit 2 ;;
esac

start=$SECONDS
echo "== 1/2 tests marked gpu on $device"
DIALOGFT_TEST_DEVICE=$device timeout 180 "$PYTHON" -m pytest -q -m gpu -p no:randomly tests/test_gpu.py \
  2>&1 | tee "$RESULTS/tests.log" | grep -E "passed|failed|skipped|error" || true
tests_ok=1  # a failed test does not stop the benchmark (device time is scarce); the exit status says it
if ! grep -qE "[0-9]+ passed" "$RESULTS/tests.log" || grep -qE "[0-9]+ (failed|error)" "$RESULTS/tests.log"; then
  echo "gpu tests failed: $RESULTS/tests.log" >&2
  tests_ok=0
fi

echo "== 2/2 ours vs the Trainer on $device ($((SECONDS - start)) s so far)"
# The table only; ParlAI's and the Trainer's own lines stay in the log.
timeout 290 "$PYTHON" bench/gpu_bench.py "${bench_args[@]}" --save "$RESULTS/gpu_bench.json" \
  2>"$RESULTS/bench.stderr" | tee "$RESULTS/bench.log" | grep -E "^(\||device:)" \
  || { echo "the benchmark stopped early: its finished runs are the '# ' lines of $RESULTS/bench.log" >&2; exit 1; }
echo "== done in $((SECONDS - start)) s; log and JSON in $RESULTS"
[ "$tests_ok" = 1 ] || { echo "gpu tests failed (above)" >&2; exit 1; }
