#!/usr/bin/env bash
# usage: bash scripts/build.sh   — build AVA Tray's installers for this OS into dist/ (AVA_DIST_DIR, AVA_BUILD_DIR, PYTHON override)
#
# Linux:   PyInstaller one-folder bundle (packaging/ava-tray.spec) from a clean build dir, then
#          dist/ava-tray-<version>-linux-x86_64.tar.gz and dist/ava-tray_<version>_<arch>.deb
#          (/opt/ava-tray, /usr/bin/ava-tray, the .desktop file and icons); prints sizes and build time.
# macOS:   the .app bundle, signed and notarised when APPLE_SIGNING_IDENTITY is set, in a .dmg
#          (packaging/macos/).
# Windows: (Git Bash) hands over to packaging/windows/build.ps1 (bundle + Inno Setup installer).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n 2p "$0" | sed 's/^# //'
    exit 0
fi

say() { echo "build: $*"; }
die() {
    echo "build: error: $*" >&2
    exit 1
}

if [[ -n ${PYTHON:-} ]]; then
    python=$PYTHON
elif [[ -x .venv/bin/python ]]; then
    python=.venv/bin/python
else
    python=python3
fi
"$python" -c 'import PyInstaller' 2>/dev/null \
    || die "PyInstaller is not installed for $python: run \`$python -m pip install -e '.[dev]'\`."
version=$("$python" -c 'import ava_tray; print(ava_tray.__version__)')
build_dir=$(mkdir -p "${AVA_BUILD_DIR:-build}" && cd "${AVA_BUILD_DIR:-build}" && pwd)
dist_dir=$(mkdir -p "${AVA_DIST_DIR:-dist}" && cd "${AVA_DIST_DIR:-dist}" && pwd)
started=$(date +%s.%N)

elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# pyinstaller: a clean one-folder build into $build_dir/bundle/ava-tray (PYTHONPATH: see numpy_without_blas)
pyinstaller() {
    rm -rf "$build_dir/pyinstaller" "$build_dir/bundle"
    say "PyInstaller (ava-tray $version, $("$python" -V 2>&1))"
    PYTHONPATH=${overlay:-} "$python" -m PyInstaller --noconfirm --clean --log-level WARN \
        --workpath "$build_dir/pyinstaller" --distpath "$build_dir/bundle" packaging/ava-tray.spec
}

# Linux: PyPI's numpy carries OpenBLAS and libgfortran (28 MB) for linear algebra AVA never does. The same
# numpy version is built from source without BLAS (once: a few minutes; the wheel is kept in $wheel_cache)
# and put in front of the venv's numpy for the freeze only. Sets $overlay.
wheel_cache=${AVA_WHEEL_CACHE:-$repo/build/wheels}
numpy_without_blas() {
    local numpy_version wheel
    numpy_version=$("$python" -c 'import numpy; print(numpy.__version__)')
    mkdir -p "$wheel_cache"
    cached() { find "$wheel_cache" -maxdepth 1 -name "numpy-$numpy_version-*.whl" | head -n 1; }
    if [[ -z $(cached) ]]; then
        command -v g++ >/dev/null || die "g++ is needed to build numpy without BLAS: apt-get install g++"
        say "building numpy $numpy_version without BLAS into $wheel_cache (once; a few minutes)"
        "$python" -m pip wheel --quiet --no-deps --no-cache-dir --no-binary numpy "numpy==$numpy_version" \
            -w "$wheel_cache" -Csetup-args=-Dblas=none -Csetup-args=-Dlapack=none -Csetup-args=-Dallow-noblas=true \
            || die "building numpy $numpy_version from source failed (see above)"
    fi
    wheel=$(cached)
    overlay="$build_dir/overlay"
    rm -rf "$overlay"
    "$python" -m pip install --quiet --no-deps --target "$overlay" "$wheel"
    PYTHONPATH=$overlay "$python" -c 'import numpy, sys; sys.exit(numpy.show_config("dicts")["Build Dependencies"]["blas"]["name"] != "none")' \
        || die "the numpy in $overlay still uses BLAS"
}

# --- Linux -------------------------------------------------------------------------------------------

# The system libraries the bundle links to but does not carry (DT_NEEDED of every ELF file in it).
system_libraries() {
    local bundle=$1
    comm -23 \
        <(find "$bundle" -type f -name '*.so*' -print0 | xargs -0 readelf -d 2>/dev/null \
            | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u) \
        <(find "$bundle" -name '*.so*' -printf '%f\n' | sort -u)
}

# Every system library the bundle needs must come from a package in the .deb's Depends (checked on this
# build host with dpkg -S), so that `apt install ./ava-tray.deb` brings all that Qt's xcb platform needs.
check_depends() {
    local bundle=$1 depends=$2 lib path pkg name ldcache missing=()
    ldcache=$(ldconfig -p)
    for lib in $(system_libraries "$bundle"); do
        path=$(awk -v n="$lib" '$1 == n { print $NF; exit }' <<<"$ldcache")
        if [[ -z $path ]]; then
            say "warning: $lib is needed by the bundle but not installed on this build host"
            continue
        fi
        # merged /usr: dpkg knows some files under /usr/lib, others under /lib
        pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null \
            || dpkg -S "/usr$path" 2>/dev/null || true)
        pkg=${pkg%%:*}
        [[ -z $pkg ]] && { say "warning: no package owns $path ($lib)"; continue; }
        name=$(sed 's/[.+]/\\&/g' <<<"${pkg%t64}")  # libstdc++6: a package name as a regular expression
        grep -Eq "(^|[ ,|])${name}(t64)?([ ,|(]|$)" <<<"$depends" || missing+=("$pkg ($lib)")
    done
    ((${#missing[@]} == 0)) || die "packaging/linux/control.in's Depends lacks: ${missing[*]}"
}

# The oldest glibc the bundle can run on: the highest GLIBC_x.y symbol version any of its files needs.
glibc_needed() {
    find "$1" -type f \( -name '*.so*' -o -perm -u+x \) -print0 | { xargs -0 objdump -T 2>/dev/null || true; } \
        | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -u -V | tail -n 1
}

# The newest GLIBCXX_x.y.z symbol version any file in the bundle needs from the system's libstdc++, which the
# bundle does not carry: control.in's `libstdc++6 (>= 11)` provides up to GLIBCXX_3.4.29.
MAX_GLIBCXX=3.4.29
glibcxx_needed() {
    find "$1" -type f -name '*.so*' -print0 | { xargs -0 objdump -T 2>/dev/null || true; } \
        | grep -o 'GLIBCXX_[0-9][0-9.]*' | sed 's/GLIBCXX_//' | sort -u -V | tail -n 1
}

build_linux() {
    local arch deb_arch bundle tarball deb root control glibcxx
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found: build the .deb on Debian or Ubuntu."
    command -v readelf >/dev/null || die "readelf not found: install binutils."
    arch=$(uname -m)
    deb_arch=$(dpkg --print-architecture)
    numpy_without_blas
    pyinstaller
    bundle="$build_dir/bundle/ava-tray"
    [[ -x $bundle/ava-tray ]] || die "PyInstaller did not produce $bundle/ava-tray"
    "$bundle/ava-tray" --version >/dev/null || die "the frozen app does not start: try $bundle/ava-tray --version"

    tarball="$dist_dir/ava-tray-$version-linux-$arch.tar.gz"
    deb="$dist_dir/ava-tray_${version}_$deb_arch.deb"
    rm -f "$tarball" "$deb"
    say "packing $tarball"
    tar -C "$build_dir/bundle" --sort=name --owner=0 --group=0 --numeric-owner -cf - ava-tray | gzip -9n >"$tarball"

    say "packing $deb"
    root="$build_dir/deb"
    rm -rf "$root"
    mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications" \
        "$root/usr/share/icons/hicolor/scalable/apps" "$root/usr/share/icons/hicolor/256x256/apps"
    cp -a "$bundle" "$root/opt/ava-tray"
    ln -s /opt/ava-tray/ava-tray "$root/usr/bin/ava-tray"
    install -m 644 resources/ava-tray.desktop "$root/usr/share/applications/ava-tray.desktop"
    install -m 644 resources/ava-tray.svg "$root/usr/share/icons/hicolor/scalable/apps/ava-tray.svg"
    "$python" packaging/render_icon.py resources/ava-tray.svg \
        "$root/usr/share/icons/hicolor/256x256/apps/ava-tray.png" 256
    chmod -R u=rwX,go=rX "$root"
    control=$(sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$deb_arch/" \
        -e "s/@INSTALLED_SIZE@/$(du -sk --exclude=DEBIAN "$root" | cut -f1)/" \
        -e "s/@GLIBC@/$(glibc_needed "$bundle")/" packaging/linux/control.in)
    check_depends "$bundle" "$(grep '^Depends:' <<<"$control")"
    glibcxx=$(glibcxx_needed "$bundle")
    [[ $(printf '%s\n' "$glibcxx" "$MAX_GLIBCXX" | sort -V | tail -n 1) == "$MAX_GLIBCXX" ]] \
        || die "the bundle needs GLIBCXX_$glibcxx: raise libstdc++6's version in packaging/linux/control.in"
    printf '%s\n' "$control" >"$root/DEBIAN/control"
    dpkg-deb --root-owner-group -Zxz -z6 --build "$root" "$deb" >/dev/null

    local seconds unpacked packed
    seconds=$(elapsed)
    unpacked=$(du -sb "$bundle" | cut -f1)
    packed=$(stat -c %s "$tarball")
    echo "build: figures for ava-tray $version ($arch)"
    printf '  %-28s %6.1f MB  (%s bytes, du -sb; %s)\n' "bundle unpacked" "$(mb "$unpacked")" "$unpacked" \
        "$(goal "$unpacked" "$MAX_UNPACKED_MB")"
    printf '  %-28s %6.1f MB  (%s) %s\n' "tar.gz" "$(mb "$packed")" "$(goal "$packed" "$MAX_TARBALL_MB")" "$tarball"
    printf '  %-28s %6.1f MB  %s\n' ".deb" "$(mb "$(stat -c %s "$deb")")" "$deb"
    printf '  %-28s %6s s\n' "build time" "$seconds"
}

# The size goals (tests/e2e/packaging/test_installed.py asserts them too), in MB of 10^6 bytes.
MAX_UNPACKED_MB=150
MAX_TARBALL_MB=60

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }

# goal BYTES LIMIT_MB: "goal <= N MB, M MB to spare", or a warning that the goal is missed.
goal() {
    awk -v b="$1" -v g="$2" 'BEGIN { d = g - b / 1000000
        if (d >= 0) printf "goal <= %d MB, %.1f MB to spare", g, d; else printf "OVER the goal of %d MB by %.1f MB", g, -d }'
}

# --- macOS and Windows -------------------------------------------------------------------------------

build_macos() {
    pyinstaller
    local app="$build_dir/bundle/AVA Tray.app" dmg="$dist_dir/AVA-Tray-$version-macos-$(uname -m).dmg"
    [[ -d $app ]] || die "PyInstaller did not produce $app"
    if [[ -n ${APPLE_SIGNING_IDENTITY:-} ]]; then
        bash packaging/macos/sign-and-notarize.sh "$app"
        bash packaging/macos/make-dmg.sh "$app" "$dmg"
        bash packaging/macos/sign-and-notarize.sh "$dmg"
    else
        say "APPLE_SIGNING_IDENTITY is not set: the .app stays unsigned (ad hoc)"
        bash packaging/macos/make-dmg.sh "$app" "$dmg"
    fi
    say "done in $(elapsed) s: $(du -sh "$app" | cut -f1) unpacked; $dmg"
}

case $(uname -s) in
    Linux) build_linux ;;
    Darwin) build_macos ;;
    MINGW* | MSYS* | CYGWIN*)
        exec powershell.exe -NoProfile -ExecutionPolicy Bypass -File packaging/windows/build.ps1 \
            -Python "$python" -DistDir "$dist_dir" -BuildDir "$build_dir" ;;
    *) die "unsupported OS $(uname -s)" ;;
esac
