"""A microphone plugged in while AVA runs is found at the next attempt, without restarting AVA.

PortAudio reads the device list once, when it starts. "Plugging in" here is real for PortAudio's ALSA
host API: an ALSA device defined in `~/.asoundrc` after the process started (an ALSA `pulse` PCM on
the test PulseAudio server's virtual microphone). The console app runs as a user runs it, with the
simulator on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pulse
import pytest
from test_console_e2e import ConsoleAva

from ava_tray.audio import VoiceIO
from ava_tray.audio.devices import list_devices
from ava_tray.settings import Settings
from ava_tray.settings_store import SettingsStore
from ava_tray.simulator import RealtimeSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not pulse.pulse_available(), reason="no PulseAudio: run "
                                                  "through `bash scripts/with-services.sh`")]

KEY = "sk-test-hotplug-" + "Zk4pW9" * 6
HEADSET = "ava_usb_headset"
ASOUNDRC = f"""
pcm.{HEADSET} {{
    type pulse
    device mic
    hint {{ show on description "AVA USB headset (test)" }}
}}
"""


@pytest.fixture
async def simulator() -> AsyncIterator[RealtimeSimulator]:
    async with RealtimeSimulator(api_key=KEY) as sim:
        yield sim


async def test_a_microphone_plugged_in_later_is_used_at_the_next_attempt(
        simulator: RealtimeSimulator, isolated_user_dirs: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # The gate off: the plugged-in microphone's silence reaches the session, showing it is the one in use.
    SettingsStore().save(replace(Settings(), input_device=HEADSET, delay_other=1.0, voice_gate=False))
    env = dict(os.environ, HOME=str(home), AVA_REALTIME_URL=simulator.url, OPENAI_API_KEY=KEY)
    ava = ConsoleAva("--no-rollover", env=env)
    try:
        await ava.start()
        missing = f"❌ Unexpected error: The microphone '{HEADSET}' was not found: plug it in"
        await ava.wait_output(missing, count=2, timeout=30)
        assert "✅ Connected to Realtime API" not in ava.out
        assert not simulator.sessions or all(s.received_audio_ms == 0 for s in simulator.sessions)

        (home / ".asoundrc").write_text(ASOUNDRC)  # plugged in
        await ava.wait_output("✅ Connected to Realtime API", timeout=30)
        assert ava.out.count(missing) >= 2
        await pulse.wait_until(lambda: bool(simulator.sessions and simulator.sessions[-1].received_audio_ms > 0),
                               timeout=10, what="microphone audio from the plugged-in device to reach the session")
        assert ava.proc is not None
        ava.proc.send_signal(signal.SIGINT)
        assert await ava.finish(timeout=10) == 0
    finally:
        await ava.kill()


def test_the_settings_pickers_list_a_device_plugged_in_after_start(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process (PortAudio already started by earlier tests or by this listing), no audio open."""
    monkeypatch.setenv("HOME", str(tmp_path))
    inputs, _outputs = list_devices()
    assert HEADSET not in inputs
    (tmp_path / ".asoundrc").write_text(ASOUNDRC)
    try:
        inputs, _outputs = list_devices()
        assert HEADSET in inputs
    finally:
        (tmp_path / ".asoundrc").unlink()
    inputs, _outputs = list_devices()
    assert HEADSET not in inputs, "an unplugged device must leave the list"


async def test_while_audio_is_open_the_pickers_still_list_a_device_plugged_in_now(
        voice_io_factory: Callable[[], VoiceIO], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AVA connected, its streams open: Settings lists the devices through a helper process, and AVA's
    microphone goes on delivering throughout."""
    monkeypatch.setenv("HOME", str(tmp_path))
    voice = voice_io_factory()
    blocks: list[float] = []
    await voice.open(lambda pcm, captured_at: blocks.append(captured_at))
    try:
        (tmp_path / ".asoundrc").write_text(ASOUNDRC)  # plugged in while the audio is open
        inputs, outputs = await asyncio.to_thread(list_devices)
        assert HEADSET in inputs and outputs
        before = len(blocks)
        await pulse.wait_until(lambda: len(blocks) >= before + 10, timeout=5, what="AVA's microphone to go on")
        assert voice.failure is None
    finally:
        await voice.close()


def test_list_devices_command_prints_the_names_settings_takes(tmp_path: Path, isolated_user_dirs: Path) -> None:
    (tmp_path / ".asoundrc").write_text(ASOUNDRC)
    env = dict(os.environ, HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "ava_tray", "--list-devices"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Microphones:" and f"  {HEADSET}" in lines[:lines.index("Speakers:")]
    assert f"  {HEADSET}" in lines[lines.index("Speakers:"):]  # an ALSA pulse PCM plays and records
    assert not any(isolated_user_dirs.rglob("*.log")), "a listing writes no log file"
    as_json = subprocess.run([sys.executable, "-m", "ava_tray", "--list-devices", "json"], env=env,
                             capture_output=True, text=True, timeout=30)
    assert HEADSET in json.loads(as_json.stdout)["inputs"]
