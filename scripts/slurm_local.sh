#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for scheduler tests (tests/slurm_cluster.py).
#
#   bash scripts/slurm_local.sh start    # install (first time), configure, start, check a job runs
#   bash scripts/slurm_local.sh status   # sinfo; exit 0 when the cluster takes jobs
#   bash scripts/slurm_local.sh stop     # cancel jobs, stop slurmd, slurmctld (and munged if we started it)
#
# Runs as root on Debian (slurm-wlm + munge from apt). No systemd: the daemons are started directly.
# No cgroups (proctrack/linuxproc, task/none) and no accounting database (sacct does not work).
# `start` is idempotent: when the cluster already runs it only checks that it takes a job.
# On failure it prints one line "slurm_local: ..." to stderr and exits non-zero.
set -euo pipefail
NAME=slurm_local
# shellcheck source=scripts/_common.sh
source "$(dirname "$0")/_common.sh" # PATH with /usr/sbin, say, die, apt_install

PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
CLUSTER_NAME="pdl-local"
LOG_DIR="/var/log/slurm-local"
RUN_DIR="/run/slurm-local"
SPOOL_CTLD="/var/spool/slurmctld-local"
SPOOL_D="/var/spool/slurmd-local"
READY_TIMEOUT_S="${SLURM_LOCAL_READY_TIMEOUT:-60}"

logs_hint() { echo "logs: $LOG_DIR/slurmctld.log $LOG_DIR/slurmd.log $LOG_DIR/munged.log"; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"

# Debian >= 11 (slurm 20.11+) reads /etc/slurm; older releases used /etc/slurm-llnl.
conf_dir() {
    if [[ -d /etc/slurm ]] || [[ ! -d /etc/slurm-llnl ]]; then echo /etc/slurm; else echo /etc/slurm-llnl; fi
}

pid_alive() { # pidfile -> 0 if the process in it runs
    local f=$1 pid
    [[ -s $f ]] || return 1
    pid=$(cat "$f" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

stop_pidfile() { # name pidfile: TERM, wait up to 15 s, then KILL
    local name=$1 f=$2 pid i
    pid_alive "$f" || { rm -f "$f"; return 0; }
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        say "$name (pid $pid) did not stop on TERM; killed"
    else
        say "stopped $name (pid $pid)"
    fi
    rm -f "$f"
}

# ---------------------------------------------------------------- install
install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return 0
    fi
    local pkgs=(slurm-wlm munge) log="$LOG_DIR/apt.log"
    say "installing ${pkgs[*]} with apt-get (log: $log)"
    # Debian's postinst scripts try to start the services; there is no init system to do so here.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    local ok=0
    apt_install "$log" "${pkgs[@]}" && ok=1
    [[ $created_policy -eq 1 ]] && rm -f "$policy"
    [[ $ok -eq 1 ]] || die "apt-get could not install slurm-wlm and munge (no package registry?)" \
        "apt log: $log" "$(tail -n 3 "$log" 2>/dev/null | tr '\n' ' ')"
    for b in slurmctld slurmd munged sbatch srun sinfo; do
        command -v "$b" >/dev/null || die "apt-get installed slurm-wlm but '$b' is still missing" "apt log: $log"
    done
}

# ---------------------------------------------------------------- munge
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then return 0; fi
    getent passwd munge >/dev/null || die "user 'munge' is missing (the munge package creates it)"
    install -d -o munge -g munge -m 0700 /etc/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge
    install -d -o munge -g munge -m 0700 /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null 2>&1 \
                || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
        say "created /etc/munge/munge.key"
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    # A stale socket or pid file from a killed munged makes the new one refuse to start.
    if [[ -e /run/munge/munged.pid ]] && ! pid_alive /run/munge/munged.pid; then
        rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    fi
    : >"$LOG_DIR/munged.log"
    chown munge:munge "$LOG_DIR/munged.log"
    # --force: munged refuses group-writable parent dirs, which some images have (e.g. /var/log).
    if ! runuser -u munge -- munged --force --log-file="$LOG_DIR/munged.log" >>"$LOG_DIR/munged.log" 2>&1; then
        die "munged could not start" "log: $LOG_DIR/munged.log" "$(tail -n 3 "$LOG_DIR/munged.log" | tr '\n' ' ')"
    fi
    touch "$RUN_DIR/started-munged"
    local i
    for ((i = 0; i < 20; i++)); do
        munge_works && { say "munged running"; return 0; }
        sleep 0.5
    done
    die "munged started but 'munge -n | unmunge' fails" "log: $LOG_DIR/munged.log"
}

# ---------------------------------------------------------------- slurm.conf
node_name() { hostname -s; }

write_config() {
    local dir node cpus nproc_n mem_kb mem_mb cg real_mem headroom topo line def_mem
    dir=$(conf_dir)
    node=$(node_name)
    nproc_n=$(nproc)
    # Memory: the smaller of /proc/meminfo and a cgroup limit, less 10% (at least 512 MiB) headroom.
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    mem_mb=$((mem_kb / 1024))
    for cg in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
        if [[ -r $cg ]]; then
            local lim
            lim=$(cat "$cg")
            if [[ $lim =~ ^[0-9]+$ ]] && ((lim / 1048576 < mem_mb)); then mem_mb=$((lim / 1048576)); fi
        fi
    done
    headroom=$((mem_mb / 10))
    ((headroom < 512)) && headroom=512
    real_mem=$((mem_mb - headroom))
    ((real_mem >= 256)) || die "only ${mem_mb} MB of memory; too little for a SLURM node"
    # CPUs: slurmd -C knows the topology; when the CPUs we may use (nproc) differ, advertise nproc only.
    line=$(slurmd -C 2>/dev/null | head -n 1 || true)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$line")
    local extra_params=""
    if [[ -n $cpus && $cpus == "$nproc_n" ]]; then
        topo=$(grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$line" || true)
        topo="CPUs=$cpus $topo"
    else
        topo="CPUs=$nproc_n"
        cpus=$nproc_n
        extra_params="SlurmdParameters=config_overrides"
    fi
    # Jobs that ask for no memory get this much per CPU (not the whole node, so several run at once).
    def_mem=$((real_mem / cpus))
    ((def_mem > 1024)) && def_mem=1024

    install -d -m 0755 "$dir" "$SPOOL_CTLD" "$SPOOL_D" "$LOG_DIR" "$RUN_DIR"
    cat >"$dir/slurm.conf.new" <<EOF
# Written by scripts/slurm_local.sh: a one-node test cluster. Do not edit; rerun the script.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
SchedulerType=sched/backfill
StateSaveLocation=$SPOOL_CTLD
SlurmdSpoolDir=$SPOOL_D
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
# No mail on this machine; without it slurmctld logs "Configured MailProg is invalid".
MailProg=/bin/true
$extra_params
NodeName=$node NodeHostname=$node NodeAddr=127.0.0.1 $topo RealMemory=$real_mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$dir/slurm.conf.new" "$dir/slurm.conf"
    chmod 0644 "$dir/slurm.conf"
    # slurmd 22.05 loads a cgroup plugin at start even with proctrack/linuxproc and task/none
    # ("CgroupPlugin=disabled" only exists from 23.02): let it autodetect v1/v2, constrain nothing.
    cat >"$dir/cgroup.conf" <<EOF
# Written by scripts/slurm_local.sh. No cgroup plugin enforces anything (proctrack/linuxproc, task/none).
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
EOF
    chmod 0644 "$dir/cgroup.conf"
}

# ---------------------------------------------------------------- checks
node_state() { sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -n 1; }

controller_up() { timeout 15 scontrol ping 2>/dev/null | grep -q 'is UP'; }

run_test_job() { # a 1-CPU, 16 MB job; bounded
    timeout 60 srun -N1 -n1 --mem=16M -t 1 -p "$PARTITION" -J slurm-local-check true >/dev/null 2>&1
}

usable() { # controller answers and a test job runs on the idle node (a busy node evidently runs jobs)
    controller_up || return 1
    local st
    st=$(node_state)
    case "$st" in
        idle) run_test_job ;;
        mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT_S)) st node resumed=0
    node=$(node_name)
    while ((SECONDS < deadline)); do
        if controller_up; then
            st=$(node_state)
            case "$st" in
                idle)
                    if run_test_job; then return 0; fi
                    ;;
                mixed | allocated | completing) return 0 ;; # jobs from before the restart run on it
                down* | drain* | fail*)
                    if ((resumed < 3)); then
                        say "node $node is $st; resuming it"
                        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
                        resumed=$((resumed + 1))
                    fi
                    ;;
            esac
        fi
        sleep 1
    done
    return 1
}

# ---------------------------------------------------------------- commands
do_start() {
    install -d -m 0755 "$LOG_DIR" "$RUN_DIR"
    if [[ -f "$(conf_dir)/slurm.conf" ]] && command -v sinfo >/dev/null && munge_works \
        && pid_alive "$RUN_DIR/slurmctld.pid" && pid_alive "$RUN_DIR/slurmd.pid" && controller_up; then
        local st
        st=$(node_state)
        case "$st" in
            down* | drain* | fail*)
                say "node $(node_name) is $st; resuming it"
                scontrol update nodename="$(node_name)" state=resume >/dev/null 2>&1 || true
                sleep 1
                ;;
        esac
        if usable; then
            say "cluster already running; it takes jobs"
            sinfo
            return 0
        fi
        say "cluster runs but does not take jobs; restarting it"
    fi
    local t0=$SECONDS
    install_packages
    start_munge
    # Whatever half of the cluster is left from before is stopped and started anew with a fresh config.
    stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
    stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
    write_config
    say "wrote $(conf_dir)/slurm.conf"
    # -i: ignore unreadable state files (e.g. from another hostname) rather than refuse to start.
    if ! slurmctld -i >>"$LOG_DIR/slurmctld.stdout" 2>&1; then
        die "slurmctld could not start" "$(logs_hint) $LOG_DIR/slurmctld.stdout" \
            "$(tail -n 3 "$LOG_DIR/slurmctld.stdout" "$LOG_DIR/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
    fi
    if ! slurmd >>"$LOG_DIR/slurmd.stdout" 2>&1; then
        die "slurmd could not start" "$(logs_hint) $LOG_DIR/slurmd.stdout" \
            "$(tail -n 3 "$LOG_DIR/slurmd.stdout" "$LOG_DIR/slurmd.log" 2>/dev/null | tr '\n' ' ')"
    fi
    if ! wait_ready; then
        local st
        st=$(node_state || true)
        die "cluster did not become usable within ${READY_TIMEOUT_S}s (node state: ${st:-unknown}; test job failed)" \
            "$(logs_hint)"
    fi
    say "cluster up in $((SECONDS - t0))s; a test job ran"
    sinfo
}

do_stop() {
    if command -v squeue >/dev/null && controller_up; then
        local jobs
        jobs=$(squeue -h -o '%i' 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            say "cancelling jobs: $(tr '\n' ' ' <<<"$jobs")"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            sleep 2
        fi
    fi
    stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
    stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
    if [[ -f $RUN_DIR/started-munged ]]; then
        stop_pidfile munged /run/munge/munged.pid
        rm -f "$RUN_DIR/started-munged"
    fi
    say "stopped"
}

do_status() {
    command -v sinfo >/dev/null || { say "not installed (run: bash scripts/slurm_local.sh start)"; exit 1; }
    if ! controller_up; then
        say "slurmctld not answering (run: bash scripts/slurm_local.sh start)"
        exit 1
    fi
    sinfo
    local st
    st=$(node_state)
    case "$st" in
        idle | mixed | allocated | completing) say "usable (node $(node_name) is $st)" ;;
        *) say "node $(node_name) is ${st:-unknown}: not usable"; exit 1 ;;
    esac
}

case "${1:-}" in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
