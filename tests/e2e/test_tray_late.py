"""A tray host that starts after AVA (start at login racing the panel): AVA begins in its status window
and moves into the tray once the tray appears. Real Xvfb and trayer, on a private display."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waits import poll_until

pytestmark = [pytest.mark.x11, pytest.mark.e2e,
              pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("trayer")),
                                 reason="needs Xvfb and trayer: run scripts/bootstrap.sh")]


@pytest.fixture
def private_display() -> Iterator[str]:
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    try:
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(5)


def test_the_status_window_moves_into_a_tray_that_appears_later(private_display: str,
                                                                isolated_user_dirs: Path) -> None:
    state_file = isolated_user_dirs / "state.json"
    env = dict(os.environ, DISPLAY=private_display, AVA_TRAY_DEBUG_STATE=str(state_file))
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("QT_QPA_PLATFORM", None)

    def state() -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    app = subprocess.Popen([sys.executable, "-m", "ava_tray", "--demo"], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trayer: subprocess.Popen[bytes] | None = None
    try:
        poll_until(lambda: state().get("windows", {}).get("status"), 20, "the status window (no tray yet)")
        assert state()["tray_available"] is False
        trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                                   "--height", "32", "--SetDockType", "true", "--transparent", "false"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll_until(lambda: state().get("tray_available") and state().get("tray_visible"), 15,
                   "AVA to move into the tray")
        poll_until(lambda: state().get("geometry", [0, 0, 0, 0])[2] > 0, 10, "the icon to get a place in the tray")
        app.terminate()
        assert app.wait(5) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        if trayer is not None:
            trayer.terminate()
            trayer.wait(5)
