"""`python -m ava_tray` as a process, offscreen (so no tray): the status-window fallback, a second launch
handing over to the first, SIGTERM and SIGINT quitting cleanly with exit 0 within 2 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waits import poll_until


class Ava:
    def __init__(self, home: Path, *args: str) -> None:
        self.state_file = home / "state.json"
        self.log = home / f"ava-{time.monotonic_ns()}.log"
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AVA_TRAY_DEBUG_STATE=str(self.state_file))
        self.proc = subprocess.Popen([sys.executable, "-m", "ava_tray", "--log-level", "INFO", *args], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def started(isolated_user_dirs: Path) -> Iterator[list[Ava]]:
    apps: list[Ava] = []
    yield apps
    for app in apps:
        if app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_no_tray_falls_back_to_the_status_window_and_signals_quit_cleanly(
        isolated_user_dirs: Path, started: list[Ava], signum: int) -> None:
    app = Ava(isolated_user_dirs, "--demo", "--session-limit", "5")
    started.append(app)
    poll_until(lambda: app.state().get("windows", {}).get("status"), 20, "the status window")
    assert not app.state()["tray_available"]
    poll_until(lambda: "No system tray is available" in app.output(), 5, "the no-tray message")
    poll_until(lambda: "embedded simulator" in app.output(), 10, "the demo engine")
    began = time.monotonic()
    app.proc.send_signal(signum)
    assert app.proc.wait(timeout=5) == 0, app.output()[-2000:]
    assert time.monotonic() - began < 2.0
    assert "AVA Tray quit" in app.output() and "Traceback" not in app.output()


def test_a_second_launch_hands_over_and_exits(isolated_user_dirs: Path, started: list[Ava]) -> None:
    first = Ava(isolated_user_dirs, "--demo")
    started.append(first)
    poll_until(lambda: first.state().get("windows", {}).get("status"), 20, "the first instance")
    second = Ava(isolated_user_dirs, "--demo")
    started.append(second)
    assert second.proc.wait(timeout=20) == 0
    assert "already running" in second.output()
    poll_until(lambda: first.state().get("status_window_opened", 0) >= 2, 10, "the first instance to show itself")
    assert first.proc.poll() is None
    first.proc.terminate()
    assert first.proc.wait(timeout=5) == 0


def test_a_stale_lock_after_a_crash_does_not_block_the_next_start(isolated_user_dirs: Path,
                                                                   started: list[Ava]) -> None:
    crashed = Ava(isolated_user_dirs, "--demo")
    started.append(crashed)
    poll_until(lambda: crashed.state().get("windows", {}).get("status"), 20, "the first instance")
    crashed.proc.kill()  # no cleanup: the lock's socket file stays behind
    crashed.proc.wait()
    crashed.state_file.unlink()
    after = Ava(isolated_user_dirs, "--demo")
    started.append(after)
    poll_until(lambda: after.state().get("windows", {}).get("status"), 20, "the next start")
    assert after.proc.poll() is None
    after.proc.terminate()
    assert after.proc.wait(timeout=5) == 0
