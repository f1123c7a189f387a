"""A stand-in for the part of `sounddevice` that `SoundDeviceVoiceIO` uses: streams that start, stop and die
when a test says so, and whose callbacks a test calls as PortAudio's threads would (no device, no service)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class StandInStream:
    """A stream that starts when told to and, like PortAudio's, reports every stop to `finished_callback`."""

    def __init__(self, portaudio: StandInPortAudio, kind: str, finished_callback: Callable[[], None],
                 callback: Callable[..., None], blocksize: int, **_: Any) -> None:
        self.portaudio = portaudio
        self.kind = kind
        self.finished_callback = finished_callback
        self.callback = callback
        self.blocksize = blocksize
        self.starts = 0
        self.latency = 0.01
        self.active = False

    def start(self) -> None:
        self.portaudio.starting.set()
        if not self.portaudio.may_start.wait(10):
            raise AssertionError("the test never let the stream start")
        self.active = True
        self.starts += 1

    def abort(self) -> None:
        if self.active:
            self.active = False
            self.finished_callback()

    def close(self) -> None:
        self.abort()

    def capture(self, pcm: bytes) -> None:
        """The microphone delivers a block (call from a thread of the test's own, as PortAudio does)."""
        assert self.kind == "input" and self.active
        self.callback(pcm, len(pcm) // 2, None, None)

    def play_block(self) -> bytes:
        """The speaker takes a block of what AVA queued (silence when nothing is)."""
        assert self.kind == "output" and self.active
        out = bytearray(self.blocksize * 2)
        self.callback(out, self.blocksize, None, None)
        return bytes(out)

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
