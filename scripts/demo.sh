#!/usr/bin/env bash
# Run AVA on the built-in local Realtime simulator (no API key needed). Set-up is idempotent.
#   bash scripts/demo.sh [ava-tray ARGS...]     e.g. --session-limit 20 to watch a seamless renewal,
#                                               add --no-rollover to watch the seed's expiry and restart
# With a display: the tray app. Without one: the console front end, on virtual audio devices.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [[ -n ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]]; then
    exec .venv/bin/ava-tray --demo "$@"
fi
echo "No display found: running the console front end on virtual audio devices (Ctrl+C quits)." >&2
AVA_NO_X=1 AVA_KEEP_HOME=1 exec bash scripts/with-services.sh .venv/bin/ava-tray --console --demo "$@"
