#!/usr/bin/env bash
# Kiln's main job, end to end, with the programs in build/bin:
# starts kilnd (if it is not running), shows its status, runs a job with a progress bar and
# measures the IPC. Uses the normal per-user socket and data dir unless KILN_SOCKET /
# KILN_DATA_DIR say otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KILN_BUILD_DIR:-$root/build}/bin
kiln="$bin/kiln"
export KILN_DAEMON="$bin/kilnd"

echo "== starting the daemon"
"$kiln" daemon start
echo
echo "== status"
"$kiln" status
echo
echo "== a job on the daemon's queue (simulated steps), followed live"
"$kiln" jobs simulate --steps 40 --step-ms 25
echo
echo "== IPC speed"
"$kiln" bench ipc --requests 2000 --images 5
echo
echo "The daemon keeps running for your plugins; stop it with: $kiln daemon stop"
