#!/usr/bin/env bash
# Single-node SLURM cluster on this machine, for CI and local tests of the SLURM backend.
#
#   .ci/slurm.sh start    # bring it up (idempotent: already running -> just report), waits until the node is idle
#   .ci/slurm.sh status   # exit 0 only if partition "debug" is up and the node is idle/mixed/allocated
#                         (a second partition "short", MaxTime=1 minute, lets tests see a time limit refused)
#   .ci/slurm.sh stop     # cancel this cluster's jobs, stop slurmd, slurmctld and munged
#   .ci/slurm.sh env      # print "export SLURM_CONF=..." (eval "$(.ci/slurm.sh env)")
#
# Needs: root, and the Debian packages `slurm-wlm munge` (apt-get install -y slurm-wlm munge); installs nothing.
# Tested with slurm-wlm 22.05.8 + munge 0.5.15 on Debian 12 (2 CPUs, 24 GiB, no systemd, gVisor sandbox):
# `start` takes 0.3 s from an empty $BENCH_SLURM_DIR (0.1-1.1 s on restarts); sbatch -> job running in 0.3-1.3 s.
#
# Environment:
#   BENCH_SLURM_DIR       everything lives here: slurm.conf, munge key/socket, state, spool, logs
#                         (default $TMPDIR/bench-slurm, $TMPDIR defaulting to /tmp).
#   BENCH_SLURM_PORT      slurmctld port (default 6817); slurmd uses PORT+1. Change it if another SLURM runs here.
#   BENCH_SLURM_LINK_ETC  1 (default): if /etc/slurm/slurm.conf is absent or a symlink, point it at our slurm.conf so
#                         plain `sbatch`/`squeue` (and submitit, which just shells out to them) work without SLURM_CONF.
#                         A real /etc/slurm/slurm.conf file is never touched; then export SLURM_CONF (see `env`).
#                         Jobs inherit SLURM_CONF from the submitter, so `scontrol requeue` inside a job works too.
#   BENCH_SLURM_GPUS      N > 0: declare N *fake* GPUs (GRES gpu backed by dummy char devices) so --gpus-per-node /
#                         --gres=gpu:K are accepted and SLURM_GPUS_ON_NODE, CUDA_VISIBLE_DEVICES=0,..,K-1 are set in
#                         jobs; default 0 (no GRES). Read at cold start (config is rewritten only when no daemon runs).
#
# Notes / oddities found while building this:
#   * munged refuses to start unless its socket directory is executable by all ("Socket is inaccessible: execute
#     permissions for all required"), so $DIR/munge is 0755 and only the key inside is 0600. munged also checks
#     the ancestors of the socket: BENCH_SLURM_DIR must not sit under a group/world-writable dir without sticky bit.
#     munged runs as root without complaint (no --force needed). We use our own key + socket (AuthInfo=socket=...),
#     so a system munged, if any, is left alone. The apt postinst creates /etc/munge/munge.key but, without
#     systemd, starts no daemon; that key is not used.
#   * `slurmd -C` prints "NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=..
#     RealMemory=.." plus an "UpTime=" line; we copy the hardware fields verbatim (RealMemory exactly as measured is
#     fine: slurmd measures it the same way at registration; a larger value would drain the node "Low RealMemory").
#     The node is the short hostname with NodeAddr=127.0.0.1 (this host's name resolves via /etc/hosts).
#   * SelectTypeParameters=CR_CPU_Memory (not CR_Core) so a 1-CPU job takes one CPU even on hyperthreaded hosts.
#     With *_Memory, a job without --mem would get the whole node's memory and block every other job, hence
#     DefMemPerCPU = RealMemory / CPUs.
#   * ProctrackType=proctrack/linuxproc + TaskPlugin=task/none + JobAcctGatherType=jobacct_gather/none: no cgroups
#     are needed (none are usable in this sandbox); no cgroup.conf either. slurmd still logs harmless
#     "mpi/pmix_v4: ... can not load PMIx library" errors at start (MpiDefault=none; srun works).
#   * EnforcePartLimits=ALL: a job over the partition's limits is rejected by sbatch instead of pending forever with
#     Reason=PartitionConfig (e.g. "More processors requested than permitted", "Requested time limit is invalid").
#   * No slurmdbd: `sacct` exits 1 ("Slurm accounting storage is disabled"). A finished job stays visible in
#     squeue/`scontrol show job` for MinJobAge (10 s) only, then "slurm_load_jobs error: Invalid job id specified".
#     As a permanent record JobCompType=jobcomp/filetxt appends a line per job end to $DIR/log/jobcomp.log
#     ("JobId=.. JobState=COMPLETED|FAILED|CANCELLED|TIMEOUT .. ExitCode=.."); a requeue also writes a line
#     (JobState=PENDING), so the last line of a JobId is its final state.
#   * --signal=SIG@SECS without "B:" signals every process of every job step (srun steps, children included) but not
#     the batch shell; "B:" signals only the batch shell. It is sent at slurmctld's periodic check (every ~30 s) once
#     remaining time <= SECS + 30 s (sbatch(1): "may be sent up to 60 seconds earlier"). The time limit itself is
#     also enforced at that check, so jobs overrun --time by up to ~30 s. With --time=1, --signal=USR2@30: USR2
#     came 26 s after start, the kill 86 s after start.
#   * A requeued batch job is held (Reason=BeginTime) for AuthInfo cred_expire seconds (default 120!); we set
#     cred_expire=10, so `scontrol requeue` -> running again takes ~11-13 s.
#   * Without BENCH_SLURM_GPUS no GRES are configured: `--gpus`/`--gres=gpu:N` are rejected by sbatch
#     ("Invalid generic resource (gres) specification"). Switching BENCH_SLURM_GPUS between restarts logs a
#     harmless "gres_node_state_unpack: no plugin configured" error.
#   * Job state (queue, next job id) survives stop/start in $DIR/state; `stop` cancels all jobs first so a restart
#     starts with an empty queue. Deleting $DIR restarts job ids at 1, which collides with old per-job-id output
#     folders (e.g. submitit's "%j" folders would return stale results): wipe those together.
#   * slurmctld/slurmd/munged daemonize themselves (re-parented to PID 1); no systemd is involved.
set -euo pipefail

DIR="${BENCH_SLURM_DIR:-${TMPDIR:-/tmp}/bench-slurm}"
PORT="${BENCH_SLURM_PORT:-6817}"
LINK_ETC="${BENCH_SLURM_LINK_ETC:-1}"
FAKE_GPUS="${BENCH_SLURM_GPUS:-0}"
CONF="$DIR/slurm.conf"
MUNGE_DIR="$DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket.2"
PARTITION=debug
WAIT_S=60
export SLURM_CONF="$CONF"

log() { echo "slurm.sh: $*"; }
die() { echo "slurm.sh: error: $*" >&2; exit 1; }

need_tools() {
    local missing=()
    for t in slurmctld slurmd munged sinfo sbatch scontrol; do
        command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || missing+=("$t")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: install with: apt-get update && apt-get install -y slurm-wlm munge"
    [ "$(id -u)" = 0 ] || die "must run as root (daemons run as SlurmUser=root)"
}
PATH="$PATH:/usr/sbin:/sbin"

pid_alive() {  # pid_alive PIDFILE
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_state() {  # first node's state as sinfo reports it, e.g. idle, mix, alloc, down*, or empty
    timeout 10 sinfo -h -p "$PARTITION" -o '%a %t' 2>/dev/null | head -n1
}

is_healthy() {
    local s avail state
    s="$(node_state)" || return 1
    read -r avail state <<<"$s" || return 1
    [ "$avail" = up ] || return 1
    case "$state" in idle|mix|alloc|comp) return 0 ;; *) return 1 ;; esac
}

slurmd_registered_at() {  # epoch seconds of the node's SlurmdStartTime, 0 if unknown
    local t
    t="$(timeout 10 scontrol -o show node 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | head -n1 | cut -d= -f2)"
    date -d "$t" +%s 2>/dev/null || echo 0
}

write_conf() {
    local host hw cpus mem defmem
    host="$(hostname -s)"
    # e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    hw="$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=' | sed 's/^NodeName=[^ ]* //')"
    [ -n "$hw" ] || die "slurmd -C printed no NodeName line"
    cpus="$(sed -n 's/.*\bCPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
    mem="$(sed -n 's/.*\bRealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
    defmem=$(( mem / cpus ))
    local gres_types="" node_gres=""
    if [ "$FAKE_GPUS" -gt 0 ] 2>/dev/null; then
        gres_types="GresTypes=gpu"
        node_gres="Gres=gpu:$FAKE_GPUS"
        # slurmd 22.05 drops a GPU GRES without File= ("Removing file-less GPU ... from final GRES list") and then
        # drains the node ("gres/gpu count reported lower than configured (0 < N)"). Regular files are accepted
        # with an error ("... is not a valid character or block device"), so make char devices (same major/minor
        # as /dev/null) named nvidia<i>; SLURM then sets CUDA_VISIBLE_DEVICES from the <i> of the allocated files.
        # gres.conf must sit next to slurm.conf.
        local i
        rm -rf "$DIR/fakegpu"; mkdir -p "$DIR/fakegpu"
        for ((i = 0; i < FAKE_GPUS; i++)); do
            mknod "$DIR/fakegpu/nvidia$i" c 1 3 2>/dev/null || touch "$DIR/fakegpu/nvidia$i"
        done
        echo "NodeName=$host Name=gpu File=$DIR/fakegpu/nvidia[0-$((FAKE_GPUS - 1))]" >"$DIR/gres.conf"
    else
        rm -rf "$DIR/gres.conf" "$DIR/fakegpu"
    fi
    cat >"$CONF.tmp" <<EOF
# Generated by .ci/slurm.sh on $(date -u +%FT%TZ); rewritten at every cold start.
ClusterName=bench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job is held before it may start again (default 120 s)
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$defmem
SchedulerType=sched/backfill
# schedule on every submit/end event and every 2 s (defaults: 60 s main loop, 30 s backfill);
# SchedulerTimeSlice is only used by gang scheduling (not enabled), so it is left alone
SchedulerParameters=sched_interval=2,bf_interval=2,batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000
JobRequeue=1
EnforcePartLimits=ALL
ReturnToService=2
# finished jobs stay in squeue/scontrol for 10 s (no sacct here); KillWait = SIGTERM->SIGKILL grace
MinJobAge=10
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
UnkillableStepTimeout=30
$gres_types
NodeName=$host NodeAddr=127.0.0.1 $hw $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=$host MaxTime=1 State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

link_etc() {
    [ "$LINK_ETC" = 1 ] || return 0
    local etc=/etc/slurm/slurm.conf
    if [ -L "$etc" ] || [ ! -e "$etc" ]; then
        mkdir -p /etc/slurm
        ln -sfn "$CONF" "$etc"
    elif [ "$(readlink -f "$etc")" != "$(readlink -f "$CONF")" ]; then
        log "note: $etc is a real file, left alone; use: export SLURM_CONF=$CONF"
    fi
}

start_munge() {
    pid_alive "$MUNGE_DIR/munged.pid" && return 0
    mkdir -p "$MUNGE_DIR"
    chmod 0755 "$MUNGE_DIR"    # munged: socket dir must be executable by all
    if [ ! -s "$MUNGE_DIR/munge.key" ]; then
        if command -v mungekey >/dev/null 2>&1 || [ -x /usr/sbin/mungekey ]; then
            mungekey --create --keyfile="$MUNGE_DIR/munge.key" >/dev/null
        else
            dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
        fi
    fi
    chmod 0600 "$MUNGE_DIR/munge.key"   # munged refuses a key readable by group/others
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munged --key-file="$MUNGE_DIR/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        || die "munged failed to start; see $MUNGE_DIR/munged.log"
    munge -n -S "$MUNGE_SOCKET" >/dev/null || die "munge self-test failed; see $MUNGE_DIR/munged.log"
}

cmd_start() {
    need_tools
    if pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/run/slurmd.pid" && is_healthy; then
        link_etc
        log "already running: partition $PARTITION $(node_state) (SLURM_CONF=$CONF)"
        return 0
    fi
    local t0; t0=$(date +%s.%N)
    mkdir -p "$DIR/state" "$DIR/spool/slurmd" "$DIR/run" "$DIR/log"
    chmod 0755 "$DIR"
    start_munge
    # Only rewrite the config when neither SLURM daemon is up (a running one would disagree with a new file).
    if ! pid_alive "$DIR/run/slurmctld.pid" && ! pid_alive "$DIR/run/slurmd.pid"; then
        write_conf
    fi
    link_etc
    if ! pid_alive "$DIR/run/slurmctld.pid"; then
        slurmctld -f "$CONF" || die "slurmctld failed to start; see $DIR/log/slurmctld.log"
    fi
    local slurmd_t0=0
    if ! pid_alive "$DIR/run/slurmd.pid"; then
        slurmd_t0=$(date +%s)
        slurmd -f "$CONF" || die "slurmd failed to start; see $DIR/log/slurmd.log"
    fi
    local deadline=$((SECONDS + WAIT_S)) resumed=0
    # slurmctld restores the node as IDLE from $DIR/state before slurmd has registered, so on a restart
    # also wait for the node's SlurmdStartTime to be at least the time we launched slurmd.
    until is_healthy && [ "$(slurmd_registered_at)" -ge "$slurmd_t0" ]; do
        # A node remembered as DOWN/DRAIN from an earlier run: ReturnToService=2 normally clears it; nudge once.
        if [ $resumed = 0 ] && [[ "$(node_state)" =~ (down|drain) ]] && pid_alive "$DIR/run/slurmd.pid"; then
            scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
            resumed=1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "slurm.sh: error: node not idle after ${WAIT_S}s (sinfo: '$(node_state)'); logs in $DIR/log" >&2
            tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.5
    done
    log "started in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s: partition $PARTITION $(node_state) (SLURM_CONF=$CONF)"
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE
    local pid i
    [ -s "$2" ] || return 0
    pid="$(cat "$2")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$1 ($pid) ignored SIGTERM for 10s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$2"
}

cmd_stop() {
    local i
    if [ -f "$CONF" ] && pid_alive "$DIR/run/slurmctld.pid"; then
        # Cancel every job of this private cluster, so no slurmstepd/job outlives the daemons
        # and a later start does not resurrect old jobs from $DIR/state.
        if [ -n "$(timeout 10 squeue -h -o %i 2>/dev/null)" ]; then
            timeout 10 scancel --full --quiet $(squeue -h -o %A 2>/dev/null) 2>/dev/null || true
            for i in $(seq 1 40); do
                [ -z "$(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
                sleep 0.25
            done
        fi
    fi
    stop_pidfile slurmd "$DIR/run/slurmd.pid"
    stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
    stop_pidfile munged "$MUNGE_DIR/munged.pid"
    log "stopped (state, config and logs kept in $DIR)"
}

cmd_status() {
    if pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/run/slurmd.pid" && is_healthy; then
        log "up: partition $PARTITION $(node_state) (SLURM_CONF=$CONF)"
        return 0
    fi
    log "down (sinfo: '$(node_state || true)')"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 {start|stop|status|env}   (dir: \$BENCH_SLURM_DIR, default \$TMPDIR/bench-slurm)" >&2; exit 2 ;;
esac
