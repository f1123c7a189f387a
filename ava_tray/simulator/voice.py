"""The simulator's ears and mouth: energy-based turn detection and a synthetic voice (24 kHz int16 mono)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ava_tray.realtime.events import BYTES_PER_SAMPLE, SAMPLE_RATE
from ava_tray.realtime.events import pcm_duration_ms as pcm_ms

logger = logging.getLogger(__name__)

WINDOW_MS = 20
WINDOW_BYTES = SAMPLE_RATE * WINDOW_MS // 1000 * BYTES_PER_SAMPLE
ONSET_MS = 60
"""Speech must stay above the threshold this long before it counts (a click is not a turn)."""
IDLE_BUFFER_LIMIT_MS = 60_000
"""Uncommitted audio kept while nobody speaks; older audio is dropped."""
MAX_TURN_MS = 60_000
"""A turn longer than this (a noisy microphone, say) is ended anyway, so memory stays bounded."""


def ms_bytes(ms: float) -> int:
    """Bytes of 24 kHz mono int16 audio in `ms` milliseconds (whole samples)."""
    return round(ms * SAMPLE_RATE / 1000.0) * BYTES_PER_SAMPLE


def rms(pcm: bytes) -> float:
    """Root mean square of int16 samples (0 for no samples)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples * samples)))


@dataclass(frozen=True)
class SpeechStarted:
    """The user started speaking at `audio_start_ms` (position in the session's input audio)."""

    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    """The user stopped speaking at `audio_end_ms`; `pcm` is the speech itself (no trailing silence)."""

    audio_end_ms: int
    pcm: bytes


TurnEvent = SpeechStarted | SpeechStopped


class TurnDetector:
    """Server-VAD stand-in: RMS per 20 ms window against a fixed threshold.

    Speech starts after `ONSET_MS` above the threshold and stops after `silence_ms` below it.
    The detector also holds the uncommitted input buffer, for `input_audio_buffer.commit`.
    """

    def __init__(self, threshold: float, silence_ms: int) -> None:
        self.threshold = threshold
        self.silence_ms = silence_ms
        self.enabled = True
        self.position_ms = 0.0
        self._partial = b""
        self._buffer = bytearray()  # uncommitted input audio
        self._run_start: int | None = None  # buffer offset where the current loud run began
        self._run_start_ms = 0.0
        self._run_ms = 0
        self._speech_start: int | None = None  # buffer offset of the speech in progress
        self._voiced_end = 0  # buffer offset just after the last loud window
        self._silence_run_ms = 0

    @property
    def in_speech(self) -> bool:
        return self._speech_start is not None

    @property
    def buffered_ms(self) -> float:
        return pcm_ms(len(self._buffer) + len(self._partial))

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        """Take one append's PCM; return the turn events it caused, in order."""
        data = self._partial + pcm
        whole = len(data) - len(data) % WINDOW_BYTES
        self._partial = data[whole:]
        events: list[TurnEvent] = []
        for start in range(0, whole, WINDOW_BYTES):
            event = self._window(data[start : start + WINDOW_BYTES])
            if event is not None:
                events.append(event)
        return events

    def _window(self, window: bytes) -> TurnEvent | None:
        offset = len(self._buffer)
        window_start_ms = self.position_ms
        self._buffer += window
        self.position_ms += WINDOW_MS
        if not self.enabled:
            self._trim_idle()
            return None
        loud = rms(window) >= self.threshold
        if self._speech_start is None:
            if not loud:
                self._run_start, self._run_ms = None, 0
                self._trim_idle()
                return None
            if self._run_start is None:
                self._run_start = offset
                self._run_start_ms = window_start_ms
            self._run_ms += WINDOW_MS
            if self._run_ms < ONSET_MS:
                return None
            self._speech_start = self._run_start
            self._voiced_end = len(self._buffer)
            self._silence_run_ms = 0
            return SpeechStarted(audio_start_ms=int(self._run_start_ms))
        if loud:
            self._voiced_end = len(self._buffer)
            self._silence_run_ms = 0
            if self._voiced_end - self._speech_start >= ms_bytes(MAX_TURN_MS):
                return self._end_speech()
            return None
        self._silence_run_ms += WINDOW_MS
        if self._silence_run_ms < self.silence_ms:
            return None
        return self._end_speech()

    def _end_speech(self) -> SpeechStopped:
        assert self._speech_start is not None
        speech = bytes(self._buffer[self._speech_start : self._voiced_end])
        end_ms = self.position_ms - pcm_ms(len(self._buffer) - self._voiced_end)
        self._reset_buffer()
        return SpeechStopped(audio_end_ms=int(end_ms), pcm=speech)

    def commit(self) -> bytes:
        """Take the whole uncommitted buffer as one turn (manual commit); ends any speech in progress."""
        pcm = bytes(self._buffer) + self._partial
        self._partial = b""
        self._reset_buffer()
        return pcm

    def clear(self) -> None:
        """Drop the uncommitted buffer (`input_audio_buffer.clear`)."""
        self._partial = b""
        self._reset_buffer()

    def _reset_buffer(self) -> None:
        self._buffer.clear()
        self._run_start, self._run_ms = None, 0
        self._speech_start = None
        self._voiced_end = 0
        self._silence_run_ms = 0

    def _trim_idle(self) -> None:
        limit = ms_bytes(IDLE_BUFFER_LIMIT_MS)
        if len(self._buffer) > limit and self._run_start is None:
            del self._buffer[: len(self._buffer) - limit]


def synthetic_voice(seconds: float, amplitude: float = 8000.0) -> bytes:
    """A deterministic voice-like signal: a gliding 140–220 Hz harmonic tone in syllables.

    Loud enough to be heard and to look like speech on a level meter; the same input gives the same bytes.
    """
    count = max(0, round(seconds * SAMPLE_RATE))
    if count == 0:
        return b""
    t = np.arange(count, dtype=np.float64) / SAMPLE_RATE
    # Pitch glides between 140 and 220 Hz like intonation; integrate it into a phase.
    pitch = 180.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t) * np.cos(2 * np.pi * 0.23 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    tone = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase) + 0.12 * np.sin(4 * phase)
    tone /= 1.87
    # Syllables of about 200 ms, each with its own loudness, and short gaps between words.
    syllable = np.clip(np.sin(np.pi * 5.0 * t), 0.0, None) ** 0.6
    word_gap = (np.sin(2 * np.pi * 0.9 * t + 0.5) > -0.85).astype(np.float64)
    loudness = 0.75 + 0.25 * np.sin(2 * np.pi * 1.3 * t + 1.0)
    envelope = syllable * word_gap * loudness
    # Short fades so the signal never clicks at its ends.
    fade = min(count // 2, SAMPLE_RATE // 100)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        envelope[:fade] *= ramp
        envelope[-fade:] *= ramp[::-1]
    samples = np.clip(amplitude * tone * envelope, -32768, 32767).astype("<i2")
    return samples.tobytes()
