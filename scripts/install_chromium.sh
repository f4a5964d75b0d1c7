#!/usr/bin/env bash
# Debian's chromium, for the HTML report's browser check (scripts/check_report_browser.py and
# tests/test_report.py::test_report_renders_in_headless_chromium).
#
#   bash scripts/install_chromium.sh    # prints the browser's path; apt-installs it first if it is missing
#
# Idempotent: when chromium is there it only prints where. Installing needs root (as in CI) and
# Debian's package registry. On failure it prints one line "install_chromium: ..." to stderr and
# exits non-zero.
set -euo pipefail
NAME=install_chromium
# shellcheck source=scripts/_common.sh
source "$(dirname "$0")/_common.sh" # PATH with /usr/sbin, say, die, apt_install
LOG="${TMPDIR:-/tmp}/install_chromium.apt.log"

found() { command -v chromium || { [[ -x /usr/bin/chromium ]] && echo /usr/bin/chromium; }; }

if path=$(found); then
    echo "$path"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || die "chromium is not installed, and installing it (apt-get install chromium) needs root"
command -v apt-get >/dev/null || die "chromium is not installed, and there is no apt-get to install it with"

t0=$SECONDS
say "installing chromium with apt-get (log: $LOG)"
# Without recommends: the one recommendation is chromium-sandbox, which headless --no-sandbox does not use.
apt_install "$LOG" chromium || die "apt-get could not install chromium (no package registry?)" "apt log: $LOG" \
    "$(tail -n 3 "$LOG" 2>/dev/null | tr '\n' ' ')"
path=$(found) || die "apt-get installed chromium but there is no chromium command" "apt log: $LOG"
version=$("$path" --version 2>&1) || die "chromium is installed but does not run: $version" "apt log: $LOG"
say "$version installed in $((SECONDS - t0))s"
echo "$path"
