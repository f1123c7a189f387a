"""A global shortcut on Windows and macOS through pynput's keyboard listener (a low-level hook on Windows, a
Quartz event tap on macOS).

Those hooks see every key without taking it, so a shortcut another program holds cannot be detected there (it
fires in both). pynput runs its listener on a thread of its own; presses are handed to the loop. This path is
not exercised by the test suite (Linux only); `ChordTracker`, which decides when the chord is down, is.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from ava_tray.hotkey.keys import Chord, ChordTracker, ShortcutUnavailable

logger = logging.getLogger(__name__)

_MODIFIER_KEYS = {"ctrl": "ctrl", "ctrl_l": "ctrl", "ctrl_r": "ctrl", "alt": "alt", "alt_l": "alt", "alt_r": "alt",
                  "alt_gr": "alt", "shift": "shift", "shift_l": "shift", "shift_r": "shift", "cmd": "meta",
                  "cmd_l": "meta", "cmd_r": "meta"}
_NAMED = {"page_up": "pageup", "page_down": "pagedown", "print_screen": "print", "scroll_lock": "scrolllock",
          "enter": "return", "esc": "escape"}


def key_name(key: Any) -> str | None:
    """A pynput key (already made canonical by its listener) as `ChordTracker` names keys."""
    name = getattr(key, "name", None)
    if isinstance(name, str):  # a special key: Key.ctrl_l, Key.f8, Key.space
        return _MODIFIER_KEYS.get(name) or _NAMED.get(name, name)
    char = getattr(key, "char", None)
    if isinstance(char, str) and char:
        return char.lower()
    vk = getattr(key, "vk", None)
    if isinstance(vk, int) and (0x30 <= vk <= 0x39 or 0x41 <= vk <= 0x5A):  # Windows: digits and letters
        return chr(vk).lower()
    return None


class NativeShortcut:
    """One chord watched with pynput; `on_press`/`on_release` run on the loop."""

    name = "Windows keyboard hook" if sys.platform == "win32" else "macOS event tap"

    def __init__(self) -> None:
        self._listener: Any = None

    async def bind(self, chord: Chord, on_press: Callable[[], None], on_release: Callable[[], None]) -> str:
        """Start watching for `chord`; returns how it is held. Raises ShortcutUnavailable."""
        try:
            from pynput import keyboard
        except Exception as exc:  # not installed, or no backend for this desktop
            raise ShortcutUnavailable(f"the keyboard library did not load ({exc}): use the tray menu") from exc
        loop = asyncio.get_running_loop()
        tracker = ChordTracker(chord)
        listener: Any = None

        def pressed(key: Any) -> None:
            name = key_name(listener.canonical(key)) if key is not None else None
            if name is not None and tracker.press(name):
                loop.call_soon_threadsafe(on_press)

        def released(key: Any) -> None:
            name = key_name(listener.canonical(key)) if key is not None else None
            if name is not None and tracker.release(name):
                loop.call_soon_threadsafe(on_release)

        listener = keyboard.Listener(on_press=pressed, on_release=released)
        listener.start()
        listener.wait()
        if sys.platform == "darwin" and not getattr(listener, "IS_TRUSTED", True):
            listener.stop()
            raise ShortcutUnavailable("macOS has not allowed AVA to watch the keyboard: allow it under System "
                                      "Settings → Privacy & Security → Accessibility, or use the menu bar icon")
        self._listener = listener
        logger.info("global shortcut %s watched by %s", chord, self.name)
        return f"{chord} ({self.name})"

    async def close(self) -> None:
        """Stop the listener; idempotent."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
