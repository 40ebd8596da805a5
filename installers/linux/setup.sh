#!/usr/bin/env bash
# One command from a fresh Debian 12 to a working Kiln: installs the dependencies (apt, needs
# root or sudo), builds everything, and runs Kiln's main job.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/installers/linux/install-deps.sh"
"$root/installers/linux/build.sh"
"$root/installers/linux/main-job.sh"
