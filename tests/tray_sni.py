"""AVA's tray as KDE, GNOME (AppIndicator) and Ubuntu show it: a StatusNotifierItem on D-Bus, read from the
desktop's side (`desktop_bus.Desktop`) for any `ava-tray` command, the development app or the installed one.

What a user of such a desktop notices: the icon appears; its picture and tooltip say connected, reconnecting
(with a countdown that runs down) or error; the menu offers Restart now, Reconnect history and Quit; Quit ends
AVA, closing its session normally (1000); an error also arrives as a desktop notification.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop_bus import Desktop, Item, session_env
from waits import poll_until

DEMO_SESSION_LIMIT_S = 6
REQUIRED_MENU = ("Restart now", "Reconnect history…", "Quit")
GOOD_KEY = "sk-test-sni-" + "Gd4kQ9" * 5
BAD_KEY = "sk-test-sni-" + "Bd0xZ1" * 5
REJECTED_TOOLTIP = "AVA · Error: the API key was rejected"
ERROR_NOTICE = "AVA stopped reconnecting"


def isolated_env(base: dict[str, str], home: Path, bus_address: str) -> dict[str, str]:
    """`base` (display, PulseAudio) with a fresh HOME and XDG folders and the private bus as the session bus."""
    env = {k: v for k, v in session_env(base, bus_address).items() if k not in ("OPENAI_API_KEY", "AVA_REALTIME_URL")}
    for name, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                      ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / sub)
    env["HOME"] = str(home)
    return env


@dataclass
class App:
    """An `ava-tray` process with its log in a file."""

    command: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> None:
        """Fail at once (with the log) if AVA has exited."""
        if self.proc.poll() is not None:
            raise AssertionError(f"AVA exited ({self.proc.returncode}):\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Observed:
    """What the desktop saw, for the report and for comparing the error icon with the others."""

    icons: dict[str, bytes] = field(default_factory=dict)
    tooltips: list[str] = field(default_factory=list)
    registered_after_s: float = 0.0


def _wait_item(app: App, desktop: Desktop, started: float, observed: Observed, known: int) -> Item:
    """The item this app registers (the watcher's list had `known` entries before it started)."""
    def registered() -> Item | None:
        app.running()
        return desktop.items[-1] if len(desktop.items) > known else None

    item: Item = poll_until(registered, 30, "AVA's StatusNotifierItem to register with the watcher")
    observed.registered_after_s = time.monotonic() - started
    return item


def _wait_tooltip(app: App, desktop: Desktop, item: Item, predicate: Callable[[str], Any], timeout: float,
                  what: str, observed: Observed) -> str:
    def check() -> str | None:
        app.running()
        tooltip = desktop.tooltip(item)
        if not observed.tooltips or observed.tooltips[-1] != tooltip:
            observed.tooltips.append(tooltip)
        return tooltip if predicate(tooltip) else None

    try:
        found: str = poll_until(check, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; tooltips seen: {observed.tooltips}") from None
    return found


def _drawn(pixels: bytes) -> int:
    """Pixels with some opacity in an ARGB32 (network byte order) IconPixmap: a drawn icon has many."""
    return sum(1 for alpha in pixels[0::4] if alpha)


def _icon(desktop: Desktop, item: Item) -> bytes:
    name, pixels = desktop.icon(item)
    assert pixels or name, "the item has neither an IconPixmap nor an IconName"
    if pixels:
        assert _drawn(pixels) > len(pixels) // 4 // 10, "the IconPixmap is (nearly) transparent"
    return pixels or name.encode()


def _check_menu(desktop: Desktop, item: Item) -> None:
    entries = {entry.label: entry for entry in desktop.menu(item) if not entry.separator}
    for label in REQUIRED_MENU:
        assert label in entries, f"the exported menu lacks {label!r}: {list(entries)}"
        assert entries[label].enabled and entries[label].visible, f"{label!r} is disabled or hidden"


def _quit(app: App, desktop: Desktop, item: Item) -> str:
    """Quit from the exported menu; AVA must end with 0. Returns its log."""
    quit_entry = next(e for e in desktop.menu(item) if e.label == "Quit")
    clicked = time.monotonic()
    desktop.click(item, quit_entry)
    code = app.proc.wait(timeout=10)
    took = time.monotonic() - clicked
    log = app.output()
    assert code == 0, f"Quit from the D-Bus menu ended AVA with {code}:\n{log[-3000:]}"
    assert took < 5, f"Quit took {took:.1f} s"
    assert "AVA Tray quit" in log and "Traceback" not in log, log[-3000:]
    return log


def check_demo(command: list[str], env: dict[str, str], folder: Path, desktop: Desktop) -> Observed:
    """`ava-tray --demo` with sessions that expire: registers, connected, a countdown that runs down,
    connected again, the menu, then Quit from the menu (exit 0, the session closed 1000)."""
    observed = Observed()
    known, started = len(desktop.items), time.monotonic()
    app = App([*command, "--demo", "--log-level", "INFO", "--session-limit", str(DEMO_SESSION_LIMIT_S),
               "--no-rollover"], env, folder / "demo.log")
    try:
        item = _wait_item(app, desktop, started, observed, known)
        _wait_tooltip(app, desktop, item, lambda t: t.startswith("AVA · Connected"), 30, "Connected", observed)
        observed.icons["connected"] = _icon(desktop, item)
        _check_menu(desktop, item)

        countdown = re.compile(r"^AVA · Reconnecting in (\d+) s")
        _wait_tooltip(app, desktop, item, countdown.search, DEMO_SESSION_LIMIT_S + 10, "the countdown", observed)
        observed.icons["reconnecting"] = _icon(desktop, item)
        assert observed.icons["reconnecting"] != observed.icons["connected"], "reconnecting looks like connected"
        _wait_tooltip(app, desktop, item, lambda t: not countdown.search(t), 15, "the countdown to end", observed)
        numbers = [int(m.group(1)) for t in observed.tooltips if (m := countdown.search(t))]
        assert len(numbers) >= 2 and numbers == sorted(numbers, reverse=True) and numbers[-1] == 1, \
            f"the countdown did not run down to 1: {observed.tooltips}"

        _wait_tooltip(app, desktop, item, lambda t: t.startswith("AVA · Connected"), 15, "Connected again",
                      observed)
        assert _icon(desktop, item) == observed.icons["connected"]
        log = _quit(app, desktop, item)
    finally:
        app.stop()
    assert re.search(r"network information from the \w+ backend", log), "no network information backend loaded"
    sessions = re.findall(r"simulated session (\S+) closed \((\d+)", log)
    assert sessions and sessions[-1][1] == "1000", f"the last session did not close 1000: {sessions}"
    return observed


def check_rejected_key(command: list[str], env: dict[str, str], folder: Path, desktop: Desktop,
                       observed: Observed) -> None:
    """AVA against a simulator that rejects its key: the Error icon and tooltip, a desktop notification,
    then Quit from the menu."""
    simulator = subprocess.Popen([sys.executable, "-m", "ava_tray.simulator", "--port", "0", "--api-key-env",
                                  "AVA_SIM_KEY"], env=dict(os.environ, AVA_SIM_KEY=GOOD_KEY),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=(folder / "simulator.log").open("w"), text=True)
    app: App | None = None
    try:
        assert simulator.stdout is not None
        url = simulator.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("ws://127.0.0.1:"), url
        known, started = len(desktop.items), time.monotonic()
        app = App([*command, "--log-level", "INFO"], dict(env, OPENAI_API_KEY=BAD_KEY, AVA_REALTIME_URL=url),
                  folder / "error.log")
        item = _wait_item(app, desktop, started, observed, known)
        _wait_tooltip(app, desktop, item, lambda t: t == REJECTED_TOOLTIP, 30, "the Error tooltip", observed)
        error_icon = _icon(desktop, item)
        for state, icon in observed.icons.items():
            assert error_icon != icon, f"the error icon looks like the {state} one"
        observed.icons["error"] = error_icon
        notice = poll_until(lambda: [n for n in desktop.notifications if n.summary == ERROR_NOTICE], 10,
                            f"the notification {ERROR_NOTICE!r}")
        assert "API key" in notice[0].body, notice
        _quit(app, desktop, item)
    finally:
        if app is not None:
            app.stop()
        simulator.terminate()
        simulator.wait(10)


def dev_command() -> list[str]:
    """The development app, as `python -m ava_tray` from this interpreter."""
    return [sys.executable, "-m", "ava_tray"]
