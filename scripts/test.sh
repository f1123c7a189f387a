#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), lint, types, then pytest with every real service running.
#   bash scripts/test.sh [PYTEST ARGS...]
#   bash scripts/test.sh --fast [PYTEST ARGS...]   unit and integration tests only: no services, no apt-get,
#                                                  no display, no sound server, no keyring (well under a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --fast ]]; then
    shift
    started=$(date +%s.%N)
    bash scripts/bootstrap.sh --python-only
    echo "== pytest --fast (tests/unit, tests/integration; no services)"
    status=0
    # Four workers on two cores: most of these tests wait on audio played in real time, not on the CPU
    # (measured here: -n 2 79 s, -n 4 55 s, -n 4 with work stealing 51 s, 6 workers 42 s, 8 workers 52-57 s;
    # with the integration modules spread among the unit ones (tests/conftest.py) 4 workers take 34-36 s).
    # Byte code is kept (outside the tree) even where PYTHONDONTWRITEBYTECODE is set: without it every worker
    # compiles the app and rewrites every test module's asserts anew, about 2 s before the first test.
    env -u DISPLAY -u WAYLAND_DISPLAY -u DBUS_SESSION_BUS_ADDRESS -u AVA_SERVICES -u PYTHONDONTWRITEBYTECODE \
        PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/ava-tray/pycache}" \
        QT_QPA_PLATFORM=offscreen PULSE_SERVER=unix:/nonexistent \
        .venv/bin/python -m pytest -p no:cacheprovider -q -n "${AVA_FAST_WORKERS:-4}" --dist worksteal tests/unit tests/integration "$@" \
        || status=$?
    awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "fast lane: %.1f s\n", e - s }'
    exit "$status"
fi
bash scripts/bootstrap.sh
echo "== ruff"; .venv/bin/ruff check ava_tray tests packaging
echo "== mypy"; .venv/bin/mypy
echo "== pytest (Xvfb + trayer, PulseAudio null sinks, Secret Service)"
exec bash scripts/with-services.sh .venv/bin/python -m pytest -p no:cacheprovider "$@"
