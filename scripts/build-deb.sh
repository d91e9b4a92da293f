#!/usr/bin/env bash
# Build the Debian package with dpkg-deb:  npm run deb  ->  build/iscsi-target_VERSION_ARCH.deb
#
# It holds the packed program (npm pack: the built code, no sources) with its production
# dependencies in /usr/lib/iscsi-target, /usr/bin/iscsi-target, the systemd unit from
# deploy/ (its ExecStart pointed at /usr/bin/iscsi-target), the man page, shell completions,
# and maintainer scripts that create the system user iscsi-target, /etc/iscsi-target/ (with
# a first config) and /var/lib/iscsi-target/. The architecture is the build machine's:
# two dependencies ship native code (@node-rs/crc32, koffi) for it.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(node -p "require('./package.json').version")
ARCH=$(dpkg --print-architecture)
OUT=build/deb
STAGE=$OUT/root
DEB=build/iscsi-target_${VERSION}_${ARCH}.deb
rm -rf "$OUT" "$DEB"
mkdir -p "$STAGE"

# The program as npm packs it (prepack builds when stale and writes the man page).
npm pack --silent --pack-destination "$OUT" >/dev/null
LIB=$STAGE/usr/lib/iscsi-target
mkdir -p "$LIB"
tar -xzf "$OUT/iscsi-target-$VERSION.tgz" -C "$LIB" --strip-components=1
cp package-lock.json "$LIB/"
# Production dependencies at the locked versions; no install scripts (none is needed: the
# native parts come as prebuilt per-platform packages).
(cd "$LIB" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)
rm "$LIB/package-lock.json"
if [ -e "$LIB/node_modules/typescript" ]; then echo "build-deb: dev dependencies got in" >&2; exit 1; fi

mkdir -p "$STAGE/usr/bin"
ln -s ../lib/iscsi-target/bin/iscsi-target "$STAGE/usr/bin/iscsi-target"

# The unit from deploy/, whatever it holds, run from where this package installs the program.
UNIT=$STAGE/lib/systemd/system/iscsi-target.service
mkdir -p "$(dirname "$UNIT")"
sed -E \
  -e 's#^ExecStart=.*iscsi-target(\.js)? serve#ExecStart=/usr/bin/iscsi-target serve#' \
  -e 's#file:///opt/iscsi-target/README.md#file:///usr/share/doc/iscsi-target/README.md#' \
  deploy/iscsi-target.service > "$UNIT"
if ! grep -q '^ExecStart=/usr/bin/iscsi-target serve' "$UNIT"; then
  echo "build-deb: deploy/iscsi-target.service has no ExecStart=... iscsi-target serve line to point at /usr/bin/iscsi-target" >&2
  exit 1
fi

IT="$LIB/bin/iscsi-target"
mkdir -p "$STAGE/usr/share/man/man1" "$STAGE/usr/share/doc/iscsi-target" "$STAGE/usr/share/iscsi-target" \
  "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/zsh/vendor-completions" "$STAGE/usr/share/fish/vendor_completions.d"
gzip -9n < "$LIB/man/iscsi-target.1" > "$STAGE/usr/share/man/man1/iscsi-target.1.gz"
node "$IT" completion bash > "$STAGE/usr/share/bash-completion/completions/iscsi-target"
node "$IT" completion zsh > "$STAGE/usr/share/zsh/vendor-completions/_iscsi-target"
node "$IT" completion fish > "$STAGE/usr/share/fish/vendor_completions.d/iscsi-target.fish"
cp README.md iscsi-target.example.yaml "$STAGE/usr/share/doc/iscsi-target/"
cp packaging/deb/copyright "$STAGE/usr/share/doc/iscsi-target/copyright"
cp packaging/deb/iscsi-target.yaml "$STAGE/usr/share/iscsi-target/iscsi-target.yaml"

mkdir -p "$STAGE/DEBIAN"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" packaging/deb/control.in > "$STAGE/DEBIAN/control"
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$STAGE/DEBIAN/$s"; done

# Plain modes whatever the umask was: directories 0755, files 0644, programs 0755.
find "$STAGE" -path "$STAGE/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
find "$STAGE" -path "$STAGE/DEBIAN" -prune -o -type f -exec chmod go-w,a+r {} +
chmod 0755 "$LIB/bin/iscsi-target"

dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
rm -rf "$OUT"
echo "$DEB"
