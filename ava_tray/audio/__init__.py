"""Microphone capture and speaker playback: the only part of AVA with threads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class AudioDeviceError(Exception):
    """An audio device is missing, busy or unplugged; the message is a sentence a user can act on."""


@dataclass(frozen=True)
class PlaybackCut:
    """What was cut off by a barge-in: the item and how much of it the user actually heard."""

    item_id: str
    played_ms: int


MicBlockHandler = Callable[[bytes, float], None]
"""Called on the event loop with 24 kHz mono int16 PCM and the monotonic time it was captured."""


class VoiceIO(Protocol):
    """Full-duplex audio for one or more sessions: 24 kHz mono int16 in both directions."""

    async def open(self, on_mic_block: MicBlockHandler) -> None:
        """Open and start both streams; raise `AudioDeviceError` with a clear sentence if a device fails."""
        ...

    def play(self, item_id: str, pcm: bytes) -> None:
        """Queue assistant audio (24 kHz mono int16) for the speaker; never blocks."""
        ...

    def interrupt(self) -> PlaybackCut | None:
        """Stop playback at once and drop what is queued; say what was cut and how much was heard."""
        ...

    def set_active(self, active: bool) -> None:
        """Whether the conversation is active (someone speaks, AVA speaks or is about to answer): the devices
        may save work while it is not (fewer wake-ups, the speaker's stream asleep), never losing audio."""
        ...

    def wake_on_sound(self, level: float | None) -> None:
        """While idle, a microphone block whose RMS (int16 units) reaches `level` goes to the loop at once rather
        than with its batch, so a voice that starts in a quiet room is judged, and sent, without waiting for the
        batch to fill; None: batches only."""
        ...

    def echo_resemblance(self, heard: bytes, ended_at: float) -> float:
        """How closely microphone audio (24 kHz int16, the front end's output) that ended at monotonic `ended_at`
        follows what the speaker played just before it, in [-1, 1] (see `ava_tray/audio/own_voice.py`); 0 when no
        echo can come back (headphones, nothing played)."""
        ...

    @property
    def is_playing(self) -> bool:
        """True while queued assistant audio has not all reached the device."""
        ...

    @property
    def failure(self) -> AudioDeviceError | None:
        """Set when a stream died while running (device unplugged): the session ends with it."""
        ...

    async def close(self) -> None:
        """Stop and close both streams and end any thread; idempotent."""
        ...
