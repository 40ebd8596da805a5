#!/usr/bin/env bash
# Builds Kiln's Debian package, build/kiln_<version>_<arch>.deb: the programs, the Python binding,
# the resources, the plugin bundles, the systemd user units, man pages and licences (see
# cmake/KilnPackaging.cmake). Library dependencies come from dpkg-shlibdeps; lintian checks the
# result when it is installed (what it still reports is explained in the README).
#
#   installers/linux/build-deb.sh [--photoshop FILE.ccx] [--out DIR]
#     --photoshop   a .ccx built on macOS or Windows (with the panel's native addon) to ship in
#                   /usr/share/kiln/plugins; a Linux build has no addon and is left out
#     --out         where the .deb goes (default: the build folder)
#   KILN_BUILD_DIR  the build folder (default build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
ccx="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --photoshop) ccx=$(realpath "$2"); shift 2 ;;
    --out) out=$(realpath -m "$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
say() { echo "build-deb: $*"; }
for tool in cpack dpkg-shlibdeps help2man; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: '$tool' is missing: sudo apt install cmake dpkg-dev help2man" >&2; exit 1; }
done

KILN_BUILD_DIR="$build" "$root/installers/linux/build.sh" >/dev/null
version=$("$build/bin/kiln" --version | awk '{print $2}')
say "version $version"

say "plugin bundles"
"$root/installers/krita/build-zip.sh" "$build" "$build/krita/kiln-krita-$version.zip" >/dev/null
"$root/installers/blender/build-zip.sh" "$build" "$build/blender/kiln-blender-$version.zip" >/dev/null

if [ -n "$ccx" ]; then
  mkdir -p "$build/photoshop" && cp "$ccx" "$build/photoshop/kiln-photoshop-$version.ccx"
else
  rm -f "$build/photoshop/kiln-photoshop-$version.ccx"
  say "no Photoshop .ccx given (--photoshop): the package ships Krita's and Blender's plugins"
fi

say "man pages"
mkdir -p "$build/man" "$build/debian"
help2man --no-info --version-string="$version" --name "the Kiln daemon: models, LoRAs, datasets and the job queue" \
  "$build/bin/kilnd" | gzip -9n >"$build/man/kilnd.1.gz"
help2man --no-info --version-string="$version" --name "Kiln's command line: generate, shots, datasets, training, plugins" \
  "$build/bin/kiln" | gzip -9n >"$build/man/kiln.1.gz"
{
  echo "kiln ($version) unstable; urgency=medium"
  echo
  echo "  * Kiln $version; see /usr/share/doc/kiln and the project's README."
  echo
  echo " -- Kiln developers <kiln-dev@example.invalid>  $(date -R -d "@$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n >"$build/debian/changelog.gz"

say "cpack"
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls -t "$build"/kiln_"$version"_*.deb | head -n 1)
if [ -n "$out" ]; then mkdir -p "$out" && mv "$deb" "$out/" && deb="$out/$(basename "$deb")"; fi
say "wrote $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --field "$deb" Depends | sed 's/^/build-deb: depends: /'

if command -v lintian >/dev/null; then
  say "lintian (README: what it still reports and why)"
  lintian --tag-display-limit 0 "$deb" || true
else
  say "lintian is not installed (sudo apt install lintian) to check the package"
fi
