#!/usr/bin/env bash
# Run README sections verbatim (CI does, from .ci/run):
#   scripts/readme-check.sh quick-start   fresh clone: `npm ci && npm start`, then iscsi-ls attaches
#   scripts/readme-check.sh install-npm   fresh clone: npm pack, npm install -g (into a scratch prefix)
#   scripts/readme-check.sh install-deb   this checkout: build the .deb and install it (root)
#   scripts/readme-check.sh systemd       the installed service (systemd, else scripts/standin/)
# Servers started here listen only inside a network namespace of their own (quick start), or
# are the installed service (run by the systemctl stand-in in its own namespace too).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(node -p "require('$ROOT/package.json').version")
block() { node "$ROOT/scripts/readme-blocks.cjs" "$1"; }
work=$(mktemp -d /tmp/readme-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

fresh_clone() {
  git clone -q "$ROOT" "$work/repo"
  # What is committed, nothing built: dist/ and node_modules/ are not in git.
  test ! -e "$work/repo/dist" && test ! -e "$work/repo/node_modules"
}

case "${1:?which section}" in
quick-start)
  fresh_clone
  cd "$work/repo"
  block quick-start > "$work/block.sh"
  # No network in the namespace: npm ci installs from the npm cache (CI's own npm ci filled it).
  cat > "$work/inner.sh" <<INNER
set -euo pipefail
ip link set lo up
setsid bash -e "$work/block.sh" > "$work/start.log" 2>&1 &
pid=\$!
for _ in \$(seq 600); do
  grep -q '"msg":"serving"' "$work/start.log" && break
  kill -0 \$pid 2>/dev/null || { cat "$work/start.log"; echo "quick start exited before serving" >&2; exit 1; }
  sleep 0.5
done
grep -q '"msg":"serving"' "$work/start.log" || { cat "$work/start.log"; echo "quick start did not serve in 300 s" >&2; exit 1; }
iscsi-ls -s iscsi://127.0.0.1:3260 | tee "$work/ls.out"
grep -q 'iqn.2026-11.io.iscsi-target:default' "$work/ls.out"
kill -TERM -- -\$pid
wait \$pid || true
INNER
  npm_config_offline=true unshare --net --fork bash "$work/inner.sh"
  grep -q 'building (not built yet)' "$work/start.log"
  echo "readme-check: quick start served the default volume and iscsi-ls saw it"
  ;;
install-npm)
  fresh_clone
  cd "$work/repo"
  export npm_config_prefix="$work/prefix" PATH="$work/prefix/bin:$PATH"
  out=$(bash -euo pipefail -c "$(block install-npm)")
  echo "$out"
  test "$(echo "$out" | tail -n 1)" = "$VERSION"
  test "$(command -v iscsi-target)" = "$work/prefix/bin/iscsi-target"
  test ! -e "$work/prefix/lib/node_modules/iscsi-target/node_modules/typescript"
  test ! -e "$work/prefix/lib/node_modules/iscsi-target/src"
  test -e "$work/prefix/share/man/man1/iscsi-target.1"
  echo "readme-check: npm pack + npm install -g gave iscsi-target $VERSION on the PATH, no dev dependencies"
  ;;
install-deb)
  cd "$ROOT"
  out=$(bash -euo pipefail -c "$(block install-deb)")
  echo "$out"
  echo "$out" | grep -qx "$VERSION"
  echo "$out" | grep -q '^OK: 0 volumes, 0 targets (/etc/iscsi-target/iscsi-target.yaml)$'
  test "$(readlink -f "$(command -v iscsi-target)")" = /usr/lib/iscsi-target/bin/iscsi-target
  getent passwd iscsi-target >/dev/null
  test "$(stat -c %U:%a /etc/iscsi-target)" = iscsi-target:700
  test "$(stat -c %U:%a /var/lib/iscsi-target)" = iscsi-target:700
  test -f /lib/systemd/system/iscsi-target.service
  grep -q '^ExecStart=/usr/bin/iscsi-target serve' /lib/systemd/system/iscsi-target.service
  man -w iscsi-target >/dev/null
  echo "readme-check: the .deb installed the program, the unit, the user and /etc/iscsi-target"
  ;;
systemd)
  if [ ! -d /run/systemd/system ]; then
    echo "readme-check: systemd does not run here: scripts/standin/systemctl and journalctl stand in"
    export PATH="$ROOT/scripts/standin:$PATH"
  fi
  cd "$work"
  out=$(bash -euo pipefail -c "$(block systemd)" 2>&1) || { echo "$out"; systemctl stop iscsi-target || true; exit 1; }
  echo "$out"
  echo "$out" | grep -q '^daemon pid [0-9]*, up .*, config /etc/iscsi-target/iscsi-target.yaml$'
  test "$(echo "$out" | grep -c '^daemon pid ')" = 2
  echo "$out" | grep -q 'log level info -> debug'
  echo "$out" | grep -q 'no targets are defined'
  systemctl stop iscsi-target
  echo "readme-check: the systemd section ran verbatim against the installed service"
  ;;
*) echo "unknown section $1" >&2; exit 2 ;;
esac
