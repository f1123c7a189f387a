"""SoundDeviceVoiceIO on real PortAudio through PulseAudio's null sinks.

Run with: bash scripts/with-services.sh .venv/bin/python -m pytest tests/e2e/audio
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/pulse.py, without a conftest

from pulse import (
    LOUD_RMS,
    dominant_frequency,
    feed_mic,
    monitor_speaker,
    needs_pulse,
    private_pulse,
    rms,
    speech_like_pcm,
    tone_pcm,
    wait_until,
)

from ava_tray.audio import AudioDeviceError
from ava_tray.audio.devices import (
    MIC_BLOCK_MS,
    SPEAKER_BLOCK_MS,
    SoundDeviceVoiceIO,
    list_devices,
    portaudio_info,
    rescan_devices,
)

BLOCK_BYTES = 24000 * MIC_BLOCK_MS // 1000 * 2


def os_threads() -> int:
    """Threads of this process as the kernel sees them (PortAudio's are not in `threading`)."""
    return len(os.listdir("/proc/self/task"))


def threads() -> tuple[int, int]:
    """(Python threads, OS threads) now."""
    return threading.active_count(), os_threads()


async def settled_threads() -> tuple[int, int]:
    """The thread counts once earlier tests' subprocess reapers (asyncio's waitpid threads) ended."""
    await wait_until(
        lambda: not any(t.name.startswith("waitpid") for t in threading.enumerate()),
        timeout=5,
        what="subprocess reaper threads to end",
    )
    return threads()


def no_more_threads_than(baseline: tuple[int, int]) -> bool:
    """At most the threads of `baseline`; fewer is fine (a previous test's subprocess reaper may end)."""
    now = threads()
    return now[0] <= baseline[0] and now[1] <= baseline[1]


class MicLog:
    """Collects what on_mic_block receives, checking it runs on the event loop's thread."""

    def __init__(self) -> None:
        self.blocks: list[tuple[bytes, float]] = []
        self.loop_thread = threading.get_ident()
        self.wrong_thread = False

    def __call__(self, pcm: bytes, captured_at: float) -> None:
        self.wrong_thread |= threading.get_ident() != self.loop_thread
        self.blocks.append((pcm, captured_at))

    def loud(self) -> list[bytes]:
        return [pcm for pcm, _ in self.blocks if rms(pcm) > LOUD_RMS]


@pytest.fixture
async def voice() -> AsyncIterator[SoundDeviceVoiceIO]:
    io = SoundDeviceVoiceIO()
    yield io
    await io.close()


# --- without devices ---------------------------------------------------------------------------------


async def test_close_without_open_is_fine() -> None:
    io = SoundDeviceVoiceIO()
    await io.close()
    await io.close()
    assert io.interrupt() is None
    assert not io.is_playing and io.failure is None


def test_a_microphone_block_over_100_ms_is_refused() -> None:
    with pytest.raises(ValueError, match="mic_block_ms"):
        SoundDeviceVoiceIO(mic_block_ms=120)


async def test_missing_portaudio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as without libportaudio2
    with pytest.raises(AudioDeviceError, match="libportaudio2"):
        await SoundDeviceVoiceIO().open(lambda pcm, t: None)
    assert list_devices() == ([], [])
    assert "libportaudio2" in portaudio_info()


# --- on real devices ---------------------------------------------------------------------------------


@pytest.mark.e2e
@needs_pulse()
def test_list_devices_and_portaudio_info() -> None:
    inputs, outputs = list_devices()
    assert "default" in inputs and "default" in outputs
    assert "PortAudio" in portaudio_info()


@pytest.mark.e2e
@needs_pulse()
async def test_open_close_leaves_no_thread_and_close_is_idempotent() -> None:
    baseline = await settled_threads()
    io = SoundDeviceVoiceIO()
    await io.open(lambda pcm, t: None)
    opened = io.is_open  # a local: mypy would keep `is_open` narrowed to True below
    assert opened and io.input_rate == 24000 and io.output_rate == 24000
    await wait_until(lambda: io.captured_blocks >= 5, timeout=10, what="5 microphone blocks")
    await io.close()
    await io.close()
    assert not io.is_open and io.failure is None
    counted = io.captured_blocks
    await wait_until(
        lambda: no_more_threads_than(baseline), timeout=5, what=f"threads back to {baseline}, now {threads()}"
    )
    assert io.captured_blocks == counted  # no callback after close


@pytest.mark.e2e
@needs_pulse()
async def test_close_while_busy_from_two_tasks(voice: SoundDeviceVoiceIO) -> None:
    await voice.open(lambda pcm, t: None)
    voice.play("a", tone_pcm(440, 1.0))
    await asyncio.gather(voice.close(), voice.close())
    assert not voice.is_open and not voice.is_playing


@pytest.mark.e2e
@needs_pulse()
async def test_speech_into_the_virtual_mic_arrives_in_whole_blocks(voice: SoundDeviceVoiceIO) -> None:
    mic = MicLog()
    await voice.open(mic)
    async with feed_mic(speech_like_pcm(3.0), repeat=True):
        await wait_until(lambda: len(mic.loud()) >= 13, timeout=15, what="500 ms of speech from the mic")
    assert not mic.wrong_thread
    assert all(len(pcm) == BLOCK_BYTES for pcm, _ in mic.blocks)
    times = [t for _, t in mic.blocks]
    assert times == sorted(times)
    assert 0 <= time.monotonic() - times[-1] < 2
    assert rms(b"".join(mic.loud())) > 4 * LOUD_RMS


@pytest.mark.e2e
@needs_pulse()
@pytest.mark.parametrize("device_rate", [None, 48000, 44100])
async def test_mic_is_24khz_at_any_device_rate(device_rate: int | None) -> None:
    io = SoundDeviceVoiceIO(device_rate=device_rate)
    mic = MicLog()
    try:
        await io.open(mic)
        assert io.input_rate == (device_rate or 24000)
        async with feed_mic(tone_pcm(1000, 2.0), repeat=True):
            await wait_until(lambda: len(mic.loud()) >= 13, timeout=15, what="500 ms of tone from the mic")
    finally:
        await io.close()
    assert all(len(pcm) == BLOCK_BYTES for pcm, _ in mic.blocks)
    assert dominant_frequency(b"".join(mic.loud())) == pytest.approx(1000, abs=5)


@pytest.mark.e2e
@needs_pulse()
@pytest.mark.parametrize("device_rate", [None, 48000])
async def test_play_is_heard_on_the_speaker(device_rate: int | None) -> None:
    io = SoundDeviceVoiceIO(device_rate=device_rate)
    try:
        async with monitor_speaker() as speaker:
            await io.open(lambda pcm, t: None)
            start = speaker.position
            io.play("item_1", tone_pcm(800, 0.6))
            io.play("item_1", tone_pcm(800, 0.6))
            assert io.is_playing
            await speaker.wait_for_sound(800, since=start, timeout=15)
            await wait_until(lambda: not io.is_playing, timeout=10, what="the queue to drain")
            heard = bytes(speaker.pcm[start * 2 :])
    finally:
        await io.close()
    assert io.played_blocks * SPEAKER_BLOCK_MS >= 1000  # of the 1.2 s queued
    assert io.play_log[0].item_id == "item_1" and io.play_log[0].frames == 14400
    loud = b"".join(heard[i : i + 480] for i in range(0, len(heard) - 480, 480) if rms(heard[i : i + 480]) > LOUD_RMS)
    assert dominant_frequency(loud) == pytest.approx(800, abs=5)
    assert io.interrupt() is None  # all played: nothing to cut


@pytest.mark.e2e
@needs_pulse()
async def test_interrupt_silences_the_speaker_and_says_how_much_was_played(voice: SoundDeviceVoiceIO) -> None:
    async with monitor_speaker() as speaker:
        await voice.open(lambda pcm, t: None)
        start = speaker.position
        voice.play("item_2", speech_like_pcm(5.0))
        await speaker.wait_for_sound(600, since=start, timeout=15)
        started = voice.item_started_at("item_2")
        assert started is not None
        cut_at = speaker.position
        wall_ms = (time.monotonic() - started) * 1000
        cut = voice.interrupt()
        assert cut is not None and cut.item_id == "item_2"
        assert not voice.is_playing
        quiet_start = await speaker.wait_for_silence(300, since=cut_at, timeout=5)
    tail_ms = speaker.ms(quiet_start - cut_at)
    assert tail_ms <= 250, f"sound went on for {tail_ms:.0f} ms after interrupt()"
    # Pulse takes blocks in bursts and keeps ~40 ms buffered: consumption leads the wall clock a little.
    assert 600 <= cut.played_ms < 5000
    assert abs(cut.played_ms - wall_ms) <= 300, (cut.played_ms, wall_ms)
    assert voice.interrupt() is None


@pytest.mark.e2e
@needs_pulse()
@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"input_device": "no-such-mic"}, ["microphone 'no-such-mic' was not found", "Settings"]),
        ({"output_device": "no-such-speaker"}, ["speaker 'no-such-speaker' was not found", "Settings"]),
        ({"device_rate": 7}, ["cannot run at 7 Hz", "Settings"]),
    ],
)
async def test_a_bad_device_is_a_clear_error_and_leaves_nothing_open(
    kwargs: dict[str, object], words: list[str]
) -> None:
    baseline = await settled_threads()
    io = SoundDeviceVoiceIO(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(AudioDeviceError) as error:
        await io.open(lambda pcm, t: None)
    for word in words:
        assert word in str(error.value)
    assert not io.is_open
    await io.close()
    await wait_until(lambda: no_more_threads_than(baseline), timeout=5, what="threads back to baseline")


@pytest.mark.e2e
@needs_pulse()
async def test_a_dying_sound_server_sets_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    async with private_pulse() as (server, process):
        monkeypatch.setenv("PULSE_SERVER", server)  # ALSA's pulse plugin reads it when a stream opens
        reported: list[AudioDeviceError] = []
        io = SoundDeviceVoiceIO(on_failure=reported.append)
        try:
            await io.open(lambda pcm, t: None)
            await wait_until(lambda: io.captured_blocks >= 3, timeout=10, what="3 microphone blocks")
            healthy = io.failure is None  # a local: mypy would keep `failure` narrowed to None
            assert healthy
            process.kill()
            await wait_until(lambda: bool(reported), timeout=10, what="the failure to be reported")
        finally:
            await io.close()
    assert io.failure is not None and "stopped working" in str(io.failure)
    assert reported[0] is io.failure or "stopped working" in str(reported[0])


@pytest.mark.e2e
@needs_pulse()
async def test_when_the_speaker_fails_the_open_microphone_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sounddevice as sd

    def unavailable(*args: object, **kwargs: object) -> None:
        raise sd.PortAudioError("Error opening RawOutputStream: Device unavailable [PaErrorCode -9985]", -9985)

    baseline = await settled_threads()
    monkeypatch.setattr(sd, "RawOutputStream", unavailable)
    io = SoundDeviceVoiceIO()
    with pytest.raises(AudioDeviceError) as error:
        await io.open(lambda pcm, t: None)
    assert str(error.value) == (
        "The speaker 'default' could not be opened (Device unavailable): choose another output device in Settings."
    )
    assert not io.is_open and io.input_rate is None and io.failure is None
    await wait_until(lambda: no_more_threads_than(baseline), timeout=5, what="the microphone to be closed")


@pytest.mark.e2e
@needs_pulse()
async def test_listing_devices_while_audio_is_open_does_not_restart_portaudio(voice: SoundDeviceVoiceIO) -> None:
    """Restarting PortAudio (to see newly plugged devices) would close AVA's open streams: not while they are open."""
    import sounddevice as sd

    mic = MicLog()
    await voice.open(mic)
    assert not rescan_devices(sd)
    inputs, outputs = list_devices()
    assert inputs and outputs
    before = len(mic.blocks)
    await wait_until(lambda: len(mic.blocks) >= before + 10, timeout=5, what="the microphone to keep delivering")
    assert voice.is_open and voice.failure is None
    await voice.close()
    assert rescan_devices(sd), "with AVA's audio closed the device list is read again"


@pytest.mark.e2e
@needs_pulse()
async def test_when_the_helper_listing_fails_the_pickers_show_the_devices_seen_at_open(
        voice: SoundDeviceVoiceIO, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from ava_tray import paths
    from ava_tray.audio import devices

    await voice.open(MicLog())
    seen_at_open = devices.list_devices_here()
    monkeypatch.setattr(paths, "launch_command", lambda: [sys.executable, "-c", "import sys; sys.exit(3)"])
    with caplog.at_level(logging.WARNING, logger="ava_tray.audio.devices"):
        assert await asyncio.to_thread(list_devices) == seen_at_open != ([], [])
    assert "could not list audio devices in a helper process (exit code 3" in caplog.text
    assert voice.is_open and voice.failure is None


@pytest.mark.e2e
@needs_pulse()
async def test_a_reply_after_the_speaker_slept_is_heard_from_its_first_millisecond(voice: SoundDeviceVoiceIO) -> None:
    voice.speaker_sleep_s = 0.2
    async with monitor_speaker() as speaker:
        await voice.open(lambda pcm, t: None)
        voice.set_active(False)
        await wait_until(lambda: voice.speaker_sleeps == 1, timeout=5, what="the idle speaker to sleep")
        start = speaker.position
        voice.play("item_1", tone_pcm(800, 0.5))
        await speaker.wait_for_sound(450, since=start, timeout=10)
        await wait_until(lambda: not voice.is_playing, timeout=10, what="the reply to be played")
        end = await speaker.wait_for_silence(200, since=start, timeout=10)
    assert voice.failure is None
    heard = speaker.loud_ms(start) - speaker.loud_ms(end)
    assert heard >= 490, f"only {heard:.0f} ms of a 500 ms reply were heard after the speaker woke"
