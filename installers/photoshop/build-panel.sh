#!/usr/bin/env bash
# Builds the Photoshop panel's JavaScript in a build folder: copies plugins/photoshop/panel there,
# installs its npm dev-dependencies with `npm ci` from the committed package-lock.json (again only
# when the lock file changed), type-checks with `tsc --strict --noEmit` against @types/photoshop and
# Adobe's UXP types, then compiles to <build>/photoshop/panel/dist.
#   build-panel.sh [BUILD_DIR]      (default: build/)
# Exits 77 when node is not installed (CTest reports the test as skipped).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
src=$root/plugins/photoshop/panel
out=$build/photoshop/panel

if ! command -v node >/dev/null; then
  echo "build-panel: node is not installed (Debian: apt install nodejs npm); the Photoshop panel is not built" >&2
  exit 77
fi
if ! command -v npm >/dev/null; then
  echo "build-panel: node is installed but npm is not (Debian: apt install npm)" >&2
  exit 1
fi

mkdir -p "$out"
# The sources are copied (not linked) so tsc resolves @types from the build folder's node_modules.
rm -rf "$out/src" "$out/dist"
cp -R "$src/src" "$src/package.json" "$src/package-lock.json" "$src/tsconfig.json" "$src/manifest.json" \
      "$src/index.html" "$src/main.js" "$src/styles.css" "$src/icons" "$out/"

stamp=$out/node_modules/.kiln-lock
if [ ! -f "$stamp" ] || ! cmp -s "$src/package-lock.json" "$stamp"; then
  echo "build-panel: npm ci in $out"
  (cd "$out" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$src/package-lock.json" "$stamp"
fi

tsc="$out/node_modules/typescript/bin/tsc"
(cd "$out" && node "$tsc" -p tsconfig.json --strict --noEmit)
(cd "$out" && node "$tsc" -p tsconfig.json)
echo "build-panel: type-checked and compiled to $out/dist"
