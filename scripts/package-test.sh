#!/usr/bin/env bash
# usage: bash scripts/package-test.sh [PYTEST ARGS...]   — build the Linux packages, install the .deb, run it
#
# The acceptance test of the packaging (tests/e2e/packaging/): builds the bundle, tar.gz and .deb
# with scripts/build.sh into a temporary folder (or uses AVA_PACKAGE_DEB / AVA_PACKAGE_TARBALL), installs
# the .deb with dpkg and removes it afterwards, runs `ava-tray --self-test` and the tray app (Xvfb + trayer)
# with the system's libportaudio2 hidden, compares the installed self-test's capabilities with the development
# run's, checks the tray over StatusNotifierItem on a private D-Bus, runs the installed app as an MCP host (stdio
# and streamable HTTP servers from mcp.json, its own probe server among them) and its voice detector, and prints
# the sizes, build time and launch-to-icon time.
# Screenshots and figures: artifacts/package-test/. Needs root or passwordless sudo. `bash scripts/test.sh`
# runs the same tests as part of the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec bash scripts/with-services.sh .venv/bin/python -m pytest -p no:cacheprovider -s tests/e2e/packaging "$@"
