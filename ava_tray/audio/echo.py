"""The microphone's front end: echo cancellation (WebRTC's audio processing module) or half-duplex.

On laptop speakers AVA's own voice leaks into the microphone; the server's VAD would take it for the
user and AVA would cut itself off. `EchoFrontEnd` removes that echo before a block leaves the device
layer, using the WebRTC audio processing module shipped in the `livekit` package
(`livekit.rtc.AudioProcessingModule`: AEC3 and a high-pass filter), at 24 kHz in 10 ms frames.

It works only while there is an echo to remove: from AVA's first audible block until `ECHO_TAIL_S` (plus the
devices' latency) after its last one. In between replies the microphone passes untouched and the speaker's
silence is not copied, so a silent room costs nothing here. The module is never reset between replies: what
AEC3 has learnt of the echo path stays. That matters for double talk: until AEC3 has heard a few seconds of far
end, its suppressor assumes a loud echo and takes 4-20 dB off a user who talks over AVA (measured). So a fresh
module is first warmed up offline (`warmed_up`); the user then keeps their level within about 1 dB from AVA's
first reply on. WebRTC's noise
suppression is not used: it took a further 9 dB off steady voiced sounds during AVA's replies, and it could only
ever run while AVA speaks (the server has its own noise reduction, and the voice gate its own speech model).

Where the work runs, and why it stays in time order:
- The speaker's callback (PortAudio's thread) only copies what it hands to the device, stamped with
  `time.monotonic()`, into a lock-protected reference queue: a few microseconds, never blocking.
- On the event loop, before a microphone block captured at time *t* is processed, every reference chunk
  stamped at or before *t* goes through `process_reverse_stream`, then the block through `process_stream`.
  So the far end always reaches the canceller before the near-end audio that could contain its echo,
  however late the loop runs; a stalled loop delays both sides alike.
- The canceller pauses between replies, and on resuming it keeps its two streams in step (`Canceller`): AEC3
  lines the echo up by counting frames, not by clocks.
- The reference is exactly what the output device got (silence padding included), brought back to 24 kHz
  with the same linear resampler family when the device runs at another rate.

When the library cannot load (ImportError/OSError) the front end falls back to half-duplex: while AVA
speaks, and for a short tail after, the microphone sends silence (the user cannot interrupt AVA then).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from ava_tray.audio.own_voice import PlayedAudio
from ava_tray.audio.resample import LinearResampler
from ava_tray.realtime.events import BYTES_PER_SAMPLE, SAMPLE_RATE

logger = logging.getLogger(__name__)

RATE: Final = SAMPLE_RATE
FRAME_SAMPLES: Final = RATE // 100
"""The audio processing module takes exactly 10 ms per call."""
FRAME_BYTES: Final = FRAME_SAMPLES * BYTES_PER_SAMPLE
FRAME_MS: Final = 1000 * FRAME_SAMPLES // RATE

AUDIO_MODE_LABELS: Final = {
    "automatic": "Automatic (headsets off, speakers on)",
    "speakers": "Speakers (echo cancellation)",
    "headphones": "Headphones (no echo cancellation)",
}

HEADSET_WORDS: Final = ("headset", "headphone", "earphone", "earbud", "airpods", "buds", "bluetooth", "bluez",
                        "hands-free", "handsfree", "a2dp", "hfp", "hsp")
"""Words in an output device's name that mean the sound goes to the ears, not into the room."""

HALF_DUPLEX_TAIL_S: Final = 0.3
"""After AVA's last audible block the microphone stays muted this long (plus the devices' latency)."""
ECHO_TAIL_S: Final = 0.5
"""After AVA's last audible block the canceller keeps working this long (plus the devices' latency): the echo
still on its way back, and the room's reverberation."""
REALIGN_LIMIT_S: Final = 0.5
"""On resuming, at most this much silence keeps the canceller's two streams in step (more means a stalled loop,
not a pause)."""
WARM_UP_S: Final = 5.5
"""How much far end a fresh canceller is warmed up with (`warmed_up`): past AEC3's cautious start (about 5 s),
short of its transparent mode (about 6 s)."""
REFERENCE_LIMIT_S: Final = 2.0
"""Reference audio kept for the loop at most; older chunks are dropped (a stalled loop loses echo, not memory)."""

Processing = Literal["aec", "half-duplex", "off"]

STATE_ON: Final = "on"
STATE_HEADPHONES: Final = "off (headphones)"
STATE_UNAVAILABLE: Final = "unavailable: half-duplex"


def looks_like_headset(device_name: str) -> bool:
    """True when an output device's name says headphones, a headset or Bluetooth."""
    name = device_name.lower()
    return any(word in name for word in HEADSET_WORDS)


def wants_echo_cancellation(mode: str, output_name: str) -> bool:
    """Whether `mode` ("speakers", "headphones", "automatic") asks for echo cancellation on this output."""
    if mode == "speakers":
        return True
    if mode == "headphones":
        return False
    return not looks_like_headset(output_name)


_load_error: str | None = None
_loaded = False


def load_error() -> str | None:
    """Why the audio processing library cannot be used here, or None when it loads."""
    global _loaded, _load_error
    if not _loaded:
        try:
            _new_apm()
        except (ImportError, OSError) as exc:
            _load_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.warning("echo cancellation unavailable (half-duplex instead): %s", _load_error)
        _loaded = True
    return _load_error


def _new_apm() -> Any:
    """A fresh WebRTC audio processing module: echo cancellation and a high-pass filter (see the module
    docstring for why not noise suppression)."""
    from livekit import rtc

    return rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)


def white_noise(count: int, start: int = 0) -> npt.NDArray[np.float64]:
    """`count` samples of deterministic white noise in [-0.5, 0.5) (an integer hash of the sample's index from `start`),
    without numpy.random, which the frozen build leaves out."""
    x = np.arange(start + 1, start + count + 1, dtype=np.uint32) * np.uint32(2654435761)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x45D9F3B)
    x ^= x >> np.uint32(16)
    return x.astype(np.float64) / 2**32 - 0.5


def warmed_up(apm: Any) -> Any:
    """`apm`, past AEC3's cautious start: `WARM_UP_S` of a voice-like far end with a silent room, as fast as it runs
    (about 0.2 s of CPU, on the thread that opens the devices).

    A fresh AEC3 assumes a loud echo until it has heard seconds of far end, and takes 4-20 dB off a user who talks
    over AVA's first reply. A real echo path is still learnt from AVA's first words (its linear filter adapts as
    before), and the warm-up must stop before AEC3 decides there is no echo at all ("transparent mode", about 6 s
    of this signal), or AVA's first half second would come back whole. Both sides of that window are pinned by
    `tests/unit/audio/test_echo.py`, which runs this module offline."""
    from livekit import rtc

    began = time.perf_counter()
    count = round(WARM_UP_S * 100) * FRAME_SAMPLES
    room = (white_noise(FRAME_SAMPLES, start=count) * 10).astype("<i2").tobytes()
    index = np.arange(count)
    frame_start = (index // FRAME_SAMPLES) / 100
    t = frame_start + (index % FRAME_SAMPLES) / RATE
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.7 * frame_start)
    loudness = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * frame_start) ** 2
    tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 12))
    far = (tone * 3000 * loudness + white_noise(count) * 1000).astype("<i2").tobytes()
    for start in range(0, len(far), FRAME_BYTES):
        apm.process_reverse_stream(rtc.AudioFrame(far[start : start + FRAME_BYTES], RATE, 1, FRAME_SAMPLES))
        apm.process_stream(rtc.AudioFrame(room, RATE, 1, FRAME_SAMPLES))
    logger.debug("echo cancellation warmed up in %.0f ms", (time.perf_counter() - began) * 1000)
    return apm


@dataclass
class Canceller:
    """One WebRTC processing module, and where its two streams stopped when the canceller last paused.

    AEC3 has no clock: it lines AVA's voice up with its echo by counting the frames of each stream it was handed.
    The front end pauses both streams between replies, and the two pauses are never exactly as long (the speaker's
    blocks and the microphone's fall at different moments), so on resuming it feeds silence to the stream that
    skipped more time (`realign`). Without that, the count moved by about 20 ms a reply, and every few replies AVA's
    first half second came back uncancelled, loud enough to take for the user (measured on the loopback echo path:
    3 of 20 replies cut themselves off)."""

    apm: Any
    render_end: float | None = None
    """Monotonic time at which the last reference chunk handed to the module ended (the speaker's clock)."""
    capture_end: float | None = None
    """Monotonic time at which the last microphone block handed to the module ended."""


class EchoMemory:
    """What the canceller has learnt of the room, kept across device re-openings (a reconnect re-opens them):
    AEC3 needs seconds of AVA's voice to learn the echo path; a canceller carried on keeps what it learnt (the first
    reply after a reconnect passes a user who talks over it within 1 dB).
    One module per microphone and speaker pair; new devices, a new one."""

    def __init__(self) -> None:
        self._devices: tuple[str, str] | None = None
        self._canceller: Canceller | None = None

    def canceller_for(self, input_name: str, output_name: str) -> Canceller:
        """The canceller for this pair of devices: the one already trained on them, or a fresh one."""
        devices = (input_name, output_name)
        if self._canceller is None or devices != self._devices:
            self._canceller = Canceller(warmed_up(_new_apm()))
            self._devices = devices
        else:
            logger.debug("echo cancellation: keeping what it learnt of %s -> %s", output_name, input_name)
        return self._canceller


def processing_for(mode: str, output_name: str) -> Processing:
    """What the front end does for this mode and output device, given whether the library loads."""
    if not wants_echo_cancellation(mode, output_name):
        return "off"
    return "half-duplex" if load_error() is not None else "aec"


def state_line(processing: Processing) -> str:
    """The status window's and self-test's words for a processing choice."""
    return {"aec": STATE_ON, "off": STATE_HEADPHONES, "half-duplex": STATE_UNAVAILABLE}[processing]


@dataclass
class EchoStats:
    """Counters for benchmarks and logs."""

    far_frames: int = 0
    near_frames: int = 0
    muted_frames: int = 0
    passed_frames: int = 0
    """Microphone frames passed untouched because no echo was due (between replies)."""
    dropped_reference_chunks: int = 0
    realigned_frames: int = 0
    """Silent frames fed on resuming to keep the two streams in step: positive to the speaker's, negative to the
    microphone's."""
    cpu_seconds: float = 0.0
    """Time spent in the processing module (both directions)."""


class EchoFrontEnd:
    """Cleans microphone audio of AVA's own voice; see the module docstring for the threading."""

    def __init__(self, processing: Processing, *, output_rate: int = RATE, delay_ms: int = 0,
                 clock: Callable[[], float] = time.monotonic, canceller: Canceller | None = None) -> None:
        """`clock`: the monotonic clock the speaker's blocks are stamped with (the microphone's `captured_at`);
        `canceller`: a trained canceller to carry on with (`EchoMemory`), else a fresh one."""
        self.processing: Processing = processing
        self._clock = clock
        self.stats = EchoStats()
        self._delay_ms = max(0, min(500, delay_ms))
        self._lock = threading.Lock()
        self._reference: collections.deque[tuple[float, bytes]] = collections.deque()
        self._reference_bytes = 0
        self._reference_limit = int(output_rate * REFERENCE_LIMIT_S) * BYTES_PER_SAMPLE
        self._resampler = LinearResampler(output_rate, RATE) if output_rate != RATE else None
        self._far_pending = bytearray()
        self._near_pending = bytearray()
        self._last_audible = float("-inf")
        self._cancelling = False
        """The canceller is at work: AVA's voice was audible within the echo tail."""
        self._canceller: Canceller | None = None
        self._apm: Any = None
        self._frame_type: Any = None
        self._output_rate = output_rate
        self._played = PlayedAudio()
        """What the canceller was handed as reference lately: to tell AVA's voice that slipped past it."""
        if processing == "aec":
            from livekit import rtc

            self._canceller = canceller if canceller is not None else Canceller(warmed_up(_new_apm()))
            self._apm = self._canceller.apm
            self._frame_type = rtc.AudioFrame
        logger.info("echo cancellation: %s", state_line(processing))

    @property
    def state(self) -> str:
        """"on", "off (headphones)" or "unavailable: half-duplex"."""
        return state_line(self.processing)

    def set_delay_ms(self, delay_ms: int) -> None:
        """The devices' output plus input latency: a hint for the canceller, and the half-duplex tail."""
        self._delay_ms = max(0, min(500, delay_ms))

    @property
    def echo_due_until(self) -> float:
        """Monotonic time until which AVA's voice may still come back into the microphone."""
        return self._last_audible + ECHO_TAIL_S + self._delay_ms / 1000

    # --- the speaker's thread ------------------------------------------------------------------

    def on_output(self, outdata: Any, audible: bool) -> None:
        """Called in the output callback with the block just handed to the device; never blocks for long."""
        now = self._clock()
        if audible:
            self._last_audible = now
        if self.processing != "aec" or (not audible and now > self.echo_due_until):
            return  # between replies the speaker's silence is no reference anyone needs
        chunk = bytes(outdata)
        with self._lock:
            self._reference.append((now, chunk))
            self._reference_bytes += len(chunk)
            while self._reference_bytes > self._reference_limit:
                _, old = self._reference.popleft()
                self._reference_bytes -= len(old)
                self.stats.dropped_reference_chunks += 1

    # --- the event loop ------------------------------------------------------------------------

    def process(self, pcm: bytes, captured_at: float) -> bytes:
        """Turn a 24 kHz microphone block into what the session should hear (whole 10 ms frames only:
        a partial frame waits for the next block, so the output may be shorter or longer than `pcm`)."""
        if self.processing == "off":
            return pcm
        if self.processing == "half-duplex":
            tail = HALF_DUPLEX_TAIL_S + self._delay_ms / 1000
            if captured_at < self._last_audible + tail:
                self.stats.muted_frames += len(pcm) // FRAME_BYTES
                return bytes(len(pcm))
            return pcm
        reference = self._take_reference(captured_at)
        resuming = not self._cancelling
        if resuming:
            if not reference:
                self.stats.passed_frames += len(pcm) // FRAME_BYTES
                return pcm
            self._realign(reference[0][0], captured_at - len(pcm) / BYTES_PER_SAMPLE / RATE)
            self._cancelling = True
        self._feed_reference(reference)
        if not resuming and captured_at > self.echo_due_until and not self._reference_waiting():
            return self._stop_cancelling(pcm)
        self._near_pending += pcm
        whole = len(self._near_pending) - len(self._near_pending) % FRAME_BYTES
        if not whole:
            return b""
        out = bytearray(self._near_pending[:whole])
        del self._near_pending[:whole]
        began = time.perf_counter()
        view = memoryview(out)
        for start in range(0, whole, FRAME_BYTES):
            frame = self._frame_type(view[start : start + FRAME_BYTES], RATE, 1, FRAME_SAMPLES)
            self._apm.set_stream_delay_ms(self._delay_ms)
            self._apm.process_stream(frame)
            out[start : start + FRAME_BYTES] = frame.data.cast("B")
            self.stats.near_frames += 1
        self.stats.cpu_seconds += time.perf_counter() - began
        assert self._canceller is not None
        self._canceller.capture_end = captured_at
        return bytes(out)

    def resemblance(self, heard: bytes, ended_at: float) -> float:
        """How closely cancelled microphone audio that ended at `ended_at` follows the reference played before it
        (`own_voice.PlayedAudio.heard_in`); 0 unless cancelling echo."""
        if self.processing != "aec":
            return 0.0
        return self._played.heard_in(np.frombuffer(heard, dtype="<i2"), ended_at, self._delay_ms / 1000)

    def _realign(self, render_from: float, capture_from: float) -> None:
        """Resuming after a pause: keep the module's two streams in step (see `Canceller`). The speaker's stream
        resumes at `render_from`, the microphone's at `capture_from`; whichever skipped more time gets that much
        silence (never more than `REALIGN_LIMIT_S`)."""
        canceller = self._canceller
        assert canceller is not None
        if canceller.render_end is None or canceller.capture_end is None:
            return
        skipped_more = (render_from - canceller.render_end) - (capture_from - canceller.capture_end)
        frames = round(skipped_more * 1000 / FRAME_MS)
        limit = round(REALIGN_LIMIT_S * 1000 / FRAME_MS)
        frames = max(-limit, min(limit, frames))
        silence = bytes(FRAME_BYTES)
        for _ in range(abs(frames)):
            frame = self._frame_type(silence, RATE, 1, FRAME_SAMPLES)
            if frames > 0:
                self._apm.process_reverse_stream(frame)
            else:
                self._apm.process_stream(frame)
        self.stats.realigned_frames += frames

    def _stop_cancelling(self, pcm: bytes) -> bytes:
        """The echo tail has passed: hand on the partial frame still waiting, untouched, and pass from now on."""
        self._cancelling = False
        out = bytes(self._near_pending) + pcm
        self._near_pending.clear()
        self._far_pending.clear()
        self.stats.passed_frames += len(out) // FRAME_BYTES
        return out

    def _reference_waiting(self) -> bool:
        with self._lock:
            return bool(self._reference)

    def _take_reference(self, until: float) -> list[tuple[float, bytes]]:
        """Every reference chunk the speaker took at or before `until`, with when it took it, in order."""
        chunks: list[tuple[float, bytes]] = []
        with self._lock:
            while self._reference and self._reference[0][0] <= until:
                stamped = self._reference.popleft()
                self._reference_bytes -= len(stamped[1])
                chunks.append(stamped)
        return chunks

    def _feed_reference(self, chunks: list[tuple[float, bytes]]) -> None:
        """Give the canceller these reference chunks (`_take_reference`), in order."""
        if not chunks:
            return
        for stamp, chunk in chunks:
            at_our_rate = self._resampler.process_bytes(chunk) if self._resampler else chunk
            self._far_pending += at_our_rate
            self._played.add(stamp, np.frombuffer(at_our_rate, dtype="<i2"))
        whole = len(self._far_pending) - len(self._far_pending) % FRAME_BYTES
        began = time.perf_counter()
        for start in range(0, whole, FRAME_BYTES):
            frame = self._frame_type(bytes(self._far_pending[start : start + FRAME_BYTES]), RATE, 1, FRAME_SAMPLES)
            self._apm.process_reverse_stream(frame)
            self.stats.far_frames += 1
        del self._far_pending[:whole]
        assert self._canceller is not None
        last_stamp, last_chunk = chunks[-1]
        self._canceller.render_end = last_stamp + len(last_chunk) / BYTES_PER_SAMPLE / self._output_rate
        self.stats.cpu_seconds += time.perf_counter() - began

def measure_echo_removal(seconds: float = 4.0, delay_ms: int = 60, gain: float = 0.5) -> float:
    """A real round of the processing module on a synthetic echo (noise-like far end, `delay_ms` late,
    attenuated by `gain`); return the echo removed over the last half, in dB. Raises if it cannot load."""
    apm = _new_apm()
    from livekit import rtc

    n = int(seconds * RATE) // FRAME_SAMPLES * FRAME_SAMPLES
    far = (white_noise(n) * 10000).astype(np.int16)
    lag = RATE * delay_ms // 1000
    near = np.zeros(n, dtype=np.int16)
    near[lag:] = (far[: n - lag].astype(np.float64) * gain).astype(np.int16)
    out = np.zeros(n, dtype=np.int16)
    for start in range(0, n, FRAME_SAMPLES):
        end = start + FRAME_SAMPLES
        apm.process_reverse_stream(rtc.AudioFrame(far[start:end].tobytes(), RATE, 1, FRAME_SAMPLES))
        frame = rtc.AudioFrame(near[start:end].tobytes(), RATE, 1, FRAME_SAMPLES)
        apm.set_stream_delay_ms(0)
        apm.process_stream(frame)
        out[start:end] = np.frombuffer(frame.data, dtype=np.int16)
    half = slice(n // 2, n)
    before = float(np.sqrt(np.mean(near[half].astype(np.float64) ** 2)))
    after = float(np.sqrt(np.mean(out[half].astype(np.float64) ** 2)))
    return 20 * float(np.log10(before / max(after, 1e-3)))
