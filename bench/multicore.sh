#!/bin/bash
# One daemon serving two volumes against two daemons serving one each (docs/performance.md,
# "Using more than one core"). Four iscsi-perf clients, two per volume, 4 KiB random reads
# at QD32 for SECONDS; prints total IOPS, the daemons' CPU time and CPU µs per I/O.
# usage: bash bench/multicore.sh [ROUNDS=3] [SECONDS=6]      (needs libiscsi-bin; run from the repo)
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-6}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin/iscsi-target
command -v iscsi-perf >/dev/null || { echo "multicore: iscsi-perf not found (apt-get install libiscsi-bin)" >&2; exit 1; }
[ -f "$ROOT/dist/src/cli/index.js" ] || { echo "multicore: build first (npm run build)" >&2; exit 1; }
WORK=$(mktemp -d /dev/shm/iscsi-multicore-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
for v in a b; do dd if=/dev/urandom of="$WORK/$v.img" bs=1M count=256 status=none; done
IQN=iqn.2026-12.io.example

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# start_daemon NAME PORT VOLUME... : prints the pid (the daemon is not our child: wait_gone)
start_daemon() {
  local d=$WORK/$1 port=$2
  shift 2
  mkdir -m 700 "$d"
  {
    echo "portals: [\"127.0.0.1:$port\"]"
    echo "volumes:"
    for v in "$@"; do echo "  $v: { path: $WORK/$v.img, size: 256MiB }"; done
    echo "targets:"
    for v in "$@"; do printf '  - iqn: %s:%s\n    luns: { 0: %s }\n' "$IQN" "$v" "$v"; done
  } >"$d/config.yaml"
  ISCSI_TARGET_RUN_DIR=$d LOG_LEVEL=warn node "$BIN" serve --config "$d/config.yaml" >"$d/log" 2>&1 &
  echo $!
}

wait_gone() { local p; for p in "$@"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done; }
wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "multicore: port $1 never opened" >&2; exit 1; }
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }

# clients PORT_A PORT_B : total IOPS of the four clients
clients() {
  local i
  for i in 1 2; do
    iscsi-perf -t "$SECS" -r -m 32 -b 8 -i "$IQN:client$i-a" "iscsi://127.0.0.1:$1/$IQN:a/0" >"$WORK/a$i.log" 2>&1 &
    iscsi-perf -t "$SECS" -r -m 32 -b 8 -i "$IQN:client$i-b" "iscsi://127.0.0.1:$2/$IQN:b/0" >"$WORK/b$i.log" 2>&1 &
  done
  wait # (runs in a command substitution: its only children are the four clients)
  local total=0 f n
  for f in "$WORK"/[ab][12].log; do
    n=$(grep -o 'iops average [0-9]*' "$f" | tail -1 | grep -o '[0-9]*$' || true)
    [ -n "$n" ] || { echo "multicore: a client failed: $(tail -3 "$f")" >&2; exit 1; }
    total=$((total + n))
  done
  echo $total
}

# measure LABEL PORT_A PORT_B PID...
measure() {
  local label=$1 pa=$2 pb=$3
  shift 3
  local hz c0 c1 iops
  hz=$(getconf CLK_TCK)
  c0=$(cpu_ticks "$@")
  iops=$(clients "$pa" "$pb")
  c1=$(cpu_ticks "$@")
  awk -v l="$label" -v i="$iops" -v c=$((c1 - c0)) -v hz="$hz" -v s="$SECS" \
    'BEGIN { printf "%-12s %7.1fK IOPS  daemon CPU %5.2f s in %d s  %5.1f µs/IO\n", l, i/1000, c/hz, s, c/hz*1e6/(i*s) }'
}

for r in $(seq "$ROUNDS"); do
  p=$(free_port)
  one=$(start_daemon "one-$r" "$p" a b); PIDS+=("$one"); wait_port "$p"
  measure "one daemon" "$p" "$p" "$one"
  kill "$one"; wait_gone "$one"
  pa=$(free_port); pb=$(free_port)
  while [ "$pb" = "$pa" ]; do pb=$(free_port); done
  da=$(start_daemon "two-a-$r" "$pa" a); db=$(start_daemon "two-b-$r" "$pb" b); PIDS+=("$da" "$db")
  wait_port "$pa"; wait_port "$pb"
  measure "two daemons" "$pa" "$pb" "$da" "$db"
  kill "$da" "$db"; wait_gone "$da" "$db"
done
