#!/usr/bin/env bash
# Builds the Blender add-on zip: what Blender's Edit > Preferences > Add-ons > Install... (3.4 to
# 4.1) and, through blender_manifest.toml, Get Extensions > Install from Disk... (4.2+) accept.
# The zip holds one folder, kiln_blender/, with the add-on and, inside it, the kiln client package
# with its compiled module for Blender's Python (Debian 12's Blender 3.4 embeds Python 3.11).
#
#   installers/blender/build-zip.sh [BUILD_DIR] [OUT.zip]
#     BUILD_DIR  a build with the Python binding (default: build/; `ninja kiln_py` builds it)
#     OUT.zip    default: BUILD_DIR/blender/kiln-blender-<version>.zip
#
# The zip holds no kilnd: install Kiln (its .deb, or `ninja kilnd` and put build/bin on PATH) or
# choose kilnd in the add-on's preferences.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
pkg="$build/python/kiln"
python=${KILN_PYTHON:-/usr/bin/python3}

so=$(ls "$pkg"/_kiln*.so 2>/dev/null | head -n 1 || true)
if [ -z "$so" ]; then
  echo "build-zip: no compiled kiln module in $pkg; build it first: ninja -C $build kiln_py" >&2
  exit 1
fi
version=$("$python" - "$pkg/.." <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import kiln
print(kiln.VERSION)
PY
) || { echo "build-zip: $so does not load in $python (built for another Python?)" >&2; exit 1; }
for f in frames.py infotext.py restyle.py sizes.py; do
  [ -f "$pkg/$f" ] || { echo "build-zip: $pkg/$f is missing; re-run cmake for $build" >&2; exit 1; }
done
out=${2:-$build/blender/kiln-blender-$version.zip}
mkdir -p "$(dirname "$out")"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/kiln_blender/kiln"
(cd "$root/plugins/blender/kiln_blender" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
  xargs -0 -I{} cp --parents {} "$stage/kiln_blender/")
cp "$pkg"/*.py "$stage/kiln_blender/kiln/"
cp "$so" "$stage/kiln_blender/kiln/"
strip --strip-unneeded "$stage/kiln_blender/kiln/$(basename "$so")" 2>/dev/null || true
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

cat > "$stage/kiln_blender/KILND.txt" <<TXT
Kiln for Blender $version

This add-on is a client of Kiln's daemon, kilnd, which does all the work (models, datasets,
training, generation). kilnd is not in this zip. The add-on starts it when it is not running,
looking, in order, at:
  1. the program chosen in Edit > Preferences > Add-ons > Kiln LoRA Studio,
  2. \$KILN_DAEMON,
  3. a kilnd beside kiln_blender/kiln/ (you may copy or link it there), or ../bin from there,
  4. PATH (the Kiln package installs /usr/bin/kilnd).
A kilnd that is already running (started by Krita, 'kiln daemon start', ...) is used as it is.

The compiled module kiln/$(basename "$so") is for Python $pyver, the Python Debian 12's
Blender 3.4 embeds (and Blender 4.2's own).
TXT

rm -f "$out"
(cd "$stage" && "$python" - "$out" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for dirpath, dirnames, files in os.walk("kiln_blender"):
        dirnames.sort()
        for f in sorted(files):
            z.write(os.path.join(dirpath, f))
PY
)
echo "$out"
