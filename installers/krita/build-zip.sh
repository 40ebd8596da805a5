#!/usr/bin/env bash
# Builds the Krita plugin zip: what Krita's Tools > Scripts > Import Python Plugin from File...
# accepts. Krita's importer takes the .desktop file and the package folder it names from the
# zip's root, so everything the plugin needs — the compiled kiln client module included — lives
# inside kiln_krita/.
#
#   installers/krita/build-zip.sh [BUILD_DIR] [OUT.zip]
#     BUILD_DIR  a build with the Python binding (default: build/; `ninja kiln_py` builds it)
#     OUT.zip    default: BUILD_DIR/krita/kiln-krita-<version>.zip
#
# The zip holds no kilnd: install Kiln (its .deb, or `ninja kilnd` and put build/bin on PATH)
# or point the docker's "Daemon..." button at kilnd.
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
version=$("$python" - "$pkg/.." <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import kiln
print(kiln.VERSION)
EOF
) || { echo "build-zip: $so does not load in $python (built for another Python?)" >&2; exit 1; }
out=${2:-$build/krita/kiln-krita-$version.zip}
mkdir -p "$(dirname "$out")"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$root/plugins/krita/kiln.desktop" "$stage/"
mkdir -p "$stage/kiln_krita/kiln"
# The plugin (no caches), then the client package inside it as kiln_krita.kiln.
(cd "$root/plugins/krita/kiln_krita" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
  xargs -0 -I{} cp --parents {} "$stage/kiln_krita/")
cp "$pkg"/*.py "$stage/kiln_krita/kiln/"
cp "$so" "$stage/kiln_krita/kiln/"
strip --strip-unneeded "$stage/kiln_krita/kiln/$(basename "$so")" 2>/dev/null || true

cat > "$stage/kiln_krita/KILND.txt" <<EOF
Kiln for Krita $version

This plugin is a client of Kiln's daemon, kilnd, which does all the work (models, datasets,
training, generation). kilnd is not in this zip. The plugin starts it when it is not running,
looking, in order, at:
  1. the program chosen with the docker's "Daemon..." button,
  2. \$KILN_DAEMON,
  3. a kilnd beside kiln_krita/kiln/ (you may copy or link it there), or ../bin from there,
  4. PATH (the Kiln package installs /usr/bin/kilnd).
A kilnd that is already running (e.g. started with 'kiln daemon start') is used as it is.

The compiled module kiln/$(basename "$so") is for Python $("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'),
the Python Krita 5.1 embeds on Debian 12.
EOF
cp "$stage/kiln_krita/KILND.txt" "$stage/README-kilnd.txt"

rm -f "$out"
(cd "$stage" && "$python" - "$out" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for top in ("kiln.desktop", "README-kilnd.txt", "kiln_krita"):
        if os.path.isfile(top):
            z.write(top)
            continue
        for dirpath, dirnames, files in os.walk(top):
            dirnames.sort()
            z.write(dirpath + "/", dirpath + "/")  # folder entries: Krita's importer looks for them
            for f in sorted(files):
                z.write(os.path.join(dirpath, f))
EOF
)
echo "$out"
