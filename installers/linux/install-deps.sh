#!/usr/bin/env bash
# Installs Kiln's build and run dependencies from Debian 12's packages.
# Idempotent: packages already present are left alone; safe to run again.
#   --with-hosts   also install what the plugin tests drive (Krita, Blender, Xvfb; Node, npm, node_api.h)
set -euo pipefail

with_hosts=0
for arg in "$@"; do
  case "$arg" in
    --with-hosts) with_hosts=1 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread
  libgoogle-perftools-dev     # tcmalloc for the engine programs (README: Speed against diffusers and kohya)
  libboost-dev libboost-filesystem-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  libopencv-dev libpng-dev zlib1g-dev libssl-dev libsystemd-dev libzip-dev
  libzstd-dev libxxhash-dev   # the remote daemon: images compressed (zstd) and checksummed (XXH3)
  libgtest-dev libgmock-dev
  pybind11-dev python3-dev python3-numpy
  clang libclang-rt-14-dev
  opencv-data
)
if [ "$with_hosts" = 1 ]; then
  packages+=(krita python3-pyqt5 blender xvfb xauth x11-apps imagemagick)
  # Node with npm and node_api.h for the Photoshop bridge's tests. A Node that is already there (for
  # example NodeSource's, which bundles npm and the headers) is kept: Debian's nodejs, npm and
  # libnode-dev conflict with it, and apt would refuse the whole transaction.
  if ! { command -v node >/dev/null && command -v npm >/dev/null && [ -f /usr/include/node/node_api.h ]; }; then
    packages+=(nodejs npm libnode-dev)
  fi
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
