"""The global shortcut's backends against real desktop parts: an X11 grab on Xvfb pressed with xdotool (and a
second client refused with BadAccess), and the portal path against a STAND-IN GlobalShortcuts portal on a
private D-Bus session bus (no real portal runs headless: see tests/portal_standin.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from desktop_bus import dbus_daemon_available, private_session_bus
from portal_standin import StandInPortal
from waits import wait_until

from ava_tray.hotkey.keys import ShortcutTaken, ShortcutUnavailable, parse_chord
from ava_tray.hotkey.portal import SHORTCUT_ID, PortalShortcut
from ava_tray.hotkey.x11 import X11Shortcut

needs_x = pytest.mark.skipif(not os.environ.get("DISPLAY") or not shutil.which("xdotool"),
                             reason="no X display: run under `bash scripts/with-services.sh` (Xvfb)")
needs_bus = pytest.mark.skipif(not dbus_daemon_available(), reason="dbus-daemon is not installed")
CHORD = parse_chord("Ctrl+Alt+A")
assert CHORD is not None


async def xdotool(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("xdotool", *args)
    assert await process.wait() == 0


@needs_x
async def test_x11_press_and_release_reach_the_grab_and_a_second_program_is_refused() -> None:
    seen: list[str] = []
    first = X11Shortcut()
    held = await first.bind(CHORD, lambda: seen.append("press"), lambda: seen.append("release"))
    assert held == "Ctrl+Alt+A (X11)"
    try:
        other = X11Shortcut()  # another X client, as another program would be
        with pytest.raises(ShortcutTaken, match="already used by another program"):
            await other.bind(CHORD, lambda: None, lambda: None)

        await xdotool("key", "ctrl+alt+a")
        await wait_until(lambda: seen == ["press", "release"], what="one press and one release")
        await xdotool("keydown", "ctrl+alt+a")
        await wait_until(lambda: len(seen) == 3, what="the key held down")
        await asyncio.sleep(0.8)  # hold it (the stimulus): X auto-repeat must not count as presses
        assert seen == ["press", "release", "press"]
        await xdotool("keyup", "ctrl+alt+a")
        await wait_until(lambda: seen[-1] == "release", what="the key let go")
        assert seen == ["press", "release", "press", "release"]
    finally:
        await first.close()
    again = X11Shortcut()  # let go: free for others
    assert await again.bind(CHORD, lambda: None, lambda: None)
    await again.close()


@pytest.fixture
def bus_address(tmp_path: Path) -> Iterator[str]:
    with private_session_bus(tmp_path / "bus") as address:
        yield address


@needs_bus
async def test_the_portal_binds_the_preferred_trigger_and_its_signals_press_and_release(bus_address: str) -> None:
    portal = StandInPortal(bus_address)
    seen: list[str] = []
    shortcut = PortalShortcut(bus_address)
    try:
        held = await shortcut.bind(CHORD, lambda: seen.append("press"), lambda: seen.append("release"))
        assert held == "CTRL + ALT + a (desktop portal)"
        assert portal.bindings() == {SHORTCUT_ID: "CTRL+ALT+a"}
        portal.press(SHORTCUT_ID)
        await wait_until(lambda: seen == ["press"], what="Activated to press")
        portal.release(SHORTCUT_ID)
        await wait_until(lambda: seen == ["press", "release"], what="Deactivated to release")
        await shortcut.close()
        await wait_until(lambda: portal.bindings() == {}, what="the session to be closed")
    finally:
        await shortcut.close()
        portal.close()


@needs_bus
@pytest.mark.parametrize(("offer", "answer", "error", "says"), [
    (False, 0, ShortcutUnavailable, "not available on this desktop"),
    (True, 1, ShortcutUnavailable, "dialog was cancelled"),
    (True, 2, ShortcutTaken, r"did not bind Ctrl\+Alt\+A"),
])
async def test_a_desktop_without_the_portal_or_that_refuses_says_so(bus_address: str, offer: bool, answer: int,
                                                                     error: type[Exception], says: str) -> None:
    portal = StandInPortal(bus_address, offer=offer, answer=answer)
    try:
        with pytest.raises(error, match=says):
            await PortalShortcut(bus_address).bind(CHORD, lambda: None, lambda: None)
    finally:
        portal.close()


async def test_no_session_bus_at_all_says_so(tmp_path: Path) -> None:
    with pytest.raises(ShortcutUnavailable, match="no session bus"):
        await PortalShortcut(f"unix:path={tmp_path}/nothing-here").bind(CHORD, lambda: None, lambda: None)
