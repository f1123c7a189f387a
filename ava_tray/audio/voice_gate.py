"""The voice gate: microphone audio leaves the machine only while someone speaks.

Sits between the microphone (after echo cancellation) and the socket. Closed, it sends nothing and keeps the
last moments of audio; when the speech detector hears a voice it opens and sends that pre-roll first (so the
first syllable and the server's `prefix_padding_ms` arrive), then live audio, and it stays open for a hang-over
longer than the server's `silence_duration_ms` after the voice stops, so the server's own VAD still ends the
turn. Qt-free, no threads, no I/O: the caller feeds blocks and sends what comes back.

While closed the work per block is small: a level check per 32 ms window, and the speech model runs only when
a window stands out from the steady background (or, once woken, for a short while after).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ava_tray.audio.own_voice import HEARD_S, SAME_VOICE
from ava_tray.realtime.events import BYTES_PER_SAMPLE, SAMPLE_RATE

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

FULL_SCALE = 32768.0
STREAM_GAP_S = 1.0
"""A block arriving this much later than the audio before it ends says the stream was interrupted (a device
restarted): the held audio is from before the gap and is not sent as pre-roll."""
WARM_UP_WINDOWS = 4
"""Windows of recent audio the detector hears again when it wakes, so its state is of this moment."""
AWAKE_AFTER_LOUD_S = 0.15
"""How long the detector keeps running after the last window that stood out from the background."""
LOUD_WINDOWS_TO_WAKE = 2
"""Windows in a row that must stand out from the background to wake the detector (a key click fills one)."""
NOISE_FLOOR_MEMORY_S = 3.0
"""The background level is the quietest window of about this long (minimum statistics)."""
RESUMED_S = 0.3
"""When the server ends the user's turn, speech heard this recently means the user goes on: the gate stays open."""
SOUNDING_TAIL_S = 1.0
"""The hang-over counts from the last window of an unbroken run of loud windows (standing out from the background)
that began with speech, for up to this long after the last one judged speech: a voice's tail the model no longer
calls speech (a trailing breath, a steady vowel) is still sound to the server's VAD, whose turn would not end if the
gate closed less than its `silence_duration_ms` after it. Short, because a noise that sets in as the voice ends (a
fan switched on) looks the same: with 3 s the benchmark's requests over a fan sent 3 s of it after each."""
ECHO_GUARD_WINDOWS = 3
"""While AVA speaks, windows in a row (about 100 ms) that must be judged speech to open the gate: a burst of AVA's
own voice that slips past echo cancellation as a reply starts (40-80 ms, measured) does not open it, a user
talking over AVA does, its pre-roll counted from the run's first window."""

EchoResemblance = Callable[[bytes, float], float]
"""(microphone audio, monotonic time it ended) -> how closely it follows what the speaker played just before: at or
above `own_voice.SAME_VOICE`, AVA's own voice slipped past echo cancellation, and the gate stays shut."""


class SpeechDetector(Protocol):
    """A voice activity model: fixed windows of mono float samples in, the probability of speech out."""

    @property
    def sample_rate(self) -> int:
        """The rate the model listens at (the gate converts from 24 kHz)."""
        ...

    @property
    def window(self) -> int:
        """Samples per call, at `sample_rate`."""
        ...

    def speech_probability(self, samples: FloatArray) -> float:
        """The probability in [0, 1] that this window (floats in [-1, 1]) is speech; the model may keep state."""
        ...

    def reset(self) -> None:
        """Forget the audio heard so far."""
        ...


@dataclass(frozen=True)
class GateCounters:
    """What the gate has done since it was made: for the UI, the history and the benchmark."""

    bytes_sent: int
    bytes_withheld: int
    """Received and not sent (held audio that may still go out as pre-roll included)."""
    openings: int


def open_threshold_for(sensitivity: float) -> float:
    """The speech probability that opens the gate: sensitivity 0 (strict) → 0.9, 0.5 → 0.5, 1 (eager) → 0.1."""
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError(f"sensitivity must be between 0 and 1, got {sensitivity}")
    return 0.9 - 0.8 * sensitivity


class BackgroundLevel:
    """The steady background's level by minimum statistics: the quietest window of the last few seconds.

    Speech has gaps between syllables and words, so the minimum stays at the room's noise (a fan, hiss) while a
    voice is far above it; a window that stands out from it by a margin is worth asking the speech model about.
    """

    SEGMENTS = 3

    def __init__(self, windows_per_segment: int) -> None:
        self._segment_length = max(1, windows_per_segment)
        self._minima: deque[float] = deque(maxlen=self.SEGMENTS)
        self._current = math.inf
        self._count = 0

    @property
    def level(self) -> float:
        """The background's RMS level (int16 units); 0 until a first segment has been heard (unknown yet, so
        anything may stand out: a stream that starts in the middle of a word still wakes the model)."""
        if not self._minima:
            return 0.0
        return min(min(self._minima), self._current)

    def add(self, level: float) -> None:
        """Take the RMS level of the next window."""
        self._current = min(self._current, level)
        self._count += 1
        if self._count >= self._segment_length:
            self._minima.append(self._current)
            self._current = math.inf
            self._count = 0


class VoiceGate:
    """Decides, block by block, which microphone audio (24 kHz mono int16) to send.

    `process(pcm, captured_at)` returns the bytes to send now: b"" while closed; on opening the pre-roll and the
    block; then each block as it comes, until the hang-over after the last voice has passed.
    """

    def __init__(self, detector: SpeechDetector, *, enabled: bool = True, sensitivity: float = 0.5,
                 pre_roll_ms: int = 500, hang_over_ms: int = 700, quiet_floor_dbfs: float = -60.0,
                 wake_margin_db: float = 8.0) -> None:
        """`pre_roll_ms`: audio sent from before the first window judged speech; Silero judges it 60-150 ms
        after it starts (measured), so the conversation gives the server's `prefix_padding_ms` plus 200 ms (500:
        end to end, 320-510 ms arrive before the first syllable; 400 left as little as 222).
        `hang_over_ms`: kept open after the last speech; over the server's 500 ms `silence_duration_ms`.
        The model is woken by a window above `quiet_floor_dbfs` (RMS) and `wake_margin_db` above the background."""
        if pre_roll_ms < 0 or hang_over_ms < 0:
            raise ValueError(f"pre-roll and hang-over must not be negative, got {pre_roll_ms}, {hang_over_ms}")
        self._detector = detector
        self._rate_ratio = SAMPLE_RATE / detector.sample_rate
        self._window = round(detector.window * self._rate_ratio)
        if not math.isclose(self._window, detector.window * self._rate_ratio):
            raise ValueError(f"a {detector.window}-sample window at {detector.sample_rate} Hz is not a whole "
                             f"number of samples at {SAMPLE_RATE} Hz")
        self._enabled = enabled
        self._forced_open = False
        self._open_threshold = open_threshold_for(sensitivity)
        self._sensitivity = sensitivity
        self.pre_roll = round(pre_roll_ms * SAMPLE_RATE / 1000)
        """Samples of audio before the detected voice that are sent when the gate opens."""
        self.hang_over = round(hang_over_ms * SAMPLE_RATE / 1000)
        """Samples the gate stays open after the last window judged speech."""
        self._quiet_floor = FULL_SCALE * 10 ** (quiet_floor_dbfs / 20)
        self._wake_ratio = 10 ** (wake_margin_db / 20)
        self._bytes_sent = 0
        self._bytes_received = 0
        self._openings = 0
        self.last_speech_at: float | None = None
        """Capture time (monotonic) of the last block in which the detector heard speech."""
        self._last_captured_at: float | None = None
        self._window_index = np.arange(self._window, dtype=np.float32)
        self._detector_positions = np.arange(detector.window, dtype=np.float32) * np.float32(self._rate_ratio)
        segment_windows = round(NOISE_FLOOR_MEMORY_S / BackgroundLevel.SEGMENTS * SAMPLE_RATE / self._window)
        self._segment_windows = segment_windows
        # The stream: positions are sample counts since the stream began.
        self._position = 0
        """Samples received in this stream."""
        self._held = bytearray()
        """Audio not sent yet (or being sent now), from stream position `_held_start` to `_position`."""
        self._held_start = 0
        self._sent_until = 0
        self._open_from: int | None = None
        """Stream position sending started from, while open; None while closed."""
        self._last_voice_end = 0
        self._deferred: tuple[npt.NDArray[np.int16], float] | None = None
        """A block sent but not yet judged (see `settle`)."""
        self._unanalysed: list[npt.NDArray[np.int16]] = []
        self._unanalysed_size = 0
        self._awake_until = 0
        self._loud_run = 0
        self._dozing = True
        self._recent: deque[tuple[FloatArray, int]] = deque(maxlen=WARM_UP_WINDOWS)
        """The last windows and where they end, for the detector to hear again when it wakes."""
        self._background = BackgroundLevel(segment_windows)
        self._speech_run = 0
        self._speech_run_start = 0
        self._ava_speaking = False
        self._push_to_talk = False
        self._sounding_tail = round(SOUNDING_TAIL_S * SAMPLE_RATE)
        self._last_heard_end = 0
        self._sounding = False
        self._withheld_after: int | None = None
        """Set by `end_hang_over`: the gate, still open, sends nothing more unless speech is heard after this."""
        self.echo_resemblance: EchoResemblance | None = None
        """Set by the conversation once the devices are open: the second opinion asked before AVA's voice could open
        the gate while AVA speaks (None: not asked)."""
        self.own_voice_refusals = 0
        """Times the gate stayed shut because what it heard followed what the speaker played."""
        self._refusing_run = False
        self._reset_stream()

    # -- settings -------------------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False: every block passes unchanged (continuous streaming, as without a gate)."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if value != self._enabled:
            logger.info("voice gate %s", "on" if value else "off (continuous streaming)")
            self._enabled = value
            self._reset_stream()

    @property
    def sensitivity(self) -> float:
        """0 (only clear speech opens the gate) to 1 (anything voice-like does); 0.5 is the model's default."""
        return self._sensitivity

    @sensitivity.setter
    def sensitivity(self, value: float) -> None:
        self._open_threshold = open_threshold_for(value)
        self._sensitivity = value

    @property
    def forced_open(self) -> bool:
        """True holds the gate open whatever is heard (push-to-talk); on release the usual hang-over follows."""
        return self._forced_open

    @forced_open.setter
    def forced_open(self, value: bool) -> None:
        self._forced_open = value

    @property
    def push_to_talk(self) -> bool:
        """True: only `forced_open` (the key held) opens the gate; the detector is not asked (and costs nothing),
        the last moments are still held so the pre-roll catches a first syllable spoken as the key goes down."""
        return self._push_to_talk

    @push_to_talk.setter
    def push_to_talk(self, value: bool) -> None:
        self._push_to_talk = value

    @property
    def ava_speaking(self) -> bool:
        """True while AVA's own voice may come back into the microphone: opening then takes `ECHO_GUARD_WINDOWS`
        of speech in a row."""
        return self._ava_speaking

    @ava_speaking.setter
    def ava_speaking(self, value: bool) -> None:
        self._ava_speaking = value

    # -- state ----------------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True while audio is leaving the machine (always, when the gate is off)."""
        return not self._enabled or self._forced_open or self._open_from is not None

    @property
    def wake_level(self) -> float:
        """The RMS level (int16 units) at which a window stands out from the background and wakes the detector."""
        return max(self._quiet_floor, self._background.level * self._wake_ratio)

    @property
    def counters(self) -> GateCounters:
        return GateCounters(bytes_sent=self._bytes_sent, bytes_withheld=self._bytes_received - self._bytes_sent,
                            openings=self._openings)

    def reset(self) -> None:
        """Start a new stream (new device or session): closed, nothing held, the detector's memory cleared."""
        self._reset_stream()

    # -- the work -------------------------------------------------------------------------------------------

    def process(self, pcm: bytes, captured_at: float) -> bytes:
        """Take the next microphone block (`captured_at`: monotonic time it arrived); return what to send now."""
        if len(pcm) % BYTES_PER_SAMPLE:
            raise ValueError(f"a block of int16 samples has an even length, got {len(pcm)} bytes")
        self._bytes_received += len(pcm)
        if not self._enabled:
            self._bytes_sent += len(pcm)
            return pcm
        self.settle()
        self._notice_gap(len(pcm) // BYTES_PER_SAMPLE, captured_at)
        samples = np.frombuffer(pcm, dtype="<i2")
        start = self._position
        self._position += samples.size
        self._held += pcm
        if self._open_from is not None and self._withheld_after is None and (
                self._forced_open or self._position - self._last_voice_end < self.hang_over):
            # Open, and the whole block inside the hang-over whatever it holds: it goes now and is judged in
            # `settle`, after the caller has sent it (judging can only keep the gate open longer).
            self._deferred = (samples, captured_at)
            if self._forced_open:
                self._last_voice_end = self._position
            out = self._take_held(self._position)
            self._trim_held()
            self._bytes_sent += len(out)
            return out
        self._analyse(samples, captured_at)
        if self._forced_open:
            if self._open_from is None:
                self._open(start)
            self._last_voice_end = self._position
        if self._withheld_after is not None and (self._forced_open or self._last_heard_end > self._withheld_after):
            self._withheld_after = None  # the voice goes on: what was withheld goes now, in order
        withholding = self._withheld_after is not None
        if self._open_from is None:
            out = b""
        elif self._forced_open or self._position - self._last_voice_end < self.hang_over:
            out = b"" if withholding else self._take_held(self._position)
        else:
            out = b"" if withholding else self._take_held(self._last_voice_end + self.hang_over)
            self._close()
        self._trim_held()
        self._bytes_sent += len(out)
        return out

    def end_hang_over(self) -> None:
        """The server ended the user's turn: the rest of the hang-over (kept so that its VAD could hear the voice end)
        is needed no more, and is withheld. If speech comes again before the hang-over is over, the gate sends what it
        withheld and goes on, in the same opening; else it closes having sent nothing more. So what follows a request
        (typing, a chair) never reaches a server VAD that could take it for a new turn. Nothing changes while the key
        is held, or when speech was heard within `RESUMED_S` (the user goes on)."""
        if self._open_from is None or self._forced_open or not self._enabled:
            return
        self.settle()
        if self._position - self._last_heard_end >= round(RESUMED_S * SAMPLE_RATE):
            self._withheld_after = self._last_heard_end

    @property
    def unjudged(self) -> bool:
        """A block went out unjudged and waits for `settle`."""
        return self._deferred is not None

    def settle(self) -> None:
        """Judge the block `process` sent without judging it (the gate open, the block inside the hang-over): the
        caller runs this once that block is on its way; `process` does it first if the caller did not."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            self._analyse(*deferred)

    def _analyse(self, samples: npt.NDArray[np.int16], captured_at: float) -> None:
        """Judge every whole window now available; open the gate on speech, note the last voice."""
        self._unanalysed.append(samples)
        self._unanalysed_size += samples.size
        if self._unanalysed_size < self._window:
            return
        joined = np.concatenate(self._unanalysed) if len(self._unanalysed) > 1 else self._unanalysed[0]
        whole = joined.size - joined.size % self._window
        rest = joined[whole:]
        self._unanalysed = [rest] if rest.size else []
        self._unanalysed_size = rest.size
        windows = joined[:whole].reshape(-1, self._window).astype(np.float32)
        window_end = self._position - rest.size - whole
        for window in windows:
            window_end += self._window
            voice_start = self._judge(window, window_end)
            if voice_start is not None and self._open_from is None and self._ava_speaking \
                    and self._sounds_like_ava(window_end, captured_at - (self._position - window_end) / SAMPLE_RATE):
                voice_start = None
            if voice_start is not None:
                self._last_voice_end = self._last_heard_end = window_end
                self._sounding = True
                self.last_speech_at = captured_at
                if self._open_from is None:
                    self._open(voice_start)
            elif self._sounding and self._loud_run and window_end - self._last_heard_end <= self._sounding_tail:
                self._last_voice_end = window_end  # the voice still sounds: the server hears it, the hang-over waits
            else:
                self._sounding = False  # a quiet window ends it: typing after the voice does not hold the gate

    def _judge(self, window: FloatArray, window_end: int) -> int | None:
        """Where speech starts if this window is speech (an earlier window when the detector, woken, hears it in the
        recent audio too), else None. The detector runs only while awake: the gate open, or the room not steady."""
        level = float(np.sqrt(np.dot(window, window) / window.size))
        self._background.add(level)
        loud = level >= self._quiet_floor and level >= self._background.level * self._wake_ratio
        self._loud_run = self._loud_run + 1 if loud else 0
        if self._loud_run >= LOUD_WINDOWS_TO_WAKE:
            self._awake_until = window_end + round(AWAKE_AFTER_LOUD_S * SAMPLE_RATE)
        if self._push_to_talk or (self._open_from is None and window_end > self._awake_until):
            self._dozing = True
            self._speech_run = 0
            self._refusing_run = False
            self._recent.append((window, window_end))
            return None
        threshold = self._open_threshold if self._open_from is None else max(0.05, self._open_threshold - 0.15)
        if self._dozing:
            self._detector.reset()
            self._speech_run = 0
            for earlier, earlier_end in self._recent:
                self._count(self._detector.speech_probability(self._for_detector(earlier)) >= threshold, earlier_end)
            self._dozing = False
        self._recent.append((window, window_end))
        self._count(self._detector.speech_probability(self._for_detector(window)) >= threshold, window_end)
        needed = 1 if self._open_from is not None or not self._ava_speaking else ECHO_GUARD_WINDOWS
        return self._speech_run_start if self._speech_run >= needed else None

    def _sounds_like_ava(self, window_end: int, ended_at: float) -> bool:
        """Whether the audio up to `window_end` (ending at monotonic `ended_at`), which would open the gate while AVA
        speaks, follows what AVA's speaker played: then it is AVA's own voice that slipped past echo cancellation, and
        the gate stays shut. Asked at each window of the run until it does not (the user's voice has taken over)."""
        if self.echo_resemblance is None:
            return False
        start = max(self._held_start, window_end - round(HEARD_S * SAMPLE_RATE))
        heard = bytes(self._held[(start - self._held_start) * BYTES_PER_SAMPLE :
                                 (window_end - self._held_start) * BYTES_PER_SAMPLE])
        resemblance = self.echo_resemblance(heard, ended_at)
        logger.debug("voice gate: resemblance to what AVA played %.2f (run of %d windows)", resemblance,
                     self._speech_run)
        if resemblance < SAME_VOICE:
            if self._refusing_run:
                logger.info("voice gate: a voice unlike AVA's came in over its own (resemblance %.2f)", resemblance)
            self._refusing_run = False
            return False
        self.own_voice_refusals += 1
        if not self._refusing_run:
            logger.info("voice gate: AVA's own voice came back past echo cancellation (resemblance %.2f); "
                        "the gate stays shut", resemblance)
        self._refusing_run = True
        return True

    def _count(self, heard: bool, window_end: int) -> None:
        """Follow the run of windows in a row judged speech, and where it began."""
        if not heard:
            self._speech_run = 0
            self._refusing_run = False
            return
        if not self._speech_run:
            self._speech_run_start = window_end - self._window
        self._speech_run += 1

    def _for_detector(self, window: FloatArray) -> FloatArray:
        """A 24 kHz window at the detector's rate (linear interpolation; exact 3:2 pairs for 16 kHz), in [-1, 1]."""
        if self._rate_ratio != 1.0:
            window = np.interp(self._detector_positions, self._window_index, window).astype(np.float32)
        return window / np.float32(FULL_SCALE)

    def _open(self, voice_start: int) -> None:
        self._open_from = max(self._held_start, voice_start - self.pre_roll)
        self._openings += 1
        logger.debug("voice gate open (pre-roll %d ms)", (voice_start - self._open_from) * 1000 // SAMPLE_RATE)

    def _close(self) -> None:
        self._open_from = None
        self._withheld_after = None
        logger.debug("voice gate closed")

    def _take_held(self, send_to: int) -> bytes:
        """Held audio from where sending stands (at the earliest the pre-roll's start) up to `send_to`; gate open."""
        assert self._open_from is not None
        start = max(self._sent_until, self._open_from, self._held_start)
        if send_to <= start:
            return b""
        first = (start - self._held_start) * BYTES_PER_SAMPLE
        out = bytes(self._held[first : (send_to - self._held_start) * BYTES_PER_SAMPLE])
        self._sent_until = send_to
        return out

    def _trim_held(self) -> None:
        """Keep only what may still be sent: while open, nothing sent; while closed, the pre-roll of the earliest
        window that may yet be judged speech (the recent windows a waking detector hears again)."""
        if self._open_from is not None:
            keep_from = self._sent_until
        else:
            next_window = self._position - self._unanalysed_size
            keep_from = next_window - WARM_UP_WINDOWS * self._window - self.pre_roll
        drop = keep_from - self._held_start
        if drop > 0:
            del self._held[: drop * BYTES_PER_SAMPLE]
            self._held_start = keep_from

    def _notice_gap(self, block_samples: int, captured_at: float) -> None:
        previous = self._last_captured_at
        self._last_captured_at = captured_at
        if previous is not None and captured_at - previous - block_samples / SAMPLE_RATE > STREAM_GAP_S:
            logger.info("voice gate: %.1f s gap in the microphone stream; starting afresh", captured_at - previous)
            self._reset_stream()

    def _reset_stream(self) -> None:
        self._deferred = None
        self._withheld_after = None
        self._position = 0
        self._held = bytearray()
        self._held_start = 0
        self._sent_until = 0
        self._open_from = None
        self._last_voice_end = -self.hang_over
        self._last_heard_end = -self._sounding_tail
        self._sounding = False
        self._unanalysed = []
        self._unanalysed_size = 0
        self._awake_until = -1
        self._loud_run = 0
        self._dozing = True
        self._speech_run = 0
        self._refusing_run = False
        self._recent.clear()
        self._background = BackgroundLevel(self._segment_windows)
        self._detector.reset()
