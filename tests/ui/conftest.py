"""UI tests run offscreen on the qasync loop (one QApplication; asyncio and Qt on one thread)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from ava_tray.audio import MicBlockHandler, PlaybackCut


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    return {"qasync": lambda: qasync.QEventLoop(QApplication.instance() or QApplication([]))}


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

    async def close(self) -> None:
        self.closed += 1
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


@pytest.fixture
def silent_voice() -> Callable[[], SilentVoiceIO]:
    return SilentVoiceIO
