#!/usr/bin/env bash
# A throw-away single-node Ceph (Pacific 16.2, Debian's packages) for the RBD tests:
# one mon, one mgr, one BlueStore OSD on a sparse file, cephx on, 127.0.0.1 only,
# pool "rbd" of size 1. Daemons run directly as root with our own ceph.conf (no systemd).
#
#   scripts/ceph-cluster.sh start    install what is missing, start, wait for HEALTH_OK
#   scripts/ceph-cluster.sh stop     kill the daemons and remove all state
#   scripts/ceph-cluster.sh status   `ceph -s`
#   scripts/ceph-cluster.sh env      print `export CEPH_CONF=...` for eval
#
# State lives under CEPH_DIR (default /var/tmp/iscsi-target-ceph). Ports: mon 3300/6789
# (override with CEPH_MON_PORT / CEPH_MON_V1_PORT), OSD and mgr pick free ones.
set -euo pipefail

DIR=${CEPH_DIR:-/var/tmp/iscsi-target-ceph}
MON_PORT=${CEPH_MON_PORT:-3300}
MON_V1_PORT=${CEPH_MON_V1_PORT:-6789}
CONF=$DIR/ceph.conf
OSD_SIZE=${CEPH_OSD_SIZE:-20G}
PACKAGES=(ceph-mon ceph-mgr ceph-osd ceph-common librbd-dev)

log() { echo "ceph-cluster: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

ceph_() { timeout 30 ceph --conf "$CONF" "$@"; }
# Quiet unless it fails (ceph prints "pool 'rbd' created" and the like on stderr).
ceph_q() {
  local out
  out=$(ceph_ "$@" 2>&1) || {
    echo "$out" >&2
    return 1
  }
}

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}, and not root to install them"
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

running() {
  pid_alive "$DIR/run/mon.a.pid" && pid_alive "$DIR/run/mgr.x.pid" && pid_alive "$DIR/run/osd.0.pid"
}

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
# Written by scripts/ceph-cluster.sh: a single-node test cluster, loopback only.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]
mon initial members = a
public network = 127.0.0.0/8
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $DIR/keyring
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
# One OSD and no replicas is the point of this cluster, not a problem to warn about.
mon warn on pool no redundancy = false
# This disk is often more than 70 % full; the 30 % free warning would keep HEALTH_WARN.
mon data avail warn = 1
mon data avail crit = 0
osd pool default pg autoscale mode = off
# Small: the whole cluster should fit in well under a GiB of RAM.
osd memory target = 536870912
bluestore cache autotune = false
bluestore cache size = 67108864
[mon]
admin socket = $DIR/run/\$name.asok
mon data = $DIR/mon/\$cluster-\$id
[mgr]
admin socket = $DIR/run/\$name.asok
mgr data = $DIR/mgr/\$cluster-\$id
keyring = $DIR/mgr/\$cluster-\$id/keyring
[osd]
admin socket = $DIR/run/\$name.asok
osd data = $DIR/osd/\$cluster-\$id
keyring = $DIR/osd/\$cluster-\$id/keyring
osd objectstore = bluestore
# Beside the data folder, not inside it (inside, BlueStore fails with ELOOP).
bluestore block path = $DIR/osd/block.\$id
bluestore block create = true
bluestore block size = $(numfmt --from=iec "$OSD_SIZE")
# A killed gateway's exclusive lock is broken once the OSD drops its watch: 30 s by default,
# 5 s here so the takeover tests stay short (see rbd-lock.ts for production).
osd client watch timeout = 5
osd max object name len = 256
osd max object namespace len = 64
EOF
}

start() {
  install_missing
  if running; then
    log "already running (state in $DIR)"
    return 0
  fi
  if [ -e "$DIR" ]; then
    # A half-started or crashed cluster: start over rather than guess.
    log "removing stale state in $DIR"
    stop_daemons
    rm -rf "$DIR"
  fi
  local t0=$SECONDS
  mkdir -p "$DIR"/{run,log,crash,mon/ceph-a,mgr/ceph-x,osd/ceph-0}
  chmod 0700 "$DIR"
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"

  # Keys: mon., client.admin (the admin keyring is also what clients of the tests use).
  ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/keyring" >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]" --fsid "$fsid" "$DIR/monmap" >/dev/null

  ceph-mon --conf "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" 2>>"$DIR/log/mon-mkfs.log" ||
    die "ceph-mon --mkfs failed (see $DIR/log/mon.a.log)"
  ceph-mon --conf "$CONF" -i a || die "ceph-mon did not start (see $DIR/log/mon.a.log; ports $MON_PORT/$MON_V1_PORT free?)"
  ceph_ -s >/dev/null || die "monitor at 127.0.0.1:$MON_PORT does not answer (see $DIR/log/mon.a.log)"

  ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    -o "$DIR/mgr/ceph-x/keyring" >/dev/null
  ceph-mgr --conf "$CONF" -i x || die "ceph-mgr did not start (see $DIR/log/mgr.x.log)"

  local uuid secret
  uuid=$(cat /proc/sys/kernel/random/uuid)
  secret=$(ceph-authtool --gen-print-key)
  local id
  id=$(echo "{\"cephx_secret\": \"$secret\"}" | ceph_ osd new "$uuid" -i -)
  [ "$id" = 0 ] || die "expected osd id 0, got '$id'"
  ceph-authtool --create-keyring "$DIR/osd/ceph-0/keyring" --name osd.0 --add-key "$secret" >/dev/null
  ceph-osd --conf "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >"$DIR/log/osd-mkfs.log" 2>&1 ||
    die "ceph-osd --mkfs failed (see $DIR/log/osd-mkfs.log)"
  ceph-osd --conf "$CONF" -i 0 2>>"$DIR/log/osd-start.log" || die "ceph-osd did not start (see $DIR/log/osd.0.log)"

  ceph_q osd pool create rbd 8 8
  ceph_q osd pool set rbd size 1 --yes-i-really-mean-it
  ceph_q osd pool set rbd min_size 1
  ceph_q osd pool application enable rbd rbd
  wait_healthy 90
  log "HEALTH_OK after $((SECONDS - t0)) s (state in $DIR; eval \"\$($0 env)\")"
}

wait_healthy() {
  local deadline=$((SECONDS + $1)) h=''
  while [ $SECONDS -lt $deadline ]; do
    h=$(ceph_ health 2>/dev/null || true)
    if [ "$h" = HEALTH_OK ]; then
      # Healthy is not enough: every PG (the rbd pool's and the mgr's) must be active for I/O.
      if ceph_ pg stat 2>/dev/null | grep -Eq '^([0-9]+) pgs: \1 active\+clean;'; then return 0; fi
    fi
    sleep 1
  done
  ceph_ health detail >&2 || true
  die "cluster not HEALTH_OK with active PGs after $1 s (last: ${h:-no answer}; logs in $DIR/log)"
}

stop_daemons() {
  local f pids=()
  for f in "$DIR"/run/*.pid; do
    [ -f "$f" ] || continue
    local p
    p=$(cat "$f")
    if kill -0 "$p" 2>/dev/null; then
      kill "$p" 2>/dev/null || true
      pids+=("$p")
    fi
  done
  local i
  for i in $(seq 50); do
    local left=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.2
  done
  for p in "${left[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

stop() {
  [ -e "$DIR" ] || return 0
  [ -f "$CONF" ] || [ -d "$DIR/run" ] || die "$DIR does not look like a cluster of this script; not removing it"
  stop_daemons
  rm -rf "$DIR"
  log "stopped, removed $DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    running || die "not running (state dir $DIR)"
    ceph_ -s
    ;;
  env)
    running || die "not running (state dir $DIR); start it with $0 start"
    echo "export CEPH_CONF=$CONF"
    ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
