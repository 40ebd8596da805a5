#!/usr/bin/env bash
# Packs what the engine needs besides LibTorch, from Debian 12's packages, into .gpu/deps.tar.xz:
# ICU and zlib (the CLIP tokenizer), nlohmann/json, spdlog + fmt, CLI11 and GoogleTest — headers, libraries
# and CMake files. A GPU machine that has a CUDA LibTorch but none of these (and no network) builds
# the engine with them: installers/gpu/engine-checks.sh unpacks the archive. Run it on Debian 12.
#   --out FILE   where to write the archive (default .gpu/deps.tar.xz in the repository)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="$repo/.gpu/deps.tar.xz"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$(realpath -m "$2")"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "pack-deps.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

packages=(libicu72 libicu-dev zlib1g-dev nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libgtest-dev libcli11-dev)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "pack-deps: downloading ${packages[*]}"
if ! apt-get download -qq "${packages[@]}" 2>"$work/apt.log"; then
  cat "$work/apt.log" >&2
  echo "pack-deps: apt-get download failed; run 'apt-get update' first (this needs Debian 12's archive)" >&2
  exit 1
fi
for deb in ./*.deb; do dpkg-deb -x "$deb" "$work/root"; done

# Only what building and running the engine needs; ICU's tools, docs and static archives stay out.
stage="$work/stage/deps"
lib=usr/lib/x86_64-linux-gnu
mkdir -p "$stage/usr/include" "$stage/$lib/cmake" "$stage/usr/share/cmake"
cp -a "$work/root/usr/include/"{unicode,nlohmann,spdlog,fmt,gtest,CLI,zlib.h,zconf.h} "$stage/usr/include/"
cp -a "$work/root/$lib/"libicu{uc,i18n,data}.so* "$work/root/$lib/"libspdlog.so* "$work/root/$lib/"libfmt.so* \
  "$work/root/$lib/"libgtest*.a "$work/root/$lib/libz.a" "$stage/$lib/"
cp -a "$work/root/$lib/cmake/"{spdlog,fmt,GTest} "$stage/$lib/cmake/"
cp -a "$work/root/usr/share/cmake/"{nlohmann_json,CLI11} "$stage/usr/share/cmake/"
rm -f "$stage/$lib/libz.so"  # static zlib: nothing to find at run time
for deb in ./*.deb; do dpkg-deb -f "$deb" Package Version | sed 's/^[^:]*: //' | paste -sd' '; done >"$stage/MANIFEST"

mkdir -p "$(dirname "$out")"
tar -C "$work/stage" -cJf "$out.tmp" deps
mv "$out.tmp" "$out"
echo "pack-deps: wrote $out ($(du -h "$out" | cut -f1)): $(wc -l <"$stage/MANIFEST") packages"
