"""A global shortcut as data: parsed from Qt's portable text ("Ctrl+Alt+A") and spelt for each backend (Qt-free)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MODIFIERS = ("ctrl", "alt", "shift", "meta")
"""In the order they are written; "meta" is the Windows/Super/Command key."""
_MODIFIER_NAMES = {"ctrl": "ctrl", "control": "ctrl", "alt": "alt", "shift": "shift", "meta": "meta",
                   "super": "meta", "win": "meta", "cmd": "meta", "command": "meta"}
_NAMED_KEYS = {"space": "space", "pause": "pause", "insert": "insert", "ins": "insert", "home": "home",
               "end": "end", "pgup": "pageup", "pageup": "pageup", "pgdown": "pagedown", "pagedown": "pagedown",
               "print": "print", "scrolllock": "scrolllock", "return": "return", "enter": "return", "tab": "tab",
               "backspace": "backspace", "del": "delete", "delete": "delete", "esc": "escape", "escape": "escape",
               "up": "up", "down": "down", "left": "left", "right": "right"}
_FUNCTION_KEYS = {f"f{n}" for n in range(1, 25)}
_ALONE_OK = _FUNCTION_KEYS | {"pause", "scrolllock", "print", "insert"}
"""Keys that may be a shortcut without a modifier (they type nothing)."""
_QT_NAMES = {"space": "Space", "pause": "Pause", "insert": "Ins", "home": "Home", "end": "End", "pageup": "PgUp",
             "pagedown": "PgDown", "print": "Print", "scrolllock": "ScrollLock", "return": "Return", "tab": "Tab",
             "backspace": "Backspace", "delete": "Del", "escape": "Esc", "up": "Up", "down": "Down",
             "left": "Left", "right": "Right"}
_X11_NAMES = {"space": "space", "pause": "Pause", "insert": "Insert", "home": "Home", "end": "End",
              "pageup": "Prior", "pagedown": "Next", "print": "Print", "scrolllock": "Scroll_Lock",
              "return": "Return", "tab": "Tab", "backspace": "BackSpace", "delete": "Delete", "escape": "Escape",
              "up": "Up", "down": "Down", "left": "Left", "right": "Right"}


class ShortcutError(ValueError):
    """A shortcut that cannot be used; the message says why in a sentence."""


class ShortcutTaken(Exception):
    """Another program holds this shortcut; the message says what to do."""


class ShortcutUnavailable(Exception):
    """Global shortcuts cannot work here; the message says why and what to use instead."""


@dataclass(frozen=True)
class Chord:
    """Modifiers held, then one key (lower case: "a", "7", "f8", "space")."""

    modifiers: frozenset[str]
    key: str

    def __str__(self) -> str:
        """As Qt writes it, and as Settings shows it: `Ctrl+Alt+A`."""
        names = [m.capitalize() for m in MODIFIERS if m in self.modifiers]
        return "+".join([*names, _QT_NAMES.get(self.key, self.key.upper())])

    @property
    def x11_modifiers(self) -> list[str]:
        """The X11 modifier masks (names of `Xlib.X` constants)."""
        masks = {"ctrl": "ControlMask", "alt": "Mod1Mask", "shift": "ShiftMask", "meta": "Mod4Mask"}
        return [masks[m] for m in MODIFIERS if m in self.modifiers]

    @property
    def x11_keysym(self) -> str:
        """The X11 keysym name of the key (`a`, `F8`, `space`)."""
        if self.key in _FUNCTION_KEYS:
            return self.key.upper()
        return _X11_NAMES.get(self.key, self.key)

    @property
    def portal_trigger(self) -> str:
        """The shortcut as the XDG "shortcuts" format spells a preferred trigger: `CTRL+ALT+a`."""
        names = {"ctrl": "CTRL", "alt": "ALT", "shift": "SHIFT", "meta": "LOGO"}
        return "+".join([*(names[m] for m in MODIFIERS if m in self.modifiers), self.x11_keysym])


def parse_chord(text: str) -> Chord | None:
    """`Ctrl+Alt+A` → a Chord; empty → None (no shortcut); raises `ShortcutError` for what cannot be one."""
    text = text.strip()
    if not text:
        return None
    if "," in text:
        raise ShortcutError(f"“{text}” is a sequence of several shortcuts: choose one key with its modifiers.")
    parts = text.split("+")
    if parts[-1] == "" and len(parts) > 1:  # "Ctrl++": the plus key itself
        parts = [*parts[:-2], "+"]
    *mods, key = (part.strip() for part in parts)
    modifiers = set()
    for mod in mods:
        name = _MODIFIER_NAMES.get(mod.lower())
        if name is None:
            raise ShortcutError(f"“{mod}” in “{text}” is not a modifier (Ctrl, Alt, Shift or Meta).")
        modifiers.add(name)
    lowered = key.lower()
    if lowered in _MODIFIER_NAMES:
        raise ShortcutError(f"“{text}” has no key besides its modifiers: add a letter, a digit or a function key.")
    if lowered in _NAMED_KEYS:
        lowered = _NAMED_KEYS[lowered]
    elif not (lowered in _FUNCTION_KEYS or (len(lowered) == 1 and lowered.isascii() and lowered.isalnum())):
        raise ShortcutError(f"“{key}” in “{text}” cannot be a global shortcut here: use a letter, a digit, a "
                            "function key, Space or Pause.")
    chord = Chord(frozenset(modifiers), lowered)
    if not modifiers & {"ctrl", "alt", "meta"} and lowered not in _ALONE_OK:
        raise ShortcutError(f"“{text}” would take a key you type with: add Ctrl, Alt or Meta (function keys and "
                            "Pause may stand alone).")
    return chord


class ChordTracker:
    """Follows key presses and releases (by name) and says when the chord goes down and comes up.

    For backends that see every key (pynput's hooks) rather than only the grabbed one; a held key's
    auto-repeat presses are not new activations.
    """

    def __init__(self, chord: Chord) -> None:
        self.chord = chord
        self._held: set[str] = set()
        self.active = False

    def press(self, name: str) -> bool:
        """`name` went down; True when the chord has just become complete."""
        self._held.add(name)
        if not self.active and name == self.chord.key and self.chord.modifiers <= self._held:
            self.active = True
            return True
        return False

    def release(self, name: str) -> bool:
        """`name` came up; True when that ends an active chord."""
        self._held.discard(name)
        if self.active and (name == self.chord.key or name in self.chord.modifiers):
            self.active = False
            return True
        return False
