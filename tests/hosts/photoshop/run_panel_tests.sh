#!/usr/bin/env bash
# The Photoshop panel's Node-side tests, in three steps CTest runs as three tests:
#   run_panel_tests.sh build BUILD_DIR   npm ci, tsc --strict --noEmit, compile; stand-in and manifest checks
#   run_panel_tests.sh test BUILD_DIR    node --test against a real kilnd (environment from CTest)
#   run_panel_tests.sh ccx BUILD_DIR     build the .ccx, unpack it, read its manifest as Photoshop would
# Exit code 77 (skipped) only when node itself is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
step=$1
build=$(cd "$2" && pwd)
panel=$build/photoshop/panel

if ! command -v node >/dev/null; then
  echo "photoshop tests: node is not installed (installers/linux/install-deps.sh --with-hosts installs it); skipped"
  exit 77
fi

case "$step" in
  build)
    "$root/installers/photoshop/build-panel.sh" "$build"
    # The stand-in's getPixels, putPixels, executeAsModal... checked against @types/photoshop too.
    rm -rf "$panel/standin-check" && mkdir -p "$panel/standin-check"
    cp "$here"/standin/*.js "$here/standin/tsconfig.json" "$panel/standin-check/"
    (cd "$panel/standin-check" && node ../node_modules/typescript/bin/tsc -p tsconfig.json)
    echo "photoshop tests: the stand-in type-checks against @types/photoshop"
    node "$here/check_manifest.js" "$root/plugins/photoshop/panel"
    ;;
  test)
    if [ -z "${KILN_PS_ADDON:-}" ] || [ ! -f "$KILN_PS_ADDON" ]; then
      echo "photoshop tests: the Node-API bridge (kiln_bridge.node) was not built: CMake did not find Node's" \
           "node_api.h (Debian: apt install libnode-dev, then configure again)" >&2
      exit 1
    fi
    cd "$here"
    # One file at a time where Node can say so (20+): each starts its own kilnd, and CI has two cores.
    flags=()
    if node --help | grep -q -- --test-concurrency; then flags=(--test-concurrency=1); fi
    node --test "${flags[@]}" core.test.js bridge.test.js flows.test.js
    ;;
  ccx)
    out=$build/photoshop/ccx
    rm -rf "$out" && mkdir -p "$out"
    "$root/installers/photoshop/build-ccx.sh" --build "$build" --out "$out" --skip-panel-build
    ccx=$(ls "$out"/*.ccx)
    mkdir -p "$out/unpacked" && (cd "$out/unpacked" && python3 -m zipfile -e "$ccx" .)
    node "$here/check_manifest.js" "$out/unpacked" --packaged
    ;;
  *) echo "usage: run_panel_tests.sh build|test|ccx BUILD_DIR" >&2; exit 2 ;;
esac
