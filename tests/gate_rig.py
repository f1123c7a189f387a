"""What the voice gate let through, measured against labelled speech: for the end-to-end tests and the benchmark.

The microphone's stream as the conversation got it (after the device layer: resampling, echo cancellation) is
recorded by `TeeVoiceIO`; the server's appends are exact pieces of it (the gate never alters audio); one
cross-correlation places that stream on the labelled scene that was played into the virtual microphone.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import room_audio as ra

from ava_tray.audio import AudioDeviceError, MicBlockHandler, PlaybackCut, VoiceIO, echo
from ava_tray.simulator import RealtimeSimulator, SimulatedSession
from ava_tray.simulator.voice import SpeechStarted, TurnDetector


class TeeVoiceIO:
    """A `VoiceIO` that keeps every microphone block the conversation is handed, in order."""

    def __init__(self, inner: VoiceIO) -> None:
        self.inner = inner
        self.blocks: list[bytes] = []
        self.times: list[float] = []
        """When each block was captured (monotonic)."""

    @property
    def stream(self) -> bytes:
        return b"".join(self.blocks)

    def captured_at(self, sample: int) -> float:
        """When the block holding stream sample `sample` was captured."""
        ends = np.cumsum([len(block) // 2 for block in self.blocks])
        return self.times[min(int(np.searchsorted(ends, sample, side="right")), len(self.times) - 1)]

    async def open(self, on_mic_block: MicBlockHandler) -> None:
        def tee(pcm: bytes, captured_at: float) -> None:
            self.blocks.append(pcm)
            self.times.append(captured_at)
            on_mic_block(pcm, captured_at)

        await self.inner.open(tee)

    def play(self, item_id: str, pcm: bytes) -> None:
        self.inner.play(item_id, pcm)

    def interrupt(self) -> PlaybackCut | None:
        return self.inner.interrupt()

    def set_active(self, active: bool) -> None:
        self.inner.set_active(active)

    def wake_on_sound(self, level: float | None) -> None:
        self.inner.wake_on_sound(level)

    def echo_resemblance(self, heard: bytes, ended_at: float) -> float:
        return self.inner.echo_resemblance(heard, ended_at)

    @property
    def is_playing(self) -> bool:
        return self.inner.is_playing

    @property
    def failure(self) -> AudioDeviceError | None:
        return self.inner.failure

    async def close(self) -> None:
        await self.inner.close()


class LeakyCanceller:
    """A fault put in on purpose (install it as `echo._new_apm`): a real WebRTC processing module that is handed AVA's
    voice as always and then removes nothing from the microphone, as echo cancellation does for a moment when the
    echo path jumps."""

    real_module = staticmethod(echo._new_apm)

    def __init__(self) -> None:
        self.module = self.real_module()

    def process_reverse_stream(self, frame: object) -> None:
        self.module.process_reverse_stream(frame)

    def set_stream_delay_ms(self, delay_ms: int) -> None:
        self.module.set_stream_delay_ms(delay_ms)

    def process_stream(self, frame: object) -> None:
        pass  # AVA's voice comes back whole


def appended(sessions: Iterable[SimulatedSession]) -> list[bytes]:
    """Every append the server sessions received (the simulator must record audio), in order."""
    return [base64.b64decode(event["audio"]) for session in sessions for event in session.client_events
            if event["type"] == "input_audio_buffer.append"]


def sent_mask(stream: bytes, pieces: list[bytes]) -> npt.NDArray[np.bool_]:
    """Per sample of `stream`: was it sent. Each piece must be found, in order (the gate sends audio unaltered)."""
    sent = np.zeros(len(stream) // 2, dtype=bool)
    cursor = 0
    for piece in pieces:
        at = stream.find(piece, cursor)
        while at >= 0 and at % 2:
            at = stream.find(piece, at + 1)
        if at < 0:
            raise AssertionError("the server got audio that is not the microphone's, or out of order")
        sent[at // 2 : (at + len(piece)) // 2] = True
        cursor = at + len(piece)
    return sent


def server_turns(simulator: RealtimeSimulator, pieces: list[bytes],
                 sent: npt.NDArray[np.bool_]) -> tuple[list[int], list[int]]:
    """Where (stream samples) `simulator`'s VAD, given the same appends, started each turn, and where it heard the
    voice end in each turn it ended (it ends one only after its `silence_ms` of quiet): to say which sound it took for
    speech, and whether it saw each request end."""
    where = np.flatnonzero(sent)
    starts: list[int] = []
    ends: list[int] = []
    for event in TurnDetector(simulator.speech_threshold, simulator.silence_ms).feed(b"".join(pieces)):
        at = (event.audio_start_ms if isinstance(event, SpeechStarted) else event.audio_end_ms) * ra.RATE // 1000
        if where.size:
            (starts if isinstance(event, SpeechStarted) else ends).append(int(where[min(at, where.size - 1)]))
    return starts, ends


def lag_of(stream: bytes, scene: ra.Scene) -> int:
    """Where in `stream` (samples) the scene's first sample is: the peak of their cross-correlation."""
    heard = np.frombuffer(stream, dtype="<i2").astype(np.float64)
    played = scene.samples
    n = 1 << int(np.ceil(np.log2(heard.size + played.size)))
    correlation = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(played, n)), n)
    return int(np.argmax(correlation[: max(1, heard.size - played.size // 2)]))


def utterance_ends(scene: ra.Scene, lag: int, stream: bytes | None = None) -> list[int]:
    """Where (stream samples) each utterance's last speech frame ends."""
    ends = []
    for utterance in scene.utterances:
        here = local_lag(stream, scene, utterance, lag) if stream else lag
        first, end = utterance
        last = first + int(np.flatnonzero(scene.speech[first:end])[-1]) + 1
        ends.append(here + last * ra.FRAME)
    return ends


@dataclass(frozen=True)
class Delivered:
    """How one utterance reached the server."""

    share: float
    """Of its speech frames (10 ms), the share sent whole."""
    clipped_ms: int
    """Speech at its start that was not sent."""
    lead_ms: int
    """Audio sent before its first speech frame (the pre-roll; the server's prefix_padding_ms wants 300)."""
    trail_ms: int
    """Audio sent after its last speech frame (the server ends the turn after 500 ms of silence)."""


LOCAL_SEARCH = ra.RATE // 4
"""How far (samples) an utterance may sit from where the whole scene's lag puts it: a device that dropped blocks
(an overflow on a busy machine) shifts what follows."""


def local_lag(stream: bytes, scene: ra.Scene, utterance: tuple[int, int], lag: int) -> int:
    """The lag that best places this utterance on `stream`, within `LOCAL_SEARCH` of the scene's `lag`."""
    heard = np.frombuffer(stream, dtype="<i2").astype(np.float64)
    first, end = utterance
    voice = scene.samples[first * ra.FRAME : end * ra.FRAME]
    start = max(0, lag + first * ra.FRAME - LOCAL_SEARCH)
    around = heard[start : lag + end * ra.FRAME + LOCAL_SEARCH]
    if around.size < voice.size:
        return lag
    n = 1 << int(np.ceil(np.log2(around.size + voice.size)))
    correlation = np.fft.irfft(np.fft.rfft(around, n) * np.conj(np.fft.rfft(voice, n)), n)
    return start + int(np.argmax(correlation[: around.size - voice.size + 1])) - first * ra.FRAME


def delivered(scene: ra.Scene, sent: npt.NDArray[np.bool_], lag: int, stream: bytes | None = None) -> list[Delivered]:
    """For each utterance of `scene`: what of it the server got, given the stream's `sent` mask and its `lag`
    (refined per utterance when the `stream` is given)."""
    results = []
    for utterance in scene.utterances:
        results.append(_delivered(scene, sent, local_lag(stream, scene, utterance, lag) if stream else lag,
                                  utterance))
    return results


def _delivered(scene: ra.Scene, sent: npt.NDArray[np.bool_], lag: int, utterance: tuple[int, int]) -> Delivered:
    first, end = utterance
    got = np.zeros(end - first, dtype=bool)
    for index in range(end - first):
        start = lag + (first + index) * ra.FRAME
        got[index] = start >= 0 and start + ra.FRAME <= sent.size and bool(sent[start : start + ra.FRAME].all())
    speech = scene.speech[first:end]
    share = float((got & speech).sum() / speech.sum())
    voiced = np.flatnonzero(speech)
    after_onset = got[voiced[0] :]
    clipped = int(np.flatnonzero(after_onset)[0]) if after_onset.any() else end - first
    head = lag + (first + voiced[0]) * ra.FRAME
    lead = 0
    while head - lead - 1 >= 0 and sent[head - lead - 1]:
        lead += 1
    tail = lag + (first + voiced[-1] + 1) * ra.FRAME
    trail = 0
    while tail + trail < sent.size and sent[tail + trail]:
        trail += 1
    return Delivered(share, clipped * 10, lead * 1000 // ra.RATE, trail * 1000 // ra.RATE)
