// The shell the e2e guest runs (busybox ash, as root). Every check is a named step: the
// guest prints `E2E-STEP-OK name` or `E2E-STEP-FAIL name (exit N)` and stops at the first
// failure, so a failed run names what failed. Step bodies are functions whose every command
// ends in `|| return N` (ash ignores `set -e` inside conditions, so it is not relied on).

import { GUEST_PORTAL } from './vm';

const PRELUDE = String.raw`
P=${GUEST_PORTAL}
say() { echo "E2E: $*"; }
step() {
  _name=$1; shift
  echo "E2E-STEP-BEGIN $_name"
  "$@"; _rc=$?
  if [ $_rc -eq 0 ]; then echo "E2E-STEP-OK $_name"; else echo "E2E-STEP-FAIL $_name (exit $_rc)"; dmesg | tail -n 30; exit 1; fi
}

# iscsid with this initiator name; replacement_timeout leaves room for a target restart.
start_iscsid() {
  echo "InitiatorName=$1" > /etc/iscsi/initiatorname.iscsi
  cat > /etc/iscsi/iscsid.conf <<'EOF'
node.startup = manual
node.session.timeo.replacement_timeout = 90
node.conn[0].timeo.login_timeout = 15
node.conn[0].timeo.logout_timeout = 15
node.conn[0].timeo.noop_out_interval = 10
node.conn[0].timeo.noop_out_timeout = 30
node.session.initial_login_retry_max = 2
node.session.scan = auto
EOF
  iscsid || return 1
  _i=0
  while ! pidof iscsid >/dev/null; do _i=$((_i + 1)); [ $_i -lt 50 ] || return 2; sleep 0.2; done
  say "iscsid running as $1"
}

stop_iscsid() {
  rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets /var/lib/iscsi/nodes /var/lib/iscsi/send_targets
  killall iscsid 2>/dev/null
  _i=0
  while pidof iscsid >/dev/null; do _i=$((_i + 1)); [ $_i -lt 50 ] || return 1; sleep 0.2; done
}

# discover "IQNs that must be listed" "IQNs that must not be"
discover() {
  _out=$(iscsiadm -m discovery -t sendtargets -p $P 2>&1); _rc=$?
  echo "$_out"
  # 21: no records found, the right answer when nothing may be seen.
  [ $_rc -eq 0 ] || { [ $_rc -eq 21 ] && [ -z "$1" ]; } || { say "discovery exit $_rc"; return 1; }
  for _t in $1; do echo "$_out" | grep -q " $_t\$" || { say "discovery does not list $_t"; return 2; }; done
  for _t in $2; do echo "$_out" | grep -q " $_t\$" && { say "discovery lists $_t, which this initiator must not see"; return 3; }; done
  # SendTargets answers with the target's own (host loopback) address, which the guest cannot
  # reach: drop those records; node_new records the guest-visible portal.
  iscsiadm -m node 2>/dev/null | while read -r _portal _iqn; do
    case "$_portal" in "$P",*) ;; *) iscsiadm -m node -o delete -T "$_iqn" -p "${'$'}{_portal%,*}" >/dev/null ;; esac
  done
  return 0
}

node_new() { iscsiadm -m node -o new -T "$1" -p $P >/dev/null || return 1; }

# auth IQN key value: node.session.auth.<key>
auth() { iscsiadm -m node -T "$1" -p $P -o update -n "node.session.auth.$2" -v "$3" || return 1; }

login() { iscsiadm -m node -T "$1" -p $P --login || return 1; }

# login_refused IQN EXPECTED_EXIT ("" for any non-zero)
login_refused() {
  iscsiadm -m node -T "$1" -p $P --login; _rc=$?
  [ $_rc -ne 0 ] || { say "login to $1 succeeded but must be refused"; iscsiadm -m node -T "$1" -p $P --logout; return 1; }
  [ -z "$2" ] || [ $_rc -eq "$2" ] || { say "login to $1 refused with exit $_rc, expected $2"; return 2; }
  iscsiadm -m session 2>/dev/null | grep -q " $1 " && { say "a session to $1 exists after the refused login"; return 3; }
  say "login to $1 refused (iscsiadm exit $_rc)"
}

# The sdX disks of the session to IQN.
disks_of() {
  iscsiadm -m session -P 3 2>/dev/null | awk -v t="$1" '/^Target: /{cur=$2} /Attached scsi disk/ && cur==t {print $4}'
}

# wait_disk IQN BYTES: the LUN appears as /dev/sdX of that size; sets DISK.
wait_disk() {
  _i=0
  while [ -z "$(disks_of "$1")" ]; do _i=$((_i + 1)); [ $_i -lt 120 ] || { say "no disk for $1"; return 1; }; sleep 0.5; done
  _d=$(disks_of "$1")
  [ "$(echo "$_d" | wc -l)" -eq 1 ] || { say "more than one disk for $1: $_d"; return 2; }
  DISK=/dev/$_d
  _i=0
  while [ ! -b $DISK ]; do _i=$((_i + 1)); [ $_i -lt 40 ] || { say "$DISK: no device node"; return 3; }; sleep 0.5; done
  _bytes=$(( $(cat /sys/block/$_d/size) * 512 ))
  say "$1 is $DISK, $_bytes bytes, model $(cat /sys/block/$_d/device/vendor) $(cat /sys/block/$_d/device/model)"
  [ "$_bytes" -eq "$2" ] || { say "$DISK has $_bytes bytes, expected $2"; return 4; }
}

# logout IQN: the session and its disk go away.
logout() {
  _d=$(disks_of "$1")
  iscsiadm -m node -T "$1" -p $P --logout || return 1
  iscsiadm -m session 2>/dev/null | grep -q " $1 " && { say "session to $1 still there"; return 2; }
  for _x in $_d; do [ ! -e /sys/block/$_x ] || { say "/dev/$_x still there after logout"; return 3; }; done
  return 0
}

# The first bytes of the disk carry the signature the host wrote into the volume file.
has_signature() {
  _sig=$(dd if=$DISK bs=512 count=1 2>/dev/null | head -c ${'$'}{#1})
  [ "$_sig" = "$1" ] || { say "$DISK starts with '$_sig', expected '$1'"; return 1; }
}

make_fs() { mkfs.ext4 -q -F -L e2e $DISK || return 1; }
mount_fs() { mount -t ext4 $DISK /mnt || return 1; }

# write_random FILE MiB: random data and its checksum (kept in /tmp, outside the disk).
write_random() {
  dd if=/dev/urandom of=/mnt/$1 bs=1M count=$2 2>/dev/null || return 1
  sha256sum /mnt/$1 > /tmp/$1.sha256 || return 2
  sync || return 3
  cat /tmp/$1.sha256
}

# Unmount, drop every cache, mount again and check what was written.
remount_verify() {
  umount /mnt || return 1
  sync; echo 3 > /proc/sys/vm/drop_caches
  mount -t ext4 $DISK /mnt || return 2
  for _f in /tmp/*.sha256; do sha256sum -c "$_f" || return 3; done
}

# fio_verify NAME MiB: random 4 KiB writes, queue depth 16, then every block read back and
# checked against its crc32c (fio exits non-zero on the first mismatch).
fio_verify() {
  fio --name="$1" --filename=/mnt/$1.fio --size=$2M --rw=randwrite --bs=4k --iodepth=16 \
    --ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --randrepeat=0 --group_reporting --eta=never || return 1
}

fsck_clean() { umount /mnt || return 1; e2fsck -fn $DISK || return 2; }

# After a fresh login: what was written before is still there.
verify_mounted() {
  mount_fs || return 1
  for _f in /tmp/*.sha256; do sha256sum -c "$_f" || return 2; done
  umount /mnt || return 3
}

# The guest reaches nothing but the guestfwd portal: not even the target's own port
# through the user-mode gateway (which restrict=off would allow).
isolated() {
  timeout 10 nc -w 3 "$1" "$2" </dev/null && { say "$1:$2 is reachable: the guest network is not restricted"; return 1; }
  say "$1:$2 unreachable, as it must be"
}

restart_iscsid() { stop_iscsid || return 1; start_iscsid "$1" || return 2; }

# chap_settings IQN USER SECRET
chap_settings() {
  auth "$1" authmethod CHAP || return 1
  auth "$1" username "$2" || return 2
  auth "$1" password "$3" || return 3
}

# mutual_settings IQN USER SECRET TARGET_USER TARGET_SECRET: the initiator checks the target too.
mutual_settings() {
  chap_settings "$1" "$2" "$3" || return 1
  auth "$1" username_in "$4" || return 2
  auth "$1" password_in "$5" || return 3
}

# raw_roundtrip OFFSET_MiB MiB: random data straight to the disk, read back past every cache.
raw_roundtrip() {
  dd if=/dev/urandom of=/tmp/raw.out bs=1M count=$2 2>/dev/null || return 1
  dd if=/tmp/raw.out of=$DISK bs=1M seek=$1 conv=fsync 2>/dev/null || return 2
  sync; echo 3 > /proc/sys/vm/drop_caches
  dd if=$DISK of=/tmp/raw.in bs=1M skip=$1 count=$2 2>/dev/null || return 3
  cmp /tmp/raw.out /tmp/raw.in || return 4
  say "$2 MiB at $1 MiB written and read back"
}

# lsblk_disk IQN BYTES: the README's lsblk step: the LUN (as wait_disk) listed by lsblk
# with its size, our INQUIRY vendor and product, and transport iscsi.
lsblk_disk() {
  _want=$2
  wait_disk "$1" "$2" || return 1
  lsblk -o NAME,SIZE,VENDOR,MODEL,TRAN || return 2
  _l=$(lsblk -bdn -o SIZE,TRAN,VENDOR,MODEL $DISK) || return 3
  set -- $_l
  [ "$1" = "$_want" ] && [ "$2" = iscsi ] && [ "$3" = ISCSI-TS ] && [ "$4" = VIRTUAL-DISK ] ||
    { say "lsblk $DISK says '$_l', expected '$_want iscsi ISCSI-TS VIRTUAL-DISK'"; return 4; }
}

# digests IQN VALUE: node.conn[0].iscsi.HeaderDigest and DataDigest on the node record.
digests() {
  for _k in HeaderDigest DataDigest; do
    iscsiadm -m node -T "$1" -p $P -o update -n "node.conn[0].iscsi.$_k" -v "$2" || return 1
  done
  iscsiadm -m node -T "$1" -p $P | grep -E 'Digest' || return 2
}

# What the kernel negotiated, as iscsiadm shows it for the live session.
session_digests() {
  _s=$(iscsiadm -m session -P 2 2>/dev/null) || return 1
  echo "$_s" | grep -E 'Target:|Digest'
  echo "$_s" | grep -q "HeaderDigest: $1" || { say "session HeaderDigest is not $1"; return 2; }
  echo "$_s" | grep -q "DataDigest: $1" || { say "session DataDigest is not $1"; return 3; }
}

# host_check NAME: ask the host to check something (E2E-MARK NAME) and wait for its answer
# on the console: E2E-HOST-OK NAME, or E2E-HOST-FAIL NAME (the host log says why).
host_check() {
  echo "E2E-MARK $1"
  read -t 120 -r _reply || { say "no answer from the host within 120 s"; return 1; }
  [ "$_reply" = "E2E-HOST-OK $1" ] || { say "host answered '$_reply'"; return 2; }
}

# start_background_io NAME MiB: fio (as fio_verify) in the background, then ask the host
# (E2E-MARK) to kill and restart the target while it runs.
start_background_io() {
  fio --name="$1" --filename=/mnt/$1.fio --size=$2M --rw=randwrite --bs=4k --iodepth=16 \
    --ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --randrepeat=0 --group_reporting --eta=never > /tmp/fio-bg.log 2>&1 &
  FIO_PID=$!
  sleep 3
  kill -0 $FIO_PID 2>/dev/null || { cat /tmp/fio-bg.log; say "fio ended before the restart"; return 1; }
  CONN_ERRORS_BEFORE=$(dmesg | grep -c 'detected conn error')
  echo "E2E-MARK restart-target"
}

# The kernel saw the connection drop while fio was still writing.
wait_conn_error() {
  _i=0
  while [ "$(dmesg | grep -c 'detected conn error')" -le "$CONN_ERRORS_BEFORE" ]; do
    _i=$((_i + 1)); [ $_i -lt 120 ] || { say "no connection error within 60 s"; return 1; }; sleep 0.5
  done
  dmesg | grep 'detected conn error' | tail -n 1
  kill -0 $FIO_PID 2>/dev/null || { say "fio had already finished when the connection dropped"; return 2; }
}

# open-iscsi logs in again by itself (session recovery, within replacement_timeout).
wait_recovered() {
  _i=0
  while :; do
    _s=$(iscsiadm -m session -P 1 2>/dev/null)
    echo "$_s" | grep -q 'iSCSI Session State: LOGGED_IN' && echo "$_s" | grep -q 'iSCSI Connection State: LOGGED IN' && break
    _i=$((_i + 1)); [ $_i -lt 180 ] || { echo "$_s"; say "session not recovered within 90 s"; return 1; }; sleep 0.5
  done
  echo "$_s" | grep -E 'Target:|State:'
  dmesg | grep -iE 'session recovery|conn error|iscsi' | tail -n 5
}

wait_background_io() {
  wait $FIO_PID; _rc=$?
  cat /tmp/fio-bg.log
  [ $_rc -eq 0 ] || { say "fio exit $_rc"; return 1; }
  grep -q 'err= 0' /tmp/fio-bg.log || return 2
}
`;

export function guestScript(body: string): string {
  return `#!/bin/sh\n# Generated by e2e/guest-script.ts\n${PRELUDE}\n${body.trim()}\nsay "all steps passed"\nexit 0\n`;
}
