# Sourced (not run) by scripts/slurm_local.sh and scripts/install_chromium.sh, which set NAME first:
# the prefix of their lines ("NAME: ..."), by which tests/needs.py finds the one error line.
# shellcheck shell=bash

# The daemons (slurmctld, slurmd, munged) and dpkg's helpers (ldconfig, start-stop-daemon) live in
# /usr/sbin and /sbin, which a minimal PATH (env -i, CI) lacks.
export PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

say() { echo "$NAME: $*"; }

die() {
    # The one clear line the test fixture reports; details (log paths) follow on their own lines.
    echo "$NAME: $1" >&2
    shift
    for extra in "$@"; do echo "  $extra" >&2; done
    exit 1
}

apt_install() { # log package... : apt-get install them; on failure apt-get update and try once more
    local log=$1
    shift
    if apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then return 0; fi
    say "apt-get install failed; running apt-get update and trying again"
    apt-get update -q >>"$log" 2>&1 && apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1
}
