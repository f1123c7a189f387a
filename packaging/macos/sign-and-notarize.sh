#!/usr/bin/env bash
# usage: bash packaging/macos/sign-and-notarize.sh "path/AVA Tray.app" | path.dmg   — Developer ID sign, notarise, staple
#
# Reads from the environment:
#   APPLE_SIGNING_IDENTITY  e.g. "Developer ID Application: Example Ltd (TEAMID1234)" (in the keychain)
#   APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD  the notary service account (an app-specific password)
# An .app is signed inside out (every Mach-O file, then each framework, then the app) with the hardened
# runtime and packaging/macos/entitlements.plist, checked, zipped, notarised and stapled. A .dmg is
# signed, notarised and stapled.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
entitlements="$here/entitlements.plist"

die() {
    echo "sign-and-notarize: $*" >&2
    exit 1
}

[[ $# -eq 1 && -e $1 ]] || { sed -n 2p "$0" | sed 's/^# //' >&2; exit 2; }
target=${1%/}
for var in APPLE_SIGNING_IDENTITY APPLE_ID APPLE_TEAM_ID APPLE_APP_PASSWORD; do
    [[ -n ${!var:-} ]] || die "$var is not set"
done

sign() {
    codesign --force --timestamp --options runtime --entitlements "$entitlements" \
        --sign "$APPLE_SIGNING_IDENTITY" "$@"
}

notarize() {
    xcrun notarytool submit "$1" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
        --password "$APPLE_APP_PASSWORD" --wait --timeout 30m --output-format json | tee "$1.notary.json"
    grep -q '"status" *: *"Accepted"' "$1.notary.json" || die "notarisation of $1 was not accepted (see $1.notary.json; \
xcrun notarytool log <id> shows why)"
    rm -f "$1.notary.json"
}

# Mach-O files inside an .app other than its main executable, one per line, deepest first.
nested_code() {
    find "$1/Contents" -type f ! -path '*/_CodeSignature/*' ! -path "$1/Contents/MacOS/*" | while IFS= read -r file; do
        if file -b "$file" | grep -q 'Mach-O'; then
            echo "$file"
        fi
    done | awk -F/ '{ print NF "\t" $0 }' | sort -rn | cut -f2-
}

case $target in
    *.app)
        # Inside out: nested code first, deepest paths first, then frameworks, then the app itself (whose
        # signature covers the main executable in Contents/MacOS).
        while IFS= read -r file; do
            sign "$file"
        done < <(nested_code "$target")
        find "$target/Contents" -type d -name '*.framework' -prune -print0 | while IFS= read -r -d '' framework; do
            sign "$framework"
        done
        sign "$target"
        codesign --verify --deep --strict --verbose=2 "$target"
        zip="${TMPDIR:-/tmp}/$(basename "$target" .app)-notarize.zip"
        ditto -c -k --keepParent "$target" "$zip"
        notarize "$zip"
        rm -f "$zip"
        xcrun stapler staple "$target"
        spctl --assess --type execute --verbose "$target"
        ;;
    *.dmg)
        codesign --force --timestamp --sign "$APPLE_SIGNING_IDENTITY" "$target"
        notarize "$target"
        xcrun stapler staple "$target"
        spctl --assess --type open --context context:primary-signature --verbose "$target"
        ;;
    *) die "expected an .app or a .dmg: $target" ;;
esac
echo "sign-and-notarize: $target signed, notarised and stapled"
