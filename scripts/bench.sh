#!/usr/bin/env bash
# Benchmarks against the local simulator on real audio; prints figures and ratios (see tests/benchmarks/bench.py).
#   bash scripts/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
exec bash scripts/with-services.sh .venv/bin/python tests/benchmarks/bench.py "$@"
