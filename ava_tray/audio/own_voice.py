"""Is it AVA's own voice? A second opinion on the echo-cancelled microphone, against what the speaker played.

Echo cancellation removes AVA's voice from the microphone almost always. When it slips (the echo path jumps: a
sound server's latency correction, a Bluetooth hiccup, a device under load), its residue is AVA's own words, and
the voice gate would take them for the user and AVA would cut itself off. So before the gate opens while AVA speaks,
it asks here whether what it heard follows what the speaker played a moment before.

The comparison is of coarse spectro-temporal patterns (log energy in 16 bands, every 10 ms), each band's and each
frame's mean removed, at every delay the echo could have: the room and the devices filter and delay the echo, which
shifts each band by a constant and the whole pattern in time, and neither hides the resemblance. A user talking over
AVA follows a pattern of their own. Quiet frames are floored well below the loudest, so a faint residue under the
user's voice does not count. Qt-free, no I/O; the work runs only when the gate is about to open while AVA speaks.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque

import numpy as np
import numpy.typing as npt

from ava_tray.realtime.events import SAMPLE_RATE

logger = logging.getLogger(__name__)

FRAME = SAMPLE_RATE // 50
"""Samples per analysis frame (20 ms)..."""
HOP = SAMPLE_RATE // 100
"""... one every 10 ms."""
BANDS = 16
"""Bands compared, spaced evenly in pitch from `LOWEST_HZ` to `HIGHEST_HZ`: speech's range."""
LOWEST_HZ, HIGHEST_HZ = 120.0, 6000.0
FLOOR_DB = 25.0
"""Band energies this far below a signal's loudest count as silence (a faint residue under a voice)."""
HEARD_S = 0.3
"""How much of the microphone is compared: the moment the gate would open, and what came just before it."""
LATEST_S = -0.03
"""The echo can be heard at the earliest this long after the speaker took it (negative: the two clocks' jitter)."""
EARLIEST_S = 0.6
"""... and at the latest this long after, beyond the devices' own latency."""
KEEP_S = 2.5
"""What the speaker played is kept this long."""
SAME_VOICE = 0.75
"""A resemblance at or above this says the microphone heard AVA. Through a simulated room, 40 places each, espeak-ng's
speech and the simulator's voice as AVA's (`tests/unit/audio/test_own_voice.py`): AVA's echo alone 0.82-0.98; a
user over AVA's echo 20 dB under their voice (echo cancellation at work) at most 0.58; a user over all of AVA's echo
6 dB under their voice (echo cancellation removing nothing), median 0.41-0.45, 3-5 % of places above. On the
loopback echo path with echo cancellation removing nothing (`tests/e2e/test_voice_gate_e2e.py`): AVA's echo 0.81-1.00,
a user 0.67-0.74."""


def _band_edges() -> list[int]:
    """The DFT bins (of a `FRAME`) where each band starts, and where the last ends."""
    edges = [math.ceil(hz * FRAME / SAMPLE_RATE - 1e-9) for hz in np.geomspace(LOWEST_HZ, HIGHEST_HZ, BANDS + 1)]
    for index in range(1, len(edges)):
        edges[index] = max(edges[index], edges[index - 1] + 1)
    return edges


_EDGES = _band_edges()
_BANDS = [slice(lo - _EDGES[0], hi - _EDGES[0]) for lo, hi in itertools.pairwise(_EDGES)]
_ANGLES = 2 * np.pi * np.outer(np.arange(FRAME), np.arange(_EDGES[0], _EDGES[-1])) / FRAME
_WINDOW = np.hanning(FRAME)
_COSINES = _WINDOW[:, None] * np.cos(_ANGLES)
_SINES = _WINDOW[:, None] * np.sin(_ANGLES)
"""The windowed DFT of the bins the bands cover, as two matrices: numpy's FFT module is left out of the frozen
build (`packaging/ava-tray.spec`), and for a few dozen frames a product of matrices is as quick."""


def band_energy(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """Log band energies (dB/10), frames × bands: 20 ms frames every 10 ms."""
    frames = (samples.size - FRAME) // HOP + 1
    if frames <= 0:
        return np.zeros((0, BANDS))
    index = np.arange(FRAME)[None, :] + HOP * np.arange(frames)[:, None]
    framed = samples.astype(np.float64)[index]
    spectrum = (framed @ _COSINES) ** 2 + (framed @ _SINES) ** 2
    energy = np.stack([spectrum[:, band].sum(axis=1) for band in _BANDS], axis=1)
    logs: npt.NDArray[np.float64] = np.log10(np.maximum(energy, 1.0))
    return logs


def _floored(logs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each pattern (over the last two axes) floored `FLOOR_DB` below its own loudest band energy."""
    loudest = logs.max(axis=(-2, -1), keepdims=True)
    floored: npt.NDArray[np.float64] = np.maximum(logs, loudest - FLOOR_DB / 10)
    return floored


def _centred(pattern: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each band's mean and each frame's mean removed (over the last two axes): what is left is how the spectrum
    moves, not how loud a band is (the room's colour) or a frame is (the loudness envelope every voice has)."""
    by_band = pattern - pattern.mean(axis=-2, keepdims=True)
    centred: npt.NDArray[np.float64] = by_band - by_band.mean(axis=-1, keepdims=True)
    return centred


def resemblance(heard: npt.NDArray[np.int16], played: npt.NDArray[np.int16]) -> float:
    """How closely `heard` follows some stretch of `played` as long as it (a correlation in [-1, 1], the best over
    every 10 ms step); 0 when either is silent or too short to say."""
    mine, theirs = band_energy(heard), band_energy(played)
    length = mine.shape[0]
    if length < 5 or theirs.shape[0] < length:
        return 0.0
    mine = _centred(_floored(mine))
    mine_norm = float(np.sqrt(np.sum(mine * mine)))
    if mine_norm < 1e-6:
        return 0.0
    stretches = _centred(_floored(np.lib.stride_tricks.sliding_window_view(theirs, length, axis=0).transpose(0, 2, 1)))
    norms = np.sqrt(np.sum(stretches * stretches, axis=(1, 2)))
    products = np.einsum("sfb,fb->s", stretches, mine)
    valid = norms > 1e-6
    if not valid.any():
        return 0.0
    return float(np.max(products[valid] / (norms[valid] * mine_norm)))


class PlayedAudio:
    """What the speaker played lately (24 kHz mono int16), by the monotonic time it took each chunk."""

    def __init__(self, keep_s: float = KEEP_S) -> None:
        self._keep_s = keep_s
        self._chunks: deque[tuple[float, npt.NDArray[np.int16]]] = deque()

    def add(self, taken_at: float, samples: npt.NDArray[np.int16]) -> None:
        """A chunk the speaker took at `taken_at`; older chunks than `keep_s` before it are forgotten."""
        self._chunks.append((taken_at, samples))
        while self._chunks and self._chunks[0][0] < taken_at - self._keep_s:
            self._chunks.popleft()

    def between(self, start: float, end: float) -> npt.NDArray[np.int16]:
        """The played audio from `start` to `end`, silence where nothing played."""
        out = np.zeros(max(0, round((end - start) * SAMPLE_RATE)), dtype=np.int16)
        for taken_at, samples in self._chunks:
            first = round((taken_at - start) * SAMPLE_RATE)
            lo, hi = max(0, first), min(out.size, first + samples.size)
            if lo < hi:
                out[lo:hi] = samples[lo - first : hi - first]
        return out

    def heard_in(self, heard: npt.NDArray[np.int16], ended_at: float, delay_s: float = 0.0) -> float:
        """How closely `heard` (microphone audio that ended at `ended_at`) follows what was played before it, at
        any delay from `LATEST_S` to `delay_s + EARLIEST_S` (`delay_s`: the devices' latency)."""
        began = ended_at - heard.size / SAMPLE_RATE
        played = self.between(began - delay_s - EARLIEST_S, ended_at - LATEST_S)
        return resemblance(heard, played)


def measure_on_synthetic_echo() -> float:
    """The resemblance of a synthetic echo of the simulator's voice (150 ms late, 20 dB down, a reflection) to what
    was played: the self-test's proof that the check works where AVA runs (the frozen build's numpy)."""
    from ava_tray.simulator.voice import synthetic_voice

    played = np.frombuffer(synthetic_voice(2.0), dtype="<i2").astype(np.float64)
    delay = SAMPLE_RATE * 150 // 1000
    echo = np.zeros_like(played)
    echo[delay:] = played[: played.size - delay] * 0.1
    echo[delay + 60 :] += played[: played.size - delay - 60] * 0.04
    heard = slice(SAMPLE_RATE * 3 // 2 - round(HEARD_S * SAMPLE_RATE), SAMPLE_RATE * 3 // 2)
    before = slice(heard.start - round(EARLIEST_S * SAMPLE_RATE), heard.stop)
    return resemblance(echo[heard].astype(np.int16), played[before].astype(np.int16))
