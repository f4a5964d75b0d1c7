#!/usr/bin/env bash
# The ONE device call that measures the GPU numbers (docs/perf.md gives the exact `run` call and the time budget).
#   1. installs the carried wheels (.whl/, from scripts/fetch_gpu_wheels.sh) the GPU image lacks;
#   2. `pdl-bench perf --size full`: loss memory, then the SmolLM2-135M shape, then the Qwen2-0.5B
#      shape; the JSON is saved after every measurement, so a cut-short run keeps what it measured;
#   3. the runner end to end on the GPU (scripts/gpu_runner_check.py): default (fast) vs plain arm.
# Everything lands under $OUT. PERF_LIMIT_S (default 400): the second of the script at which perf is
# stopped; PERF_MODELS the model shapes, in order; RUNNER_CHECK=0 skips step 3 (when a second call,
# scripts/gpu_point.sh, follows).
# Dry run on a CPU machine, with the venv's python first on PATH:
#   PATH=$PWD/.venv/bin:$PATH PERF_SIZE=tiny OUT=/tmp/gpu-dry bash scripts/gpu_perf.sh
set -uo pipefail
OUT=${OUT:-/tmp/perf-out}
PERF_SIZE=${PERF_SIZE:-full}
PERF_LIMIT_S=${PERF_LIMIT_S:-400}
PERF_MODELS=${PERF_MODELS:-}  # e.g. qwen2-0.5b: the shapes to measure, in this order (default: the size's)
RUNNER_CHECK=${RUNNER_CHECK:-1}
mkdir -p "$OUT"
source "$(dirname "$0")/_gpu_common.sh"
if compgen -G ".whl/*.whl" > /dev/null; then
  install_wheels .whl/*.whl || { echo "wheel install failed"; exit 3; }
  export PYTHONPATH=$SITE:$PWD
  # datasets needs a recent pyarrow: use the carried one if the image's is too old. If datasets
  # still fails, set it aside: perf does not need it (transformers would import a broken one).
  if ! python3 -c "import datasets" 2>"$OUT/datasets-import.txt"; then
    echo "import datasets failed with the image's pyarrow (datasets-import.txt); installing the carried pyarrow"
    compgen -G ".whl-fallback/*.whl" > /dev/null && install_wheels .whl-fallback/*.whl
    python3 -c "import datasets" 2>>"$OUT/datasets-import.txt" \
      || { echo "datasets still fails: set aside, the runner check will fail"; mv "$SITE/datasets" /tmp/datasets-aside; }
  fi
else
  echo "no .whl/ here: using the installed packages"
  export PYTHONPATH=$PWD
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import torch, transformers, accelerate, pydantic, harness.cli
print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__,
      'accelerate', accelerate.__version__, 'cuda', torch.cuda.is_available())"
  python3 -c "import datasets, evaluate, rouge_score, pyarrow; print('datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
} 2>&1 | tee "$OUT/env.txt"
python3 -c "import torch, transformers, pydantic, harness.perf.report" || { echo "perf cannot import: see $OUT/env.txt"; exit 4; }
git rev-parse HEAD > "$OUT/git.txt" 2>/dev/null || true

# Budget: the run call allows 560 s. Each step's limit is what is left of it, counted from this
# script's start ($SECONDS), so a slow install or import shortens perf, never the call; -k kills
# a step that ignores the TERM. perf stops at PERF_LIMIT_S (400 s), the runner check at 545 s.
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }  # seconds until mark $1, >= 1
timeout -k 5 "$(left "$PERF_LIMIT_S")" python3 -m harness perf --size "$PERF_SIZE" ${PERF_MODELS:+--models "$PERF_MODELS"} --output "$OUT/perf-$PERF_SIZE.json" 2>&1 | tee "$OUT/perf.txt"
perf_status=${PIPESTATUS[0]}
echo "perf exit status: $perf_status (124: cut by its time limit; the JSON holds what was measured)" | tee -a "$OUT/perf.txt"
if [ "$RUNNER_CHECK" = 0 ]; then echo "script time: $SECONDS s (runner check skipped: RUNNER_CHECK=0)"; exit "$perf_status"; fi
# --compile on: the check's 30 steps are too few for `auto` to compile, and the Trainer's
# torch_compile path should still run end to end once on a GPU.
timeout -k 5 "$(left 545)" python3 scripts/gpu_runner_check.py --compile on --out /tmp/runner-check \
  --budget-s "$(left 530)" > "$OUT/runner-check.txt" 2>&1
status=$?
tail -n 2 "$OUT/runner-check.txt"
echo "runner check exit status: $status (1: the default arm did not take the fast paths; 124: cut)" | tee -a "$OUT/runner-check.txt"
cp /tmp/runner-check/summary.json "$OUT/runner-check.json" 2>/dev/null || true
echo "script time: $SECONDS s"
