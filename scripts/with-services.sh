#!/usr/bin/env bash
# Run a command with the services AVA's tests and demo need, then tear them all down.
#
#   bash scripts/with-services.sh CMD [ARGS...]
#
# Starts, in a private temporary directory and in sessions of their own (so that Ctrl+C reaches only the
# command, which can then close its audio streams before the services stop):
#   - PulseAudio with null sinks `speaker` and `virtmic` and a source `mic` remapped from
#     virtmic.monitor (defaults: speaker / mic), so PortAudio sees real, paced devices;
#   - Xvfb on a free display with `trayer` as the system tray host (DISPLAY is exported);
#   - a D-Bus session bus with gnome-keyring-daemon unlocked (Secret Service for `keyring`).
# HOME (and the XDG base directories) point to a temporary directory unless AVA_KEEP_HOME is set.
# Skip parts with AVA_NO_PULSE=1, AVA_NO_X=1, AVA_NO_KEYRING=1. AVA_SERVICES=1 is exported.
# The exit code is the command's; 125 means a service could not be started (see the message).
set -uo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: bash scripts/with-services.sh CMD [ARGS...]" >&2
    exit 2
fi

SERVICE_TIMEOUT_S=${AVA_SERVICE_TIMEOUT_S:-15}

svc_dir=$(mktemp -d "${TMPDIR:-/tmp}/ava-services.XXXXXX")
chmod 700 "$svc_dir"
pids=()        # started processes, stopped in reverse order

log() { [[ -n ${AVA_SERVICES_VERBOSE:-} ]] && echo "with-services: $*" >&2; return 0; }

die() {
    echo "with-services: $*" >&2
    exit 125
}

teardown() {
    local rc=$? i pid
    trap - EXIT INT TERM HUP
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        # Give each service up to ~3 s, then force it.
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$svc_dir"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

need() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 \
            || die "'$cmd' is not installed: run 'bash scripts/bootstrap.sh' (or set ${skip_var} to skip this part)."
    done
}

# poll SECONDS DESCRIPTION PID CMD...: run CMD until it succeeds, PID dies or time runs out.
poll() {
    local seconds=$1 what=$2 pid=$3 deadline
    shift 3
    deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 2
        sleep 0.05
    done
    log "$what is up"
}

# --- private runtime dir and HOME ---------------------------------------------------------------
export XDG_RUNTIME_DIR="$svc_dir/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"
if [[ -z ${AVA_KEEP_HOME+x} ]]; then
    export HOME="$svc_dir/home"
    export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share"
    export XDG_CACHE_HOME="$HOME/.cache" XDG_STATE_HOME="$HOME/.local/state"
    mkdir -p -m 700 "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"
fi

# --- PulseAudio ----------------------------------------------------------------------------------
if [[ -z ${AVA_NO_PULSE:-} ]]; then
    skip_var=AVA_NO_PULSE
    need pulseaudio pactl
    # auth-anonymous: the socket lives in our 0700 runtime dir, and clients then connect even if a
    # test points HOME elsewhere (the cookie lives under HOME).
    setsid pulseaudio --daemonize=no --exit-idle-time=-1 --disallow-exit -n --use-pid-file=no \
        --load="module-native-protocol-unix auth-anonymous=1" \
        --load="module-null-sink sink_name=speaker" \
        --load="module-null-sink sink_name=virtmic" \
        --load="module-remap-source master=virtmic.monitor source_name=mic" \
        </dev/null >"$svc_dir/pulseaudio.log" 2>&1 &
    pids+=($!)
    export PULSE_SERVER="unix:$XDG_RUNTIME_DIR/pulse/native"
    poll "$SERVICE_TIMEOUT_S" PulseAudio "$!" pactl info
    case $? in
        1) die "PulseAudio exited at start: $(tail -n 3 "$svc_dir/pulseaudio.log" | tr '\n' ' ')" ;;
        2) die "PulseAudio did not answer 'pactl info' within ${SERVICE_TIMEOUT_S} s." ;;
    esac
    pactl set-default-sink speaker && pactl set-default-source mic \
        || die "could not set PulseAudio's default sink/source."
fi

# --- Xvfb and trayer -----------------------------------------------------------------------------
if [[ -z ${AVA_NO_X:-} ]]; then
    skip_var=AVA_NO_X
    need Xvfb trayer xdotool
    # -displayfd: Xvfb takes the first free display itself (atomically, by its lock file) and writes
    # the number once it accepts connections, so parallel runs never race for a display number.
    setsid Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp \
        3>"$svc_dir/display" </dev/null >"$svc_dir/xvfb.log" 2>&1 &
    pids+=($!)
    poll "$SERVICE_TIMEOUT_S" Xvfb "$!" grep -q '^[0-9]' "$svc_dir/display"
    case $? in
        1) die "Xvfb exited at start: $(tail -n 3 "$svc_dir/xvfb.log" | tr '\n' ' ')" ;;
        2) die "Xvfb did not start within ${SERVICE_TIMEOUT_S} s." ;;
    esac
    n=$(head -n 1 "$svc_dir/display")
    export DISPLAY=":$n"
    unset WAYLAND_DISPLAY
    setsid trayer --edge top --align right --widthtype request --height 32 --SetDockType true --transparent false \
        </dev/null >"$svc_dir/trayer.log" 2>&1 &
    pids+=($!)
    poll "$SERVICE_TIMEOUT_S" trayer "$!" xdotool search --class trayer
    case $? in
        1) die "trayer exited at start: $(tail -n 3 "$svc_dir/trayer.log" | tr '\n' ' ')" ;;
        2) die "the tray host (trayer) did not appear within ${SERVICE_TIMEOUT_S} s." ;;
    esac
fi

# --- D-Bus session and an unlocked keyring -------------------------------------------------------
if [[ -z ${AVA_NO_KEYRING:-} ]]; then
    skip_var=AVA_NO_KEYRING
    need dbus-daemon dbus-send gnome-keyring-daemon
    # Our own session bus rather than dbus-run-session: same bus, but we know every PID to stop and
    # the daemon's chatter goes to a log instead of the command's stderr.
    setsid dbus-daemon --session --nofork --nopidfile --address="unix:path=$XDG_RUNTIME_DIR/bus" \
        </dev/null >"$svc_dir/dbus.log" 2>&1 &
    pids+=($!)
    export DBUS_SESSION_BUS_ADDRESS="unix:path=$XDG_RUNTIME_DIR/bus"
    poll "$SERVICE_TIMEOUT_S" D-Bus "$!" dbus-send --session --dest=org.freedesktop.DBus \
        --type=method_call --print-reply /org/freedesktop/DBus org.freedesktop.DBus.GetId
    case $? in
        1) die "dbus-daemon exited at start: $(tail -n 3 "$svc_dir/dbus.log" | tr '\n' ' ')" ;;
        2) die "the D-Bus session bus did not answer within ${SERVICE_TIMEOUT_S} s." ;;
    esac
    printf pw | setsid gnome-keyring-daemon --foreground --unlock --components=secrets \
        >"$svc_dir/keyring.log" 2>&1 &
    pids+=($!)
    secrets_owned() {
        dbus-send --session --dest=org.freedesktop.DBus --type=method_call --print-reply \
            /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets \
            | grep -q 'boolean true'
    }
    poll "$SERVICE_TIMEOUT_S" gnome-keyring "$!" secrets_owned
    case $? in
        1) die "gnome-keyring-daemon exited at start: $(tail -n 3 "$svc_dir/keyring.log" | tr '\n' ' ')" ;;
        2) die "gnome-keyring-daemon did not own org.freedesktop.secrets within ${SERVICE_TIMEOUT_S} s." ;;
    esac
fi

export AVA_SERVICES=1
log "running: $*"
# In the background with our stdin handed on explicitly (a plain `&` would give it /dev/null), so that
# a TERM or HUP sent to this script reaches the command at once. Ctrl-C at a terminal reaches the
# command by itself (same process group), so INT is not forwarded: we wait for the command to end.
exec 3<&0
"$@" <&3 3<&- &
cmd_pid=$!
exec 3<&-
trap 'kill -TERM "$cmd_pid" 2>/dev/null' TERM
trap 'kill -HUP "$cmd_pid" 2>/dev/null' HUP
trap ':' INT
while :; do
    wait "$cmd_pid"
    rc=$?
    kill -0 "$cmd_pid" 2>/dev/null || break   # `wait` was only interrupted by a signal
done
exit "$rc"
