"""The global shortcut as data and as steering: parsing and spelling per backend, the chord tracker, the
façade's sentences (taken, unavailable, off) and what a press does in each mode; push-to-talk in the engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ava_tray.engine import AvaEngine
from ava_tray.history import ReconnectHistory
from ava_tray.hotkey import NO_DISPLAY, GlobalShortcut, backend_for_desktop
from ava_tray.hotkey.keys import Chord, ChordTracker, ShortcutError, ShortcutTaken, ShortcutUnavailable, parse_chord
from ava_tray.settings import Settings


def test_parsing_and_spelling_for_each_backend() -> None:
    chord = parse_chord("Ctrl+Alt+A")
    assert chord == Chord(frozenset({"ctrl", "alt"}), "a")
    assert str(chord) == "Ctrl+Alt+A"
    assert chord.x11_keysym == "a" and chord.x11_modifiers == ["ControlMask", "Mod1Mask"]
    assert chord.portal_trigger == "CTRL+ALT+a"
    f8 = parse_chord("Meta+Shift+F8")
    assert f8 is not None and str(f8) == "Shift+Meta+F8" and f8.portal_trigger == "SHIFT+LOGO+F8"
    space = parse_chord("Ctrl+Space")
    assert space is not None and space.x11_keysym == "space"
    assert parse_chord("Pause") == Chord(frozenset(), "pause")  # types nothing: may stand alone
    assert parse_chord("") is None


@pytest.mark.parametrize(("text", "says"), [("A", "add Ctrl, Alt or Meta"), ("Ctrl+Alt", "no key besides"),
                                            ("Hyper+A", "not a modifier"), ("Ctrl+A, Ctrl+B", "several"),
                                            ("Ctrl+é", "cannot be a global shortcut")])
def test_what_cannot_be_a_shortcut_says_why(text: str, says: str) -> None:
    with pytest.raises(ShortcutError, match=says):
        parse_chord(text)
    assert any(says in problem for problem in Settings(shortcut=text).problems())


def test_the_chord_tracker_fires_once_per_hold() -> None:
    tracker = ChordTracker(Chord(frozenset({"ctrl", "alt"}), "a"))
    assert not tracker.press("a")  # the key alone
    tracker.release("a")
    assert not tracker.press("ctrl") and not tracker.press("alt")
    assert tracker.press("a") and tracker.active
    assert not tracker.press("a")  # auto-repeat
    assert tracker.release("alt") and not tracker.active
    assert not tracker.release("a")


def test_the_desktop_decides_the_backend() -> None:
    assert type(backend_for_desktop({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, "linux")).__name__ \
        == "PortalShortcut"
    assert type(backend_for_desktop({"DISPLAY": ":0"}, "linux")).__name__ == "X11Shortcut"
    assert backend_for_desktop({}, "linux") == NO_DISPLAY
    assert type(backend_for_desktop({}, "win32")).__name__ == "NativeShortcut"


class Controls:
    def __init__(self) -> None:
        self.muted = False
        self.held: list[bool] = []

    def set_muted(self, muted: bool) -> None:
        self.muted = muted

    def hold_to_talk(self, held: bool) -> None:
        self.held.append(held)


class FakeBackend:
    """Binds by remembering the callbacks, or fails as told."""

    name = "fake"

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.press: Callable[[], None] = lambda: None
        self.release: Callable[[], None] = lambda: None
        self.closed = 0

    async def bind(self, chord: Chord, on_press: Callable[[], None], on_release: Callable[[], None]) -> str:
        if self.error is not None:
            raise self.error
        self.press, self.release = on_press, on_release
        return f"{chord} (fake)"

    async def close(self) -> None:
        self.closed += 1


async def test_toggle_mode_mutes_and_unmutes_and_push_to_talk_holds() -> None:
    controls, backend = Controls(), FakeBackend()
    shortcut = GlobalShortcut(controls, lambda: backend)
    state = await shortcut.apply("Ctrl+Alt+A", "toggle")
    assert state.active and state.text == "Ctrl+Alt+A (fake): mutes and unmutes"
    backend.press()
    backend.release()
    assert controls.muted
    backend.press()
    assert not controls.muted
    state = await shortcut.apply("F8", "push_to_talk")
    assert backend.closed == 1 and state.text == "F8 (fake): hold to talk"
    backend.press()
    backend.release()
    assert controls.held == [True, False] and not controls.muted
    await shortcut.close()
    assert controls.held[-1] is False and shortcut.state.text == "off"


@pytest.mark.parametrize("error", [ShortcutTaken("Ctrl+Alt+A is already used by another program: choose another "
                                                 "shortcut in Settings"),
                                   ShortcutUnavailable("not available on this desktop (it offers no GlobalShortcuts "
                                                       "portal); use the tray menu")])
async def test_a_shortcut_that_cannot_work_is_a_problem_in_words(error: Exception) -> None:
    shortcut = GlobalShortcut(Controls(), lambda: FakeBackend(error))
    state = await shortcut.apply("Ctrl+Alt+A", "toggle")
    assert not state.active and state.problem and state.text == str(error)
    none = GlobalShortcut(Controls(), lambda: NO_DISPLAY)
    state = await none.apply("Ctrl+Alt+A", "toggle")
    assert not state.active and not state.problem and "use the tray menu" in state.text
    assert (await none.apply("", "toggle")).text == "off"


def test_push_to_talk_closes_the_microphone_until_held() -> None:
    """The session is told the mode and the key; the conversation keeps its microphone closed until the key is held
    (through the voice gate: tests/integration/test_voice_gate_session.py)."""
    engine = AvaEngine(Settings(), None, history=ReconnectHistory(None))
    session = engine.session
    assert not session.muted and not session.push_to_talk
    engine.set_push_to_talk(True, "Ctrl+Alt+A")
    assert session.push_to_talk and not session.key_held
    assert engine.snapshot.push_to_talk and engine.snapshot.shortcut == "Ctrl+Alt+A"
    engine.hold_to_talk(True)
    assert session.key_held and engine.snapshot.talking
    engine.set_muted(True)  # muted wins over a held key
    assert session.muted
    engine.set_muted(False)
    engine.hold_to_talk(False)
    assert not session.muted and not session.key_held and not engine.snapshot.talking
    engine.set_push_to_talk(False)
    assert not session.push_to_talk
    engine.hold_to_talk(True)  # push-to-talk off: a held key changes nothing
    assert not engine.snapshot.talking
