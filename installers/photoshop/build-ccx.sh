#!/usr/bin/env bash
# Builds Kiln's Photoshop plugin package: a .ccx (a zip Creative Cloud installs on double-click)
# holding the manifest, index.html, main.js, styles, icons, the compiled panel (dist/) and the
# .uxpaddon files given or built, each in the folder Photoshop loads it from:
#   mac/arm64/, mac/x64/ and win/x64/kiln_bridge.uxpaddon
#
#   build-ccx.sh [--build DIR] [--out DIR] [--addon mac/arm64=FILE]... [--skip-panel-build]
#     --build DIR   the CMake build folder (default build/): the panel is compiled in DIR/photoshop/panel,
#                   and DIR/photoshop/kiln_bridge.uxpaddon, if built there on macOS or Windows, is added
#     --out DIR     where the .ccx goes (default DIR/photoshop)
#     --addon P=F   add F as the addon for platform P (mac/arm64, mac/x64 or win/x64); repeatable, so
#                   one package can hold the addons built on each platform
#
# The UXP addon is built only with Adobe's UXP Hybrid Plugin SDK (-DKILN_UXP_SDK=DIR, on macOS or
# Windows); a package without one installs but its panel says the addon is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
out=""
skip_panel=0
addons=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --addon) addons+=("$2"); shift 2 ;;
    --skip-panel-build) skip_panel=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build-ccx.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
build=$(cd "$build" && pwd)
out=${out:-$build/photoshop}
mkdir -p "$out"
out=$(cd "$out" && pwd)

[ "$skip_panel" = 1 ] || "$root/installers/photoshop/build-panel.sh" "$build"
panel=$build/photoshop/panel
[ -f "$panel/dist/ui/panel.js" ] || { echo "build-ccx.sh: $panel/dist is not built (run build-panel.sh)" >&2; exit 1; }

# An addon built here goes in this platform's folder; a Linux build is only a compile check.
built=$build/photoshop/kiln_bridge.uxpaddon
if [ -f "$built" ]; then
  case "$(uname -s)/$(uname -m)" in
    Darwin/arm64) addons+=("mac/arm64=$built") ;;
    Darwin/x86_64) addons+=("mac/x64=$built") ;;
    MINGW*|MSYS*|CYGWIN*) addons+=("win/x64=$built") ;;
    *) echo "build-ccx.sh: $built is a $(uname -s) compile check, not a Photoshop addon: left out" ;;
  esac
fi

version=$(node -e 'console.log(require(process.argv[1]).version)' "$root/plugins/photoshop/panel/manifest.json")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$panel/manifest.json" "$panel/index.html" "$panel/main.js" "$panel/styles.css" "$panel/icons" "$panel/dist" "$stage/"
for entry in "${addons[@]+"${addons[@]}"}"; do
  platform=${entry%%=*}
  file=${entry#*=}
  case "$platform" in
    mac/arm64|mac/x64|win/x64) ;;
    *) echo "build-ccx.sh: unknown addon platform '$platform' (use mac/arm64, mac/x64 or win/x64)" >&2; exit 2 ;;
  esac
  [ -f "$file" ] || { echo "build-ccx.sh: no addon at $file" >&2; exit 1; }
  mkdir -p "$stage/$platform"
  cp "$file" "$stage/$platform/kiln_bridge.uxpaddon"
  echo "build-ccx.sh: addon for $platform from $file"
done

ccx=$out/kiln-photoshop-$version.ccx
rm -f "$ccx"
# A .ccx is a zip of the plugin folder, manifest.json at its root.
(cd "$stage" && python3 - "$ccx" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for folder, _, files in os.walk("."):
        for f in sorted(files):
            path = os.path.join(folder, f)[2:]
            z.write(path, path)
PY
)
echo "build-ccx.sh: wrote $ccx"
