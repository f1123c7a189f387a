"""A stop is never a device failure: `SoundDeviceVoiceIO` on a stand-in PortAudio (no device, no service).

PortAudio calls a stream's finished callback whenever the stream stops, also when AVA aborts it itself;
only a stream that stops on its own (unplugged, sound server gone) is a failure.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from portaudio_stand_in import StandInPortAudio
from waits import wait_until

from ava_tray.audio import AudioDeviceError
from ava_tray.audio.devices import SoundDeviceVoiceIO


def no_mic(pcm: bytes, captured_at: float) -> None:
    pass


async def test_a_stop_while_the_audio_opens_is_no_device_failure(
        portaudio: StandInPortAudio, caplog: pytest.LogCaptureFixture) -> None:
    failures: list[AudioDeviceError] = []
    voice = SoundDeviceVoiceIO(on_failure=failures.append)
    opening = asyncio.create_task(voice.open(no_mic))
    await wait_until(portaudio.starting.is_set, what="the streams to be starting")
    with caplog.at_level(logging.ERROR, logger="ava_tray.audio.devices"):
        opening.cancel()  # AVA stopped (Ctrl+C, Quit, Restart) while a session was being configured
        portaudio.may_start.set()
        with pytest.raises(asyncio.CancelledError):
            await opening
    assert [s.active for s in portaudio.streams] == [False, False], "what the cancelled open opened is closed"
    assert voice.failure is None and failures == []
    assert "audio device failed" not in caplog.text
    await voice.close()


async def test_a_stream_that_dies_while_running_is_a_device_failure(portaudio: StandInPortAudio) -> None:
    failures: list[AudioDeviceError] = []
    voice = SoundDeviceVoiceIO(on_failure=failures.append)
    portaudio.may_start.set()
    await voice.open(no_mic)
    portaudio.streams[0].die()
    await wait_until(lambda: failures, what="the failure report")
    assert voice.failure is not None and "The microphone 'default' stopped working" in str(voice.failure)
    await voice.close()


async def test_closing_is_no_device_failure(portaudio: StandInPortAudio) -> None:
    failures: list[AudioDeviceError] = []
    voice = SoundDeviceVoiceIO(on_failure=failures.append)
    portaudio.may_start.set()
    await voice.open(no_mic)
    await voice.close()
    assert [s.active for s in portaudio.streams] == [False, False]
    assert voice.failure is None and failures == []
