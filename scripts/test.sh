#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), lint, types, then pytest with every real service running.
#   bash scripts/test.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "== ruff"; .venv/bin/ruff check ava_tray tests packaging
echo "== mypy"; .venv/bin/mypy
echo "== pytest (Xvfb + trayer, PulseAudio null sinks, Secret Service)"
exec bash scripts/with-services.sh .venv/bin/python -m pytest -p no:cacheprovider "$@"
