#!/usr/bin/env bash
# The package on a fresh Debian 12, checked by hand (not in CI: it downloads Debian): a root made
# with debootstrap from Debian's mirror in a scratch folder, the .deb installed there with apt (its
# dependencies resolved from the mirror), then, as a new user: `kiln status` (which starts kilnd),
# `kiln plugins install krita --dry-run`, `kiln plugins list` and the main job on Kiln Mini.
#
#   sudo tests/packaging/run.sh [DEB] [SCRATCH]     (~15 minutes, ~2.5 GB in SCRATCH)
#     DEB      default: the newest build/kiln_*_amd64.deb (installers/linux/build-deb.sh)
#     SCRATCH  default: /tmp/kiln-fresh; emptied first
#   KILN_DEBIAN_MIRROR   default http://deb.debian.org/debian
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deb=$(realpath "${1:-$(ls -t "$root"/build/kiln_*_amd64.deb | head -n 1)}")
scratch=${2:-/tmp/kiln-fresh}
mirror=${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "run.sh: run it as root (debootstrap and chroot need it)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "run.sh: sudo apt install debootstrap" >&2; exit 1; }
t0=$SECONDS
step() { echo "fresh-machine: [$((SECONDS - t0)) s] $*"; }
unmount() { for m in dev/shm dev/pts dev proc sys; do umount -l "$scratch/$m" 2>/dev/null || true; done; }
trap unmount EXIT

unmount
rm -rf "$scratch"
mkdir -p "$scratch"
step "debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$scratch" "$mirror" >"$scratch.debootstrap.log" 2>&1 ||
  { tail -20 "$scratch.debootstrap.log"; exit 1; }
mount -t proc proc "$scratch/proc"
mount -t sysfs sys "$scratch/sys"
mount --bind /dev "$scratch/dev"
mount -t devpts devpts "$scratch/dev/pts" 2>/dev/null || true
mount -t tmpfs -o mode=1777 tmpfs "$scratch/dev/shm"   # Kiln's images travel in shared memory
echo "deb $mirror bookworm main" >"$scratch/etc/apt/sources.list"
cp /etc/resolv.conf "$scratch/etc/resolv.conf"
cp "$deb" "$scratch/tmp/"

step "apt-get install ./$(basename "$deb")"
chroot "$scratch" apt-get update -qq
chroot "$scratch" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "/tmp/$(basename "$deb")" \
  >"$scratch.apt.log" 2>&1 || { tail -30 "$scratch.apt.log"; exit 1; }
step "installed: $(chroot "$scratch" dpkg-query -W -f='${Package} ${Version}' kiln), $(grep -c '^Unpacking' "$scratch.apt.log") packages unpacked"

chroot "$scratch" useradd -m -s /bin/bash artist
as_artist() { chroot --userspec=artist:artist "$scratch" env -i HOME=/home/artist USER=artist PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"; }
step "kiln --version: $(as_artist kiln --version)"
step "kiln status (starts kilnd)"
as_artist kiln status
step "kiln plugins install krita --dry-run"
as_artist kiln plugins install krita --dry-run || echo "(Krita is not installed in this root: reported as above)"
step "kiln plugins list"
as_artist kiln plugins list
step "the main job on Kiln Mini"
as_artist /usr/share/kiln/demo/main-job.sh
step "kiln daemon stop"
as_artist kiln daemon stop
step "all green"
