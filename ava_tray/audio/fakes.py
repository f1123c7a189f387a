"""A device-free `VoiceIO` for tests (named as such; never used by the app itself).

A microphone that captures what a test `say`s (and a faint, never-repeating room tone otherwise) and a
speaker that plays into memory, both running in real time in 20 ms blocks on the event loop, so the
session, the server's VAD and the rollover see what real devices would give them, with no PulseAudio.

`speed` runs the devices' clock faster than real time (the injected clock of a test whose every assertion is
about the audio, not the wall clock): blocks come `speed` times as often, and what they carry is unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque

from ava_tray.audio import AudioDeviceError, MicBlockHandler, PlaybackCut
from ava_tray.realtime.events import BYTES_PER_SAMPLE, SAMPLE_RATE

logger = logging.getLogger(__name__)

ROOM_TONE_PERIOD = 97
"""Samples per cycle of the room tone, a faint sawtooth (±48, far below any VAD threshold: the server hears
silence); no block length is a multiple of it, so no two neighbouring blocks are alike."""
_ROOM_TONE_CYCLE = b"".join((n - ROOM_TONE_PERIOD // 2).to_bytes(BYTES_PER_SAMPLE, "little", signed=True)
                            for n in range(ROOM_TONE_PERIOD))


def _ms(pcm_bytes: int) -> int:
    return round(pcm_bytes / BYTES_PER_SAMPLE * 1000 / SAMPLE_RATE)


class FakeVoiceIO:
    """Full-duplex audio without devices: 24 kHz mono int16, one block every `block_ms` of real time."""

    def __init__(self, *, block_ms: int = 20, speed: float = 1.0,
                 open_error: AudioDeviceError | None = None) -> None:
        """`open_error` is raised by `open` (a device that is missing or busy); `speed`: see the module."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.block_ms = block_ms
        self.speed = speed
        self._block_bytes = SAMPLE_RATE * block_ms // 1000 * BYTES_PER_SAMPLE
        self._open_error = open_error
        self._on_mic_block: MicBlockHandler | None = None
        self._devices: asyncio.Task[None] | None = None
        self._to_say = bytearray()
        self._room_phase = 0
        self._speaker_queue: deque[tuple[str, bytearray]] = deque()
        self._failure: AudioDeviceError | None = None
        self.captured: list[bytes] = []
        """Every microphone block handed to the session, in order."""
        self.played: defaultdict[str, bytearray] = defaultdict(bytearray)
        """Assistant audio the speaker played, by item."""
        self.cuts: list[PlaybackCut] = []
        """What each `interrupt` cut off."""
        self.opened = False
        self.closed = False
        self.active = True
        """What the session last said through `set_active`."""
        self.wake_level: float | None = None
        """What the session last said through `wake_on_sound`."""

    # -- the test's side -----------------------------------------------------------------------

    def say(self, pcm: bytes) -> None:
        """Have the microphone capture `pcm` (24 kHz mono int16) after what it has still to capture."""
        self._to_say += pcm

    @property
    def saying(self) -> bool:
        """Audio given to `say` has not all been captured yet."""
        return bool(self._to_say)

    def played_ms(self, item_id: str) -> int:
        """How much of assistant item `item_id` the speaker played."""
        return _ms(len(self.played.get(item_id, b"")))

    def unplug(self, error: AudioDeviceError) -> None:
        """A device died while running: `failure` says so from now on."""
        self._failure = error

    # -- VoiceIO -------------------------------------------------------------------------------

    async def open(self, on_mic_block: MicBlockHandler) -> None:
        if self._open_error is not None:
            raise self._open_error
        if self._devices is not None:
            raise RuntimeError("the audio devices are already open")
        self._on_mic_block = on_mic_block
        self.opened = True
        self._devices = asyncio.create_task(self._run_devices(), name="fake-voice-devices")

    def play(self, item_id: str, pcm: bytes) -> None:
        if self._devices is not None and pcm:
            self._speaker_queue.append((item_id, bytearray(pcm)))

    def interrupt(self) -> PlaybackCut | None:
        if not self._speaker_queue:
            return None
        item_id = self._speaker_queue[0][0]
        self._speaker_queue.clear()
        self.cuts.append(PlaybackCut(item_id, self.played_ms(item_id)))
        return self.cuts[-1]

    def set_active(self, active: bool) -> None:
        self.active = active

    def wake_on_sound(self, level: float | None) -> None:
        self.wake_level = level

    def echo_resemblance(self, heard: bytes, ended_at: float) -> float:
        return 0.0  # no echo path

    @property
    def is_playing(self) -> bool:
        return bool(self._speaker_queue)

    @property
    def failure(self) -> AudioDeviceError | None:
        return self._failure

    async def close(self) -> None:
        devices, self._devices = self._devices, None
        if devices is not None:
            devices.cancel()
            await asyncio.wait({devices})
        self._speaker_queue.clear()
        self.closed = True

    # -- the devices' clock --------------------------------------------------------------------

    async def _run_devices(self) -> None:
        """Each block period: the speaker takes a block of what is queued, the microphone captures one."""
        loop = asyncio.get_running_loop()
        period = self.block_ms / 1000 / self.speed
        due = loop.time()
        while True:
            due += period
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._play_block()
            block = self._capture_block()
            self.captured.append(block)
            assert self._on_mic_block is not None
            self._on_mic_block(block, time.monotonic())

    def _play_block(self) -> None:
        wanted = self._block_bytes
        while wanted and self._speaker_queue:
            item_id, pcm = self._speaker_queue[0]
            taken = pcm[:wanted]
            del pcm[:wanted]
            self.played[item_id] += taken
            wanted -= len(taken)
            if not pcm:
                self._speaker_queue.popleft()

    def _capture_block(self) -> bytes:
        size = self._block_bytes
        said = bytes(self._to_say[:size])
        del self._to_say[:size]
        tone_bytes = size - len(said)
        start = self._room_phase * BYTES_PER_SAMPLE
        cycles = (start + tone_bytes) // len(_ROOM_TONE_CYCLE) + 1
        tone = (_ROOM_TONE_CYCLE * cycles)[start : start + tone_bytes]
        self._room_phase = (self._room_phase + tone_bytes // BYTES_PER_SAMPLE) % ROOM_TONE_PERIOD
        return said + tone
