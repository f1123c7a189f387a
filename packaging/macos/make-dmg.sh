#!/usr/bin/env bash
# usage: bash packaging/macos/make-dmg.sh "path/AVA Tray.app" OUT.dmg   — a compressed disk image with an Applications link
set -euo pipefail

if [[ $# -ne 2 || ! -d $1 ]]; then
    sed -n 2p "$0" | sed 's/^# //' >&2
    exit 2
fi
app=$1
dmg=$2
staging=$(mktemp -d "${TMPDIR:-/tmp}/ava-dmg.XXXXXX")
trap 'rm -rf "$staging"' EXIT

# ditto keeps symlinks, extended attributes and the code signature intact.
ditto "$app" "$staging/$(basename "$app")"
ln -s /Applications "$staging/Applications"
rm -f "$dmg"
hdiutil create -volname "AVA Tray" -srcfolder "$staging" -fs HFS+ -format UDZO -imagekey zlib-level=9 -ov "$dmg" \
    >/dev/null
hdiutil verify "$dmg" >/dev/null
echo "make-dmg: $dmg ($(du -h "$dmg" | cut -f1))"
