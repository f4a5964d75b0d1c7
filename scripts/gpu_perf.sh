#!/usr/bin/env bash
# The ONE device call for issue 7 (docs/perf.md gives the exact `run` call). Installs the carried
# wheels, runs the GPU-relevant tests, then `pdl-bench perf --size full`, logging under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/perf-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 3; }
export PYTHONPATH=/tmp/site:$PWD
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)"; } 2>&1 | tee "$OUT/env.txt"
# Correctness on the GPU's kernels first (CPU-sized tests; the fast paths' equality checks).
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_perf.py -m "not slow" 2>&1 | tee "$OUT/pytest.txt"
# Full-size measurement; each model's compile is part of the time budget (~8 min in all).
timeout 420 python3 -m harness perf --size full --output "$OUT/perf-full.json" 2>&1 | tee "$OUT/perf.txt"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "full run failed or timed out ($status); SmolLM2 shape only, no compile:"
  timeout 150 python3 -m harness perf --size full --models smollm2-135m --compile off \
    --output "$OUT/perf-smollm2.json" 2>&1 | tee "$OUT/perf-fallback.txt"
fi
