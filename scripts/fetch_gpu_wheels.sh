#!/usr/bin/env bash
# Download the wheels the GPU image lacks (datasets, evaluate, rouge-score, lexicalrichness and their
# missing dependencies, pydantic; see .library KINDS.md's package list) into .whl/ for a device `run`
# to carry, and a pyarrow fallback into .whl-fallback/ (carried only where the image's pyarrow is too
# old for datasets: it is 52 MiB of the 64 MiB a call may carry). Run here, in the repo root; both
# folders are ignored (.gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl \
  datasets==5.2.0 evaluate==0.4.6 nltk==3.10.4 dill==0.4.1 multiprocess==0.70.19 \
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 gguf==0.19.0
# The image's pyarrow version is unknown and datasets 5.2 needs >= 24: a fallback that gpu_perf.sh
# installs only if `import datasets` fails with the image's own pyarrow and .whl-fallback is carried.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl-fallback pyarrow==26.0.1
# rouge-score and lexicalrichness are published as source archives only: build their (pure-Python)
# wheels here.
python3 -m pip wheel -q --no-deps -w .whl rouge-score==0.1.2 lexicalrichness==0.5.1
du -sh .whl .whl-fallback
