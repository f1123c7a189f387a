"""The tray app on a real X display with a tray host (Xvfb + trayer): the icon, its countdown tooltip, a click,
the menu, the history window, Quit; a rejected key (Error, a notification, no retries) fixed by a new key.

Run with `bash scripts/with-services.sh .venv/bin/python -m pytest tests/e2e/test_tray_x11.py -q -s`.
Screenshots go to artifacts/tray-screenshots/<test> (or $AVA_SCREENSHOT_DIR); the folder is printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from waits import poll_until

REPO = Path(__file__).resolve().parents[2]
GOOD_KEY = "sk-test-x11-" + "Gd4kQ9" * 5
BAD_KEY = "sk-test-x11-" + "Bd0xZ1" * 5


def _tray_available() -> tuple[bool, str]:
    if not os.environ.get("DISPLAY"):
        return False, "no DISPLAY: run under `bash scripts/with-services.sh` (Xvfb + trayer)"
    if not (shutil.which("xdotool") and Path("/usr/bin/import").exists()):
        return False, "xdotool and ImageMagick's /usr/bin/import are needed"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    probe = subprocess.run(
        [sys.executable, "-c", "from PySide6.QtWidgets import QApplication, QSystemTrayIcon; "
         "app = QApplication([]); print(QSystemTrayIcon.isSystemTrayAvailable())"],
        env=env, capture_output=True, text=True, timeout=30)
    if probe.stdout.strip() != "True":
        return False, f"no system tray on DISPLAY={os.environ['DISPLAY']} (start a tray host such as trayer)"
    return True, ""


_AVAILABLE, _WHY = _tray_available()
pytestmark = [pytest.mark.x11, pytest.mark.e2e, pytest.mark.skipif(not _AVAILABLE, reason=_WHY)]


def holds_for(predicate: Callable[[], bool], seconds: float) -> bool:
    """True if `predicate` stays true for the whole observation window."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.05)
    return True


def xdotool(*args: str) -> str:
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=10).stdout.strip()


class Screenshots:
    """Numbered full-screen shots in one folder per test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        self.count = 0
        print(f"\nscreenshots: {folder}")

    def take(self, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        subprocess.run(["/usr/bin/import", "-window", "root", str(path)], check=True, timeout=20,
                       capture_output=True)
        return path


class TrayApp:
    """`python -m ava_tray` (the tray app) in an isolated home, observed through its debug state file."""

    def __init__(self, env: dict[str, str], home: Path, *args: str) -> None:
        self.state_file = home / "tray-state.json"
        self.log = home / "ava.log"
        env = dict(env, AVA_TRAY_DEBUG_STATE=str(self.state_file))
        self.proc = subprocess.Popen([sys.executable, "-m", "ava_tray", "--log-level", "INFO", *args], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def wait(self, predicate: Callable[[dict[str, Any]], Any], timeout: float, what: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"AVA exited ({self.proc.returncode}) while waiting for {what}:\n"
                                     f"{self.log.read_text()[-3000:]}")
            state = self.state()
            return state if state and predicate(state) else None

        result: dict[str, Any] = poll_until(check, timeout, f"{what} (last state: {self.state()})")
        return result

    def icon_centre(self) -> tuple[int, int]:
        state = self.wait(lambda s: s["tray_visible"] and s["geometry"][2] > 0, 15, "the tray icon")
        x, y, w, h = state["geometry"]
        return x + w // 2, y + h // 2

    def click_icon(self, button: int) -> None:
        x, y = self.icon_centre()
        xdotool("mousemove", str(x), str(y), "click", str(button))

    def open_menu(self) -> None:
        """Right-click the icon until the popup menu is open (a click can land while a window is still
        taking focus), then wait for its window to be mapped."""
        self.wait(lambda s: not s["menu_visible"], 5, "the previous menu to close")
        for _ in range(3):
            self.click_icon(3)
            try:
                self.wait(lambda s: s["menu_visible"], 2, "the context menu")
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("a right click on the tray icon did not open the menu")

    def choose(self, *keys: str) -> None:
        """Navigate the open menu with the keyboard."""
        for key in keys:
            xdotool("key", key)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """An isolated HOME and XDG folders; the display, the session bus and PulseAudio are kept."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("QT_QPA_PLATFORM", "OPENAI_API_KEY", "AVA_REALTIME_URL")}
    for name, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                      ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        environment[name] = str(home / sub)
    environment["HOME"] = str(home)
    return environment


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    base = Path(os.environ.get("AVA_SCREENSHOT_DIR", REPO / "artifacts" / "tray-screenshots"))
    return Screenshots(base / request.node.name)


@pytest.fixture
def apps() -> Iterator[list[TrayApp]]:
    started: list[TrayApp] = []
    yield started
    for app in started:
        app.stop()


def test_demo_tray_icon_countdown_click_menu_history_and_quit(env: dict[str, str], home: Path,
                                                               shots: Screenshots, apps: list[TrayApp]) -> None:
    # Without rollover, so that the 5 s limit ends each session and the countdown shows.
    app = TrayApp(env, home, "--demo", "--session-limit", "5", "--no-rollover")
    apps.append(app)
    app.icon_centre()
    app.wait(lambda s: s["state"] == "Connected", 20, "the first demo session")
    shots.take("connected")

    counted = app.wait(lambda s: re.search(r"Reconnecting in (\d) s", s["tooltip"]), 20, "the countdown")
    assert re.match(r"AVA · Reconnecting in \d s \(attempt #2\) · session expired", counted["tooltip"])
    assert counted["icon"] == "reconnecting"
    seen = {counted["tooltip"]}
    x, y = app.icon_centre()
    xdotool("mousemove", str(x), str(y))  # hover: the tooltip shows on screen while it counts down
    hovered = False
    while "Reconnecting in" in app.state().get("tooltip", ""):
        seen.add(app.state()["tooltip"])
        if not hovered and len(seen) >= 2:
            shots.take("hover-tooltip-countdown")
            hovered = True
        time.sleep(0.05)
    numbers = sorted({int(m.group(1)) for t in seen if (m := re.search(r"in (\d) s", t))}, reverse=True)
    assert numbers[-2:] == [2, 1] or numbers[-1:] == [1], seen
    app.wait(lambda s: s["state"] == "Connected", 20, "the reconnected session")

    app.click_icon(1)
    app.wait(lambda s: s["windows"]["status"], 10, "the status window after a left click")
    poll_until(lambda: xdotool("search", "--onlyvisible", "--name", "AVA · Status"), 10,
               "xdotool to find the status window")
    shots.take("status-window")

    app.open_menu()
    shots.take("menu")
    # Enabled items: Restart now, Mute microphone, Status…, Conversation…, Reconnect history…
    app.choose("Down", "Down", "Down", "Down", "Down", "Return")
    app.wait(lambda s: s["windows"]["history"] and s["history_rows"] >= 1, 10, "the history window with a record")
    poll_until(lambda: xdotool("search", "--onlyvisible", "--name", "Reconnect history"), 10,
               "xdotool to find the history window")
    shots.take("history-window")

    app.open_menu()
    app.choose("Up", "Return")  # from the top, Up wraps to the last item: Quit
    started = time.monotonic()
    code = app.proc.wait(timeout=5)
    elapsed = time.monotonic() - started
    log = app.log.read_text()
    assert code == 0, log[-3000:]
    assert elapsed < 2.0, f"Quit took {elapsed:.2f} s"
    assert "AVA Tray quit" in log and "Traceback" not in log


def _keyring_available(env: dict[str, str]) -> bool:
    probe = subprocess.run([sys.executable, "-c", "import keyring, keyring.backends.fail as f; "
                            "print(isinstance(keyring.get_keyring(), f.Keyring))"],
                           env=env, capture_output=True, text=True, timeout=30)
    return probe.stdout.strip() == "False"


def _set_key(env: dict[str, str], key: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ava_tray", "--set-key"], env=env, input=key + "\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_rejected_key_error_icon_notification_no_retries_then_new_key_and_restart(
        env: dict[str, str], home: Path, shots: Screenshots, apps: list[TrayApp]) -> None:
    if not _keyring_available(env):
        pytest.skip("no Secret Service on the session bus: run under `bash scripts/with-services.sh`")
    sim_log = home / "simulator.log"
    sim_env = dict(env, AVA_SIM_KEY=GOOD_KEY)
    simulator = subprocess.Popen([sys.executable, "-m", "ava_tray.simulator", "--port", "0",
                                  "--api-key-env", "AVA_SIM_KEY"], env=sim_env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=sim_log.open("w"), text=True)
    try:
        assert simulator.stdout is not None
        line = simulator.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("ws://127.0.0.1:"), line

        def sessions() -> int:
            return sim_log.read_text().count("opened")

        _set_key(env, BAD_KEY)
        app = TrayApp(dict(env, AVA_REALTIME_URL=url), home)
        apps.append(app)
        app.icon_centre()
        state = app.wait(lambda s: s["state"] == "Error" and s["notifications"], 20,
                         "the Error state and its notification (which follows the icon)")
        assert state["icon"] == "error"
        assert state["tooltip"] == "AVA · Error: the API key was rejected"
        assert [n["title"] for n in state["notifications"]] == ["AVA stopped reconnecting"]
        shots.take("error-and-notification")
        assert sessions() == 1
        assert holds_for(lambda: sessions() == 1, 4.0), "AVA retried with a rejected key"

        _set_key(env, GOOD_KEY)
        app.open_menu()
        app.choose("Down", "Return")  # Restart now: the first enabled item
        app.wait(lambda s: s["state"] == "Connected", 20, "a session with the new key")
        assert sessions() == 2
        shots.take("connected-with-new-key")

        app.open_menu()
        app.choose("Up", "Return")
        assert app.proc.wait(timeout=5) == 0
    finally:
        simulator.terminate()
        simulator.wait(10)
        subprocess.run([sys.executable, "-m", "ava_tray", "--forget-key"], env=env, capture_output=True, timeout=30)
