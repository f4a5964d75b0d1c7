#!/usr/bin/env bash
# Check that the version floors declared in pyproject.toml are true: a fresh venv gets every
# dependency pinned to its floor (derived from pyproject.toml, so there is no second list to keep in
# step), then the fast tests run against it. A floor that is too low fails here, not for a user.
# torch is the exception: only its local CPU wheel (torch==2.13.0) can be had here, so it stays at that.
# FLOORS_VENV: where the venv goes (recreated every run); TORCH_SPEC: another torch. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FLOORS_VENV:-${TMPDIR:-/tmp}/pdl-bench-floors}
PYTHON=${PYTHON:-python3}
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip
"${pip[@]}" install -q "${TORCH_SPEC:-torch==2.13.0}"

# name==floor for every `name>=floor` in [project] dependencies (the extras resolve within them).
"$VENV/bin/python" - > "$VENV/floors.txt" <<'EOF'
import re
try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

for requirement in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)\s*", requirement)
    if match and match[1] != "torch":
        print(f"{match[1]}=={match[3]}")
EOF
# The installed torch, exactly (+cpu included): a resolver that backtracks must never reach for a
# multi-GB CUDA build of torch from the index.
"$VENV/bin/python" -c "import torch; print(f'torch=={torch.__version__}')" >> "$VENV/floors.txt"
echo "floors:" $(cat "$VENV/floors.txt")
install=(install -c "$VENV/floors.txt" -e ".[data,dev]")
"${pip[@]}" "${install[@]}" -q || {  # -q hides why pip could not resolve: show that part
  "${pip[@]}" "${install[@]}" --dry-run 2>&1 | sed -n '/conflict is caused by/,/^$/p'; exit 1; }
"$VENV/bin/python" -m pip list --format=freeze > "$VENV/installed.txt"
PDL_SKIP_SLOW=1 "$VENV/bin/python" -m pytest -q -m "not slow" -p no:cacheprovider "$@"
