"""Helpers for the UI tests: a device-free VoiceIO and an async wait on the qasync loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ava_tray.audio import MicBlockHandler, PlaybackCut


class SilentVoiceIO:
    """A VoiceIO with no devices: the microphone sends 100 ms of silence every 100 ms, playback is dropped."""

    def __init__(self) -> None:
        self.failure = None
        self.is_playing = False
        self.opened = 0
        self.closed = 0
        self._task: asyncio.Task[None] | None = None

    async def open(self, on_mic_block: MicBlockHandler) -> None:
        self.opened += 1

        async def pump() -> None:
            loop = asyncio.get_running_loop()
            while True:
                await asyncio.sleep(0.1)
                on_mic_block(bytes(4800), loop.time())

        self._task = asyncio.ensure_future(pump())

    def play(self, item_id: str, pcm: bytes) -> None:
        pass

    def interrupt(self) -> PlaybackCut | None:
        return None

    def set_active(self, active: bool) -> None:
        pass

    def wake_on_sound(self, level: float | None) -> None:
        pass

    def echo_resemblance(self, heard: bytes, ended_at: float) -> float:
        return 0.0

    async def close(self) -> None:
        self.closed += 1
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


async def eventually(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Wait on the running (qasync) loop until `predicate()` is true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await asyncio.sleep(0.02)
