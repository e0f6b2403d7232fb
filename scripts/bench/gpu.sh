#!/usr/bin/env bash
# GPU performance harness (issue 5): every bench in sequence, within a time budget.
#
#     bash scripts/bench/gpu.sh            # logs and JSON under $OUT when set, else /tmp/assistant-bench-out
#
# On CUDA: training throughput on qwen2.5-0.5b, qwen2.5-1.5b and qwen2.5-7b (plain vs assistant
# recipe), chat latency and hot-swap (100 swaps) on qwen2.5-1.5b, then the CPU benches (store
# writers). Without CUDA: the same scripts on the tiny shape with short runs, to prove the harness in
# a few minutes on the 2-core machine. BENCH_BUDGET_S (default 570 on CUDA, 600 on CPU) bounds the
# whole run: each step gets what is left, and a step that overruns is killed and logged as such.
# Models are random, built once under $BENCH_CACHE (default /tmp/assistant-bench-models).
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/assistant-bench-out}
export OUT
mkdir -p "$OUT"
B=scripts/bench

if "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  CUDA=1; BUDGET=${BENCH_BUDGET_S:-570}
  STEPS=(
    "train-0.5b|$B/train_throughput.py --shape qwen2.5-0.5b --steps 20 --warmup 3 --json train-qwen2.5-0.5b.json"
    "preference-0.5b|$B/preference.py --shape qwen2.5-0.5b --max-steps 40"
    "train-1.5b|$B/train_throughput.py --shape qwen2.5-1.5b --steps 15 --warmup 3 --json train-qwen2.5-1.5b.json"
    "chat-1.5b|$B/chat_latency.py --shape qwen2.5-1.5b --prompt-tokens 500 --new-tokens 128 --repeats 5"
    "swap-1.5b|$B/swap.py --shape qwen2.5-1.5b --swaps 100"
    "train-7b|$B/train_throughput.py --shape qwen2.5-7b --steps 8 --warmup 2 --json train-qwen2.5-7b.json"
    "store|$B/store_writers.py --writers 1,8 --rows 500"
  )
else
  CUDA=0; BUDGET=${BENCH_BUDGET_S:-600}
  STEPS=(
    "train-tiny|$B/train_throughput.py --shape tiny --steps 8 --warmup 2 --scale 0.25 --json train-tiny.json"
    "chat-tiny|$B/chat_latency.py --shape tiny --prompt-tokens 500 --new-tokens 64 --repeats 3"
    "swap-tiny|$B/swap.py --shape tiny --swaps 100"
    "store|$B/store_writers.py --writers 1,8 --rows 500"
  )
fi

START=$(date +%s)
echo "gpu.sh: cuda=$CUDA budget=${BUDGET}s out=$OUT python=$PY" | tee "$OUT/summary.log"
"$PY" -c 'import torch, transformers, peft, trl; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "trl", trl.__version__)' 2>&1 | tee -a "$OUT/summary.log"
FAILED=0
for step in "${STEPS[@]}"; do
  name=${step%%|*}; args=${step#*|}
  left=$(( BUDGET - ($(date +%s) - START) ))
  if [ "$left" -le 10 ]; then
    echo "== $name: SKIPPED (budget spent)" | tee -a "$OUT/summary.log"; FAILED=1; continue
  fi
  echo "== $name ($left s left): $PY $args" | tee -a "$OUT/summary.log"
  t0=$(date +%s)
  # shellcheck disable=SC2086
  timeout --kill-after=10 "$left" "$PY" $args >"$OUT/$name.log" 2>"$OUT/$name.err"
  rc=$?
  grep -v -e '^Loading weights' -e '^Writing model shards' "$OUT/$name.log" | tee -a "$OUT/summary.log"
  if [ $rc -ne 0 ]; then
    FAILED=1
    [ $rc -eq 124 ] && echo "   $name: TIMED OUT" | tee -a "$OUT/summary.log"
    echo "   $name: exit $rc; last lines of $OUT/$name.err:" | tee -a "$OUT/summary.log"
    tail -n 15 "$OUT/$name.err" | tee -a "$OUT/summary.log"
  fi
  echo "   ($name took $(( $(date +%s) - t0 )) s)" | tee -a "$OUT/summary.log"
done
echo "gpu.sh: done in $(( $(date +%s) - START )) s; failed=$FAILED" | tee -a "$OUT/summary.log"
exit $FAILED
