"""`python -m ava_tray --self-test` as a user runs it: one line per check, exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK_NAMES = ("qt platform", "system tray", "icons", "text services", "keyring", "portaudio", "audio devices",
               "echo cancellation", "simulated session")

# PortAudio made unreachable the way a machine without libportaudio2 sees it: sounddevice's lookup
# (ctypes.util.find_library("portaudio")) finds nothing.
WITHOUT_PORTAUDIO = """
import ctypes.util, sys
system_find_library = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if name == "portaudio" else system_find_library(name)
from ava_tray.__main__ import main
sys.exit(main(["--self-test"]))
"""


def run_self_test(tmp_path: Path, *, display: str | None = None, code: str | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
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
    assert lines["system tray"] == ("INFO", "not checked without a display")
    assert lines["icons"][0] == "OK"
    assert lines["text services"] == ("OK", "collation, time-zone names (Central European Standard Time), "
                                            "8 legacy encodings")
    assert lines["keyring"][0] in ("OK", "WARN")
    if lines["keyring"][0] == "WARN":  # the fail backend: keystore's sentence, not a failure
        assert "keyring.backends.fail" in lines["keyring"][1] and "OPENAI_API_KEY" in lines["keyring"][1]
    assert lines["portaudio"][0] == "OK" and "PortAudio" in lines["portaudio"][1]
    assert lines["audio devices"][0] in ("OK", "WARN")
    status, detail = lines["echo cancellation"]
    assert status == "OK" and detail.startswith("active: ") and "dB of a synthetic 60 ms echo removed" in detail
    assert int(detail.split()[1]) >= 40
    status, detail = lines["simulated session"]
    assert status == "OK" and "completed" in detail and "closed 1000" in detail
    assert result.stdout.splitlines()[-1].startswith("self-test passed: ")


def test_missing_echo_library_is_a_warning_half_duplex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_LIB_PATH", str(tmp_path / "missing" / "liblivekit_ffi.so"))  # a real dlopen failure
    result = run_self_test(tmp_path)
    lines = report(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    status, detail = lines["echo cancellation"]
    assert status == "WARN" and detail.startswith("unavailable: half-duplex (the audio processing library did not load")


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
    assert lines["system tray"] == ("OK", "a tray host is running")
