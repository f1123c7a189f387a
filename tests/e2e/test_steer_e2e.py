"""Issue 16 end to end: the tray app under Xvfb with a tray host, on PulseAudio, against the simulator.

The conversation window lists two spoken turns (real audio into the virtual microphone) with the simulator's
transcripts in order, shows a renewal marker after a rollover, and exports Markdown and JSON through its file
dialog; Ctrl+Alt+A pressed with xdotool mutes and unmutes (the simulator stops and resumes receiving microphone
audio; the tray shows it) and, in push-to-talk mode, audio flows only while the key is held; on a Wayland session
the shortcut comes from a STAND-IN GlobalShortcuts portal (no real portal runs headless); a shortcut another
program holds is a notification, not silence. Screenshots and exports go to artifacts/steer-e2e/<test>
($AVA_TEST_ARTIFACTS/steer-e2e/<test> when set).

Run with `bash scripts/with-services.sh .venv/bin/python -m pytest tests/e2e/test_steer_e2e.py -q -s`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulse
import pytest
from desktop_bus import dbus_daemon_available, private_session_bus
from outputs import artifacts_dir
from portal_standin import StandInPortal
from test_tray_x11 import _AVAILABLE, _WHY, TrayApp
from waits import wait_until

from ava_tray.hotkey.keys import parse_chord
from ava_tray.hotkey.portal import SHORTCUT_ID
from ava_tray.hotkey.x11 import X11Shortcut
from ava_tray.settings import Settings
from ava_tray.settings_store import SettingsStore
from ava_tray.simulator import RealtimeSimulator

pytestmark = [pytest.mark.x11, pytest.mark.e2e, pytest.mark.skipif(not _AVAILABLE, reason=_WHY),
              pytest.mark.skipif(not pulse.pulse_available(), reason="no PulseAudio: run through "
                                 "`bash scripts/with-services.sh`")]

KEY = "sk-test-steer-" + "Qw3rTy" * 4
SILENCE_S = 1.6


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """An isolated HOME and XDG folders; the display, the session bus and PulseAudio are kept."""
    environment = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "OPENAI_API_KEY",
                                                                      "AVA_REALTIME_URL", "WAYLAND_DISPLAY")}
    for name, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                      ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        environment[name] = str(home / sub)
    environment["HOME"] = str(home)
    environment["OPENAI_API_KEY"] = KEY
    return environment


def save_settings(home: Path, **changes: Any) -> None:
    SettingsStore(home / ".config" / "ava-tray" / "settings.ini").save(replace(Settings(), **changes))


@pytest.fixture
async def simulator() -> AsyncIterator[RealtimeSimulator]:
    async with RealtimeSimulator(session_limit=40.0, record_audio=False) as running:
        yield running


class App:
    """The tray app in a subprocess, watched without blocking the loop the simulator runs on."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.tray = TrayApp(env, home)

    async def wait(self, predicate: Callable[[dict[str, Any]], Any], timeout: float, what: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            if self.tray.proc.poll() is not None:
                raise AssertionError(f"AVA exited ({self.tray.proc.returncode}) while waiting for {what}:\n"
                                     f"{self.tray.log.read_text()[-3000:]}")
            state = self.tray.state()
            if state and predicate(state):
                found.append(state)
                return True
            return False

        await wait_until(check, timeout, f"{what} (last state: {self.tray.state()})", poll=0.05)
        return found[-1]

    async def open_menu_item(self, downs: int) -> None:
        """Right-click the icon, then Down `downs` times and Return (menus take the keyboard)."""
        state = await self.wait(lambda s: s["tray_visible"] and s["geometry"][2] > 0 and not s["menu_visible"], 15,
                                "the tray icon")
        x, y, w, h = state["geometry"]
        for _ in range(3):
            await xdotool("mousemove", str(x + w // 2), str(y + h // 2), "click", "3")
            try:
                await self.wait(lambda s: s["menu_visible"], 3, "the context menu")
                break
            except AssertionError:
                continue
        await xdotool("key", *(["Down"] * downs), "Return")

    def stop(self) -> None:
        self.tray.stop()


async def xdotool(*args: str) -> str:
    process = await asyncio.create_subprocess_exec("xdotool", *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.DEVNULL)
    out, _ = await process.communicate()
    return out.decode().strip()


async def screenshot(window_name: str, path: Path) -> None:
    window_id = await xdotool("search", "--onlyvisible", "--name", window_name)
    assert window_id, f"no visible window named {window_name!r}"
    process = await asyncio.create_subprocess_exec("/usr/bin/import", "-window", window_id.splitlines()[0],
                                                   str(path))
    assert await process.wait() == 0 and path.exists()


def arrivals(simulator: RealtimeSimulator) -> int:
    """Microphone blocks the server received, over all its sessions."""
    return sum(len(session.audio_arrivals) for session in simulator.sessions)


async def stays(predicate: Callable[[], bool], seconds: float) -> bool:
    """True if `predicate` holds for the whole observation window (the loop keeps running)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        await asyncio.sleep(0.05)
    return True


async def settled(simulator: RealtimeSimulator) -> int:
    """The arrival count once blocks already on their way have landed (0.5 s without one)."""
    while True:
        count = arrivals(simulator)
        if await stays(lambda count=count: arrivals(simulator) == count, 0.5):  # type: ignore[misc]
            return count


def spoken(text: str, folder: Path) -> bytes:
    """`text` spoken by espeak-ng, as 24 kHz mono int16 PCM (what the virtual microphone is fed)."""
    raw, converted = folder / "speech-raw.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True, timeout=30)
    subprocess.run(["sox", str(raw), "-r", "24000", "-c", "1", "-b", "16", str(converted), "norm", "-6"],
                   check=True, timeout=30)
    with wave.open(str(converted)) as audio:
        return audio.readframes(audio.getnframes())


async def say(simulator: RealtimeSimulator, pcm: bytes) -> None:
    """Speak into the virtual microphone and wait for AVA's answer from the server."""
    before = sum(s.replies_sent for s in simulator.sessions)
    async with pulse.feed_mic(pcm + bytes(int(SILENCE_S * 48_000))):
        await simulator.wait_for(lambda: sum(s.replies_sent for s in simulator.sessions) > before, timeout=20)


def turns(state: dict[str, Any]) -> list[tuple[str, str]]:
    entries = state.get("conversation", {}).get("entries", [])
    return [(e["role"], e["text"]) for e in entries if e["kind"] == "turn"]


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
async def test_the_conversation_window_lists_spoken_turns_renewals_and_exports(
        env: dict[str, str], home: Path, tmp_path: Path, simulator: RealtimeSimulator,
        request: pytest.FixtureRequest) -> None:
    folder = artifacts_dir(f"steer-e2e/{request.node.name}")
    save_settings(home, realtime_url=simulator.url, audio_mode="headphones")  # a clean virtual microphone
    app = App(dict(env, AVA_REALTIME_URL=simulator.url), home)
    try:
        await app.wait(lambda s: s["state"] == "Connected", 20, "the first session")
        for text in ("What is on my calendar today?", "Thank you."):
            await say(simulator, spoken(text, tmp_path))
            await app.wait(lambda s: s["icon"] == "speaking", 10, "AVA answering")
            await app.wait(lambda s: s["icon"] == "connected", 20, "AVA to finish its answer")
        await app.open_menu_item(4)  # Restart now, Mute microphone, Status…, Conversation…
        state = await app.wait(lambda s: len(turns(s)) >= 4, 15, "both exchanges in the conversation window")
        said = turns(state)
        assert [role for role, _ in said] == ["user", "assistant", "user", "assistant"], said
        heard = [float(m.group(1)) for role, text in said if role == "user"
                 and (m := re.fullmatch(r"\((\d+\.\d) s of speech\)", text))]
        answered = [float(m.group(1)) for role, text in said if role == "assistant"
                    and (m := re.fullmatch(r"You said something for (\d+\.\d) seconds\.", text))]
        assert len(heard) == 2 and heard == answered, said  # the simulator's transcripts, in order
        assert heard[0] > heard[1] > 0.2  # the longer question first

        await simulator.wait_for(lambda: len(simulator.sessions) >= 2, timeout=45)
        state = await app.wait(lambda s: any(e["kind"] == "marker" and e["marker"] == "renewed"
                                             for e in s["conversation"]["entries"]), 15, "the renewal marker")
        assert state["conversation"]["entries"][-1]["text"] == "Session renewed before its limit"
        await screenshot("AVA · Conversation", folder / "conversation-window.png")

        for name in ("conversation.md", "conversation.json"):
            x, y, w, h = state["conversation"]["export_button"]
            await xdotool("mousemove", str(x + w // 2), str(y + h // 2), "click", "1")
            dialog = await xdotool("search", "--sync", "--onlyvisible", "--name", "Export the conversation")
            await xdotool("windowfocus", "--sync", dialog.splitlines()[0])
            await xdotool("key", "ctrl+a")
            await xdotool("type", "--delay", "5", str(folder / name))
            await xdotool("key", "Return")
            await wait_until(lambda name=name: (folder / name).exists(), 10, f"{name} to be written")
        markdown = (folder / "conversation.md").read_text()
        assert markdown.startswith("# Conversation with AVA, ")
        assert f"({heard[0]:.1f} s of speech)" in markdown and "--- *Session renewed before its limit" in markdown
        exported = json.loads((folder / "conversation.json").read_text())
        kinds = [e["kind"] for e in exported["entries"]]
        assert kinds[:4] == ["turn"] * 4 and "marker" in kinds
    finally:
        app.stop()


async def test_ctrl_alt_a_mutes_and_unmutes_from_anywhere(env: dict[str, str], home: Path,
                                                          simulator: RealtimeSimulator) -> None:
    # The voice gate off: the microphone streams, so mute shows as the audio stopping.
    save_settings(home, realtime_url=simulator.url, voice_gate=False)
    app = App(dict(env, AVA_REALTIME_URL=simulator.url), home)
    try:
        state = await app.wait(lambda s: s["state"] == "Connected" and "(X11)" in s.get("shortcut", ""), 20,
                               "a session and the shortcut grabbed")
        assert state["shortcut"] == "Ctrl+Alt+A (X11): mutes and unmutes"
        await wait_until(lambda: arrivals(simulator) > 20, 10, "microphone audio at the server")
        await xdotool("key", "ctrl+alt+a")
        state = await app.wait(lambda s: s["muted"], 5, "muted by the shortcut")
        assert state["icon"] == "muted" and "microphone muted" in state["tooltip"]
        count = await settled(simulator)
        assert await stays(lambda: arrivals(simulator) == count, 1.5), "audio reached the server while muted"
        await xdotool("key", "ctrl+alt+a")
        state = await app.wait(lambda s: not s["muted"], 5, "unmuted by the shortcut")
        assert state["icon"] in ("connected", "hearing")  # streaming: audio leaves the machine again
        await wait_until(lambda: arrivals(simulator) > count + 20, 10, "microphone audio again")
    finally:
        app.stop()


async def test_push_to_talk_sends_audio_only_while_the_key_is_held(env: dict[str, str], home: Path,
                                                                   simulator: RealtimeSimulator) -> None:
    save_settings(home, realtime_url=simulator.url, shortcut_mode="push_to_talk")
    app = App(dict(env, AVA_REALTIME_URL=simulator.url), home)
    try:
        state = await app.wait(lambda s: s["state"] == "Connected" and s["push_to_talk"], 20,
                               "a session in push-to-talk")
        assert state["icon"] == "push_to_talk" and "push-to-talk: hold Ctrl+Alt+A" in state["tooltip"]
        count = await settled(simulator)
        assert await stays(lambda: arrivals(simulator) == count, 1.5), "audio reached the server with the key up"
        await xdotool("keydown", "ctrl+alt+a")
        state = await app.wait(lambda s: s["talking"] and s["sending"], 5, "the key held, audio leaving")
        assert state["icon"] == "hearing" and "push-to-talk: talking" in state["tooltip"]
        await wait_until(lambda: arrivals(simulator) > count + 20, 10, "microphone audio while held")
        await xdotool("keyup", "ctrl+alt+a")
        state = await app.wait(lambda s: not s["talking"], 5, "the key let go")
        assert state["icon"] == "push_to_talk"
        count = await settled(simulator)
        assert await stays(lambda: arrivals(simulator) == count, 1.5), "audio reached the server after release"
    finally:
        app.stop()


async def test_a_shortcut_another_program_holds_is_a_notification(env: dict[str, str], home: Path,
                                                                  simulator: RealtimeSimulator) -> None:
    chord = parse_chord("Ctrl+Alt+A")
    assert chord is not None
    other = X11Shortcut()  # another program took it first
    await other.bind(chord, lambda: None, lambda: None)
    app = App(dict(env, AVA_REALTIME_URL=simulator.url), home)
    try:
        state = await app.wait(lambda s: s["notifications"], 20, "a notification about the shortcut")
        assert state["notifications"][0]["message"] == ("Global shortcut: Ctrl+Alt+A is already used by another "
                                                        "program: choose another shortcut in Settings.")
    finally:
        app.stop()
        await other.close()


@pytest.mark.skipif(not dbus_daemon_available(), reason="dbus-daemon is not installed")
async def test_on_wayland_the_stand_in_portals_shortcut_mutes(env: dict[str, str], home: Path, tmp_path: Path,
                                                              simulator: RealtimeSimulator) -> None:
    """A Wayland session (Qt itself runs on Xvfb here) with a STAND-IN GlobalShortcuts portal on the session bus."""
    save_settings(home, realtime_url=simulator.url)
    with private_session_bus(tmp_path / "bus") as address:
        portal = StandInPortal(address)
        wayland = dict(env, AVA_REALTIME_URL=simulator.url, DBUS_SESSION_BUS_ADDRESS=address,
                       WAYLAND_DISPLAY="wayland-stand-in", QT_QPA_PLATFORM="xcb")
        app = App(wayland, home)
        try:
            state = await app.wait(lambda s: s["state"] == "Connected" and "portal" in s.get("shortcut", ""), 20,
                                   "a session and the shortcut bound through the portal")
            assert state["shortcut"] == "CTRL + ALT + a (desktop portal): mutes and unmutes"
            assert portal.bindings() == {SHORTCUT_ID: "CTRL+ALT+a"}
            portal.press(SHORTCUT_ID)
            portal.release(SHORTCUT_ID)
            await app.wait(lambda s: s["muted"] and s["icon"] == "muted", 5, "muted through the portal")
            count = await settled(simulator)
            assert await stays(lambda: arrivals(simulator) == count, 1.0)
            portal.press(SHORTCUT_ID)
            portal.release(SHORTCUT_ID)
            await app.wait(lambda s: not s["muted"], 5, "unmuted through the portal")
        finally:
            app.stop()
            portal.close()


def test_the_module_names_its_stand_in() -> None:
    assert "STAND-IN" in (sys.modules[StandInPortal.__module__].__doc__ or "")
    assert subprocess.run(["xdotool", "version"], capture_output=True).returncode == 0
