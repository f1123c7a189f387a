"""A stateful resampler for continuous mono int16 streams, so blocks join without clicks."""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Int16Array = npt.NDArray[np.int16]


class LinearResampler:
    """Linear interpolation from one rate to another across any number of blocks.

    The last input sample and the fractional read position carry over from one block to the next,
    so a stream cut into blocks resamples exactly as if it were given in one piece. Linear
    interpolation has no anti-alias filter: fine for speech between 24 kHz and common device rates.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._step = src_rate / dst_rate  # input samples advanced per output sample
        self._prev: float | None = None  # last input sample of the previous block
        self._pos = 0.0  # next output position, in input samples, relative to `_prev`

    def reset(self) -> None:
        """Forget the stream so far (after a cut): the next block starts a new stream."""
        self._prev = None
        self._pos = 0.0

    def process(self, block: npt.NDArray[np.int16]) -> Int16Array:
        """Resample the next block of the stream; the output may be a sample longer or shorter."""
        if block.size == 0:
            return np.zeros(0, dtype=np.int16)
        samples = block.astype(np.float64)
        if self._prev is None:
            # Pretend the stream began with a copy of its first sample, read from index 1.
            self._prev = float(samples[0])
            self._pos = 1.0
        x = np.empty(samples.size + 1, dtype=np.float64)
        x[0] = self._prev
        x[1:] = samples
        last = x.size - 1
        # Emit every position strictly before the last sample: that one starts the next block.
        count = max(0, math.ceil((last - self._pos) / self._step))
        positions = self._pos + self._step * np.arange(count, dtype=np.float64)
        out = np.interp(positions, np.arange(x.size, dtype=np.float64), x)
        self._pos = self._pos + self._step * count - last
        self._prev = float(x[last])
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)

    def process_bytes(self, pcm: bytes) -> bytes:
        """`process` on little-endian int16 bytes."""
        return self.process(np.frombuffer(pcm, dtype="<i2")).astype("<i2").tobytes()
