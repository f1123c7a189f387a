"""A stop is never a device failure: `SoundDeviceVoiceIO` on a stand-in PortAudio (no device, no service).

PortAudio calls a stream's finished callback whenever the stream stops, also when AVA aborts it itself;
only a stream that stops on its own (unplugged, sound server gone) is a failure.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from waits import wait_until

from ava_tray.audio import AudioDeviceError
from ava_tray.audio import devices as audio_devices
from ava_tray.audio.devices import SoundDeviceVoiceIO


class StandInStream:
    """A stream that starts when told to and, like PortAudio's, reports every stop to `finished_callback`."""

    def __init__(self, portaudio: StandInPortAudio, kind: str, finished_callback: Callable[[], None],
                 **_: Any) -> None:
        self.portaudio = portaudio
        self.kind = kind
        self.finished_callback = finished_callback
        self.latency = 0.01
        self.active = False

    def start(self) -> None:
        self.portaudio.starting.set()
        if not self.portaudio.may_start.wait(10):
            raise AssertionError("the test never let the stream start")
        self.active = True

    def abort(self) -> None:
        if self.active:
            self.active = False
            self.finished_callback()

    def close(self) -> None:
        self.abort()

    def die(self) -> None:
        """The device went away while running."""
        self.active = False
        self.finished_callback()


class StandInPortAudio:
    """The part of the `sounddevice` module `SoundDeviceVoiceIO` uses, with one microphone and one speaker."""

    class PortAudioError(Exception):
        pass

    def __init__(self) -> None:
        self.starting = threading.Event()
        self.may_start = threading.Event()
        self.streams: list[StandInStream] = []

    def _terminate(self) -> None:
        pass

    def _initialize(self) -> None:
        pass

    def query_devices(self, wanted: object = None, kind: str = "input") -> dict[str, Any]:
        return {"index": 0 if kind == "input" else 1, "name": "default", "default_samplerate": 24000.0}

    def check_input_settings(self, **_: Any) -> None:
        pass

    def check_output_settings(self, **_: Any) -> None:
        pass

    def RawInputStream(self, **kwargs: Any) -> StandInStream:
        return self._stream("input", **kwargs)

    def RawOutputStream(self, **kwargs: Any) -> StandInStream:
        return self._stream("output", **kwargs)

    def _stream(self, kind: str, **kwargs: Any) -> StandInStream:
        stream = StandInStream(self, kind, **kwargs)
        self.streams.append(stream)
        return stream


@pytest.fixture
def portaudio(monkeypatch: pytest.MonkeyPatch) -> StandInPortAudio:
    stand_in = StandInPortAudio()
    monkeypatch.setattr(audio_devices, "_import_sounddevice", lambda: stand_in)
    return stand_in


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
