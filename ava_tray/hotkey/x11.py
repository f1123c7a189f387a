"""A global shortcut on X11: XGrabKey on the root window through python-xlib, read on the asyncio loop.

A passive grab delivers the key to AVA alone (it does not also type into the focused window), and X answers
BadAccess when another client already grabbed the same key and modifiers, so a taken shortcut is reported
rather than silently dead. The grab is repeated with Caps Lock and Num Lock, which X counts as modifiers.
No thread: the display's socket is watched with `loop.add_reader`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ava_tray.hotkey.keys import Chord, ShortcutTaken, ShortcutUnavailable

logger = logging.getLogger(__name__)

RELEASE_SETTLE_S = 0.04
"""A release followed this soon by a press of the same key is X's auto-repeat, not the user letting go."""


class X11Shortcut:
    """One grabbed chord on the default X display; `on_press`/`on_release` run on the loop."""

    name = "X11"

    def __init__(self, display_name: str | None = None) -> None:
        self._display_name = display_name
        self._display: Any = None
        self._grabs: list[tuple[int, int]] = []
        self._keycode = 0
        self._held = False
        self._release: asyncio.TimerHandle | None = None
        self._on_press: Callable[[], None] = lambda: None
        self._on_release: Callable[[], None] = lambda: None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def bind(self, chord: Chord, on_press: Callable[[], None], on_release: Callable[[], None]) -> str:
        """Grab `chord`; returns how it is held. Raises ShortcutTaken or ShortcutUnavailable."""
        from Xlib import XK, X, error
        from Xlib import display as xdisplay

        try:
            display = xdisplay.Display(self._display_name)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
            raise ShortcutUnavailable(f"the X display could not be opened ({exc}): use the tray menu") from exc
        keysym = XK.string_to_keysym(chord.x11_keysym)
        keycode = display.keysym_to_keycode(keysym) if keysym else 0
        if not keycode:
            display.close()
            raise ShortcutUnavailable(f"this keyboard has no key for “{chord}”: choose another shortcut in Settings")
        modifiers = 0
        for mask in chord.x11_modifiers:
            modifiers |= getattr(X, mask)
        root = display.screen().root
        caught = error.CatchError(error.BadAccess)
        grabs = [(keycode, modifiers | extra) for extra in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask)]
        for code, mods in grabs:
            root.grab_key(code, mods, True, X.GrabModeAsync, X.GrabModeAsync, onerror=caught)
        display.sync()
        if caught.get_error() is not None:
            for code, mods in grabs:
                root.ungrab_key(code, mods)
            display.close()
            raise ShortcutTaken(f"{chord} is already used by another program: choose another shortcut in Settings")
        self._display, self._grabs, self._keycode = display, grabs, keycode
        self._on_press, self._on_release = on_press, on_release
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(display.fileno(), self._drain)
        logger.info("global shortcut %s grabbed on X11 (keycode %d)", chord, keycode)
        return f"{chord} (X11)"

    def _drain(self) -> None:
        """The display's socket is readable: handle every event queued."""
        from Xlib import X

        display = self._display
        if display is None:
            return
        try:
            while display.pending_events():
                event = display.next_event()
                if getattr(event, "detail", None) != self._keycode:
                    continue
                if event.type == X.KeyPress:
                    self._pressed()
                elif event.type == X.KeyRelease:
                    self._released()
        except Exception as exc:  # the X connection broke: the shortcut is gone, AVA goes on
            logger.warning("the X display closed: the global shortcut no longer works (%s)", exc)
            self._stop_reading()

    def _pressed(self) -> None:
        if self._release is not None:  # auto-repeat: the key never came up
            self._release.cancel()
            self._release = None
            return
        if not self._held:
            self._held = True
            self._on_press()

    def _released(self) -> None:
        if self._held and self._loop is not None and self._release is None:
            self._release = self._loop.call_later(RELEASE_SETTLE_S, self._let_go)

    def _let_go(self) -> None:
        self._release = None
        self._held = False
        self._on_release()

    def _stop_reading(self) -> None:
        if self._loop is not None and self._display is not None:
            try:
                self._loop.remove_reader(self._display.fileno())
            except Exception as exc:  # a socket already gone
                logger.debug("remove_reader: %s", exc)

    async def close(self) -> None:
        """Ungrab and close the display; idempotent."""
        display, self._display = self._display, None
        if self._release is not None:
            self._release.cancel()
            self._release = None
        if display is None:
            return
        if self._loop is not None:
            try:
                self._loop.remove_reader(display.fileno())
            except Exception as exc:
                logger.debug("remove_reader: %s", exc)
        try:
            root = display.screen().root
            for code, mods in self._grabs:
                root.ungrab_key(code, mods)
            display.sync()
            display.close()
        except Exception as exc:  # the display may be gone already
            logger.debug("closing the X display: %s", exc)


def probe_grab(display_name: str | None = None) -> str:
    """Grab and let go of an unlikely chord (Ctrl+Alt+Shift+Meta+F12) to show that grabbing works here; returns
    the X server's vendor. Raises ShortcutUnavailable (no display, or python-xlib missing) or ShortcutTaken."""
    try:
        from Xlib import XK, X, error
        from Xlib import display as xdisplay
    except ImportError as exc:
        raise ShortcutUnavailable(f"python-xlib is missing ({exc})") from exc
    try:
        display = xdisplay.Display(display_name)
    except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
        raise ShortcutUnavailable(f"the X display could not be opened ({exc})") from exc
    try:
        keycode = display.keysym_to_keycode(XK.string_to_keysym("F12"))
        modifiers = X.ControlMask | X.Mod1Mask | X.ShiftMask | X.Mod4Mask
        caught = error.CatchError(error.BadAccess)
        root = display.screen().root
        root.grab_key(keycode, modifiers, True, X.GrabModeAsync, X.GrabModeAsync, onerror=caught)
        display.sync()
        if caught.get_error() is not None:
            raise ShortcutTaken("another program holds Ctrl+Alt+Shift+Meta+F12")
        root.ungrab_key(keycode, modifiers)
        display.sync()
        return str(display.display.info.vendor)
    finally:
        display.close()
