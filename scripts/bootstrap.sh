#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for AVA Tray development; safe and quick to run again.
#
#   bash scripts/bootstrap.sh [--python-only]
#
# - installs the system packages the app, the tests and scripts/with-services.sh need (only the
#   missing ones; as root, or through sudo otherwise);
# - creates .venv in the repository and runs `pip install -e '.[dev]'` when pyproject.toml changed
#   since the last install (a hash stamp in .venv).
# --python-only skips the system packages (the fast test lane: no apt-get).
# PYTHON=python3.12 picks another interpreter for the venv (3.11 or newer).
set -euo pipefail

python_only=
[[ ${1:-} == --python-only ]] && python_only=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { echo "bootstrap: $*"; }
die() {
    echo "bootstrap: error: $*" >&2
    exit 1
}

PACKAGES=(
    # Qt (PySide6) offscreen and on a real X display
    libegl1 libgl1 libfontconfig1 libglib2.0-0 libdbus-1-3 libxkbcommon0
    libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0
    libxkbcommon-x11-0
    # a virtual display with a tray host, clicks and screenshots
    xvfb xauth trayer xdotool imagemagick
    # sound: PortAudio, PulseAudio null sinks, and ALSA's route to pulse (a Recommends of pulseaudio)
    libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins
    # a session bus and the Secret Service for `keyring`
    dbus dbus-x11 gnome-keyring
    # test speech and audio tools
    espeak-ng sox
    # building the installers: strip and readelf; gcc for the trimmed ICU data library, g++ for numpy
    # without BLAS (dpkg-deb is always there)
    binutils gcc g++
)

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    else
        sudo "$@"
    fi
}

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# quietly LOG_NAME CMD...: run CMD with its output in a log, shown (the end of it) only on failure.
quietly() {
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/ava-bootstrap-$1.XXXXXX")
    shift
    if "$@" >"$log" 2>&1; then
        rm -f "$log"
    else
        tail -n 20 "$log" >&2
        echo "bootstrap: the full log is in $log" >&2
        return 1
    fi
}

apt_updated=
apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found: this script supports Debian and Ubuntu; install these by hand: $*"
    [[ $(id -u) -eq 0 ]] || command -v sudo >/dev/null 2>&1 \
        || die "not root and no sudo: run this script as root to install: $*"
    [[ $(id -u) -eq 0 ]] || sudo -v || die "sudo refused: run this script as root to install: $*"
    if [[ -z $apt_updated ]]; then
        say "apt-get update"
        quietly apt-update as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
            || die "apt-get update failed (network, proxy or sources.list?)"
        apt_updated=1
    fi
    say "installing: $*"
    quietly apt-install as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" \
        || die "apt-get install failed for: $*"
}

# --- system packages ---------------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
if [[ -n $python_only ]]; then
    ((${#missing[@]} == 0)) || say "not installing (--python-only): ${missing[*]}"
elif ((${#missing[@]})); then
    apt_install "${missing[@]}"
else
    say "system packages present"
fi

# --- Python and the venv -----------------------------------------------------------------------------
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
    [[ $python == python3 ]] || die "$python not found"
    apt_install python3
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$("$python" -V 2>&1) is too old: AVA needs Python 3.11 or newer (set PYTHON=...)."
version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

# Building numpy from source (scripts/build.sh) needs the interpreter's C headers.
if [[ -z $python_only ]] && ! "$python" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))'; then
    installed "python$version-dev" || apt_install "python$version-dev"
fi

venv="$repo/.venv"
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    # Debian splits ensurepip out of the interpreter: python3-venv (python3.X-venv) brings it.
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt_install python3-venv "python$version-venv"
    fi
    rm -rf "$venv"
    say "creating .venv with $("$python" -V 2>&1)"
    "$python" -m venv "$venv" || die "could not create $venv"
fi

stamp="$venv/.ava-bootstrap-stamp"
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
    say "pip install -e '.[dev]' (pyproject.toml changed or first run)"
    quietly pip "$venv/bin/python" -m pip install --disable-pip-version-check -q -e '.[dev]' \
        || die "pip install -e '.[dev]' failed"
    echo "$wanted" >"$stamp"
else
    say "Python packages up to date"
fi
say "ready: bash scripts/with-services.sh .venv/bin/python -m pytest"
