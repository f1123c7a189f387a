"""Client-side latency figures for the benchmark: bounded samples and their percentiles."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class LatencySamples:
    """The most recent latencies in milliseconds."""

    samples: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))

    def add(self, milliseconds: float) -> None:
        self.samples.append(milliseconds)

    def percentile(self, share: float) -> float | None:
        """The `share` (0..1) percentile, or None with no samples."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
        return ordered[index]


@dataclass
class AudioLatency:
    """Microphone block captured → sent on the socket; audio delta received → handed to the device."""

    mic_to_socket: LatencySamples = field(default_factory=LatencySamples)
    socket_to_device: LatencySamples = field(default_factory=LatencySamples)
