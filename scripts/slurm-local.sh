#!/usr/bin/env bash
# One-node Slurm on localhost for tests: Debian 12's Slurm 22.05 + MUNGE, started by hand (no systemd).
# Idempotent; run as root.   Usage: scripts/slurm-local.sh start|stop|status
# Env: SLURM_DIR (default <repo>/.slurm), SLURM_CPUS (default nproc; more = oversubscribe), SLURM_CTLD_PORT, SLURMD_PORT
# Clients (sbatch, squeue, scontrol, srun) need: export SLURM_CONF=$SLURM_DIR/slurm.conf
set -euo pipefail
D=${SLURM_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.slurm}; mkdir -p "$D"; D=$(cd "$D" && pwd)
export SLURM_CONF=$D/slurm.conf
NODE=$(hostname -s) CPUS=${SLURM_CPUS:-$(nproc)} SOCK=$D/munge/munge.socket.2

pid() { cat "$D/run/$1.pid" 2>/dev/null; }
live() { ps -o stat=,comm= -p "$1" 2>/dev/null | awk '$1 !~ /^Z/ {print $2}'; }  # PID 1 reaps zombies late
alive() { local p; p=$(pid "$1") && [ -n "$p" ] && [ "$(live "$p")" = "$1" ]; }
halt() {  # SIGTERM only (slurmctld saves its state on TERM); wait up to 15 s
  local p; alive "$1" && p=$(pid "$1") || return 0
  kill "$p"; for _ in $(seq 150); do [ -n "$(live "$p")" ] || return 0; sleep 0.1; done
  echo "$1 ($p) did not stop" >&2; return 1
}

write_conf() {  # succeeds only if slurm.conf changed
  local mem extra=""
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p'); mem=$((mem * 9 / 10))
  [ "$CPUS" -gt "$(nproc)" ] && extra="SlurmdParameters=config_overrides"
  case $(getent ahostsv4 "$NODE" | awk 'NR==1 {print $1}') in   # listen on loopback only, which
    127.*) extra+=$'\n'"CommunicationParameters=NoCtldInAddrAny,NoInAddrAny";;  # needs NODE -> 127.*
  esac
  cat > "$D/slurm.conf.new" <<EOF
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmctldPort=${SLURM_CTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
AuthType=auth/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
MaxArraySize=10001
$extra
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  if cmp -s "$D/slurm.conf.new" "$SLURM_CONF"; then rm "$D/slurm.conf.new"; return 1; fi
  mv "$D/slurm.conf.new" "$SLURM_CONF"
}

start() {
  [ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
  if ! (command -v slurmctld && command -v slurmd && command -v sbatch && command -v munged) >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  fi
  mkdir -p "$D"/{state,spool,log,run,munge}; chmod 755 "$D/munge"   # munged: socket dir must be o+x
  [ -s "$D/munge/munge.key" ] || mungekey -c -k "$D/munge/munge.key"
  alive munged || munged --socket="$SOCK" --key-file="$D/munge/munge.key" \
    --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munge/munged.seed"
  if write_conf; then halt slurmd; halt slurmctld; fi   # new config: restart both daemons
  alive slurmctld || slurmctld -f "$SLURM_CONF"         # daemon mode: forks, writes its pid file
  alive slurmd || slurmd -f "$SLURM_CONF" -N "$NODE"
  for _ in $(seq 60); do
    case $(sinfo -h -n "$NODE" -o %T 2>/dev/null) in
      idle|mixed|allocated|completing) echo "slurm up: export SLURM_CONF=$SLURM_CONF"; return 0;;
      down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true;;
    esac; sleep 0.5
  done
  echo "node not ready, see $D/log" >&2; sinfo -R >&2 || true; exit 1
}

stop() {  # cancel every job first: job processes (slurmstepd) outlive slurmd
  if alive slurmctld; then
    squeue -h -o %A | sort -u | xargs -r scancel || true
    for _ in $(seq 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  halt slurmd; halt slurmctld; halt munged
}

status() {
  local d rc=0
  for d in munged slurmctld slurmd; do
    if alive $d; then echo "$d: pid $(pid $d)"; else echo "$d: stopped"; rc=1; fi
  done
  [ $rc = 1 ] || { sinfo; squeue; }; return $rc
}

case ${1:-} in start|stop|status) "$1";; *) echo "usage: $0 start|stop|status" >&2; exit 2;; esac
