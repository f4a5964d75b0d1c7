# Sourced by scripts/gpu_perf.sh and scripts/gpu_point.sh: the device calls' environment (offline,
# unbuffered) and how carried wheels are installed (into $SITE, /tmp/site by default, which the
# later calls of a session find on the same warm machine).
# shellcheck shell=bash
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PDL_BENCH_CACHE=${PDL_BENCH_CACHE:-/tmp/pdl-bench-cache}
SITE=${SITE:-/tmp/site}
install_wheels() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$@"; }
