"""AVA's global shortcut: mute from anywhere, or hold to talk (Qt-free, on the asyncio loop).

One backend per kind of desktop: X11 grabs the key (python-xlib), Wayland asks the XDG desktop portal's
GlobalShortcuts interface (dbus-fast), Windows and macOS watch the keyboard through pynput. Where none works the
state says so in a sentence ("not available on this desktop; use the tray menu"), never silence.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from ava_tray.hotkey.keys import Chord, ShortcutError, ShortcutTaken, ShortcutUnavailable, parse_chord

logger = logging.getLogger(__name__)

MODES: Final = ("toggle", "push_to_talk")
"""Settings.shortcut_mode: the shortcut toggles mute, or the microphone is open only while it is held."""
MODE_LABELS: Final = {"toggle": "Toggle mute", "push_to_talk": "Push to talk (hold)"}
NO_DISPLAY = "not available on this desktop (no display); use the tray menu"


class ShortcutBackend(Protocol):
    """Binds one chord for the desktop; press and release callbacks run on the event loop."""

    name: str

    async def bind(self, chord: Chord, on_press: Callable[[], None], on_release: Callable[[], None]) -> str:
        """Hold `chord`; returns how it is held ("Ctrl+Alt+A (X11)"). Raises ShortcutTaken/ShortcutUnavailable."""
        ...

    async def close(self) -> None:
        """Let the chord go; idempotent."""
        ...


def backend_for_desktop(environ: Mapping[str, str] = os.environ, platform: str = sys.platform
                        ) -> ShortcutBackend | str:
    """The backend for this desktop, or a sentence saying why there is none.

    On Wayland the portal is the only way (an X11 grab through XWayland sees keys only while an X11 window has
    the focus), so a Wayland session never falls back to X11.
    """
    if platform in ("win32", "darwin"):
        from ava_tray.hotkey.native import NativeShortcut

        return NativeShortcut()
    if environ.get("WAYLAND_DISPLAY") or environ.get("XDG_SESSION_TYPE") == "wayland":
        from ava_tray.hotkey.portal import PortalShortcut

        return PortalShortcut()
    if environ.get("DISPLAY"):
        from ava_tray.hotkey.x11 import X11Shortcut

        return X11Shortcut()
    return NO_DISPLAY


@dataclass(frozen=True)
class ShortcutState:
    """Whether the shortcut works, and a sentence for Settings, the status window and the self-test."""

    active: bool
    text: str
    problem: bool = False
    """True when the user asked for a shortcut that does not work (taken, unavailable): worth a notification."""


class MicrophoneControls(Protocol):
    """What the shortcut steers: mute (toggle mode) and push-to-talk (held)."""

    @property
    def muted(self) -> bool: ...

    def set_muted(self, muted: bool) -> None: ...

    def hold_to_talk(self, held: bool) -> None: ...


class GlobalShortcut:
    """The one global shortcut, bound to `controls` in the chosen mode; `apply` rebinds after Settings change."""

    def __init__(self, controls: MicrophoneControls,
                 backend_factory: Callable[[], ShortcutBackend | str] = backend_for_desktop) -> None:
        self.controls = controls
        self._factory = backend_factory
        self._backend: ShortcutBackend | None = None
        self.mode = "toggle"
        self.state = ShortcutState(False, "off")
        self.presses = 0

    async def apply(self, text: str, mode: str) -> ShortcutState:
        """Bind shortcut `text` ("Ctrl+Alt+A"; empty: none) in `mode`; returns (and keeps) the state."""
        await self.close()
        self.mode = mode if mode in MODES else "toggle"
        try:
            chord = parse_chord(text)
        except ShortcutError as exc:
            return self._set(ShortcutState(False, str(exc), problem=True))
        if chord is None:
            return self._set(ShortcutState(False, "off"))
        backend = self._factory()
        if isinstance(backend, str):  # no desktop at all: nothing to tell a user about
            return self._set(ShortcutState(False, backend, problem=backend != NO_DISPLAY))
        try:
            held = await backend.bind(chord, self._pressed, self._released)
        except (ShortcutTaken, ShortcutUnavailable) as exc:
            return self._set(ShortcutState(False, str(exc), problem=True))
        self._backend = backend
        what = "hold to talk" if self.mode == "push_to_talk" else "mutes and unmutes"
        return self._set(ShortcutState(True, f"{held}: {what}"))

    def _set(self, state: ShortcutState) -> ShortcutState:
        self.state = state
        (logger.warning if state.problem else logger.info)("global shortcut: %s", state.text)
        return state

    def _pressed(self) -> None:
        self.presses += 1
        if self.mode == "push_to_talk":
            self.controls.hold_to_talk(True)
        else:
            self.controls.set_muted(not self.controls.muted)

    def _released(self) -> None:
        if self.mode == "push_to_talk":
            self.controls.hold_to_talk(False)

    async def close(self) -> None:
        """Let the shortcut go (and the microphone, if it was held); idempotent."""
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.close()
            if self.mode == "push_to_talk":
                self.controls.hold_to_talk(False)
        self.state = ShortcutState(False, "off")


__all__ = ["MODES", "MODE_LABELS", "NO_DISPLAY", "GlobalShortcut", "ShortcutBackend", "ShortcutState",
           "backend_for_desktop"]
