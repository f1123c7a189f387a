"""`VoiceIO` on real devices through PortAudio (`sounddevice`): 24 kHz mono int16 to the outside.

What an idle AVA costs is mostly wake-ups: PortAudio's threads waking for each block, and each microphone block
waking the event loop. Measured on this project's machine (PulseAudio null sinks, CPU seconds a minute of a
process that holds the streams; December 2026): both streams at 20 ms blocks with the loop woken per microphone
block 1.5-1.7 (the bare two streams: 1.0-1.15); the microphone alone at 20 ms 1.1-1.2, at 40 ms 0.52-0.57, at
40 ms waking the loop for every third block 0.36-0.45. Hence: the microphone runs in `MIC_BLOCK_MS` blocks;
while the conversation is idle (`set_active(False)`) its blocks reach the loop `IDLE_BATCH` at a time (the voice
gate's pre-roll holds the first syllable meanwhile), and the speaker's stream sleeps `SPEAKER_SLEEP_S` after
the last sound. It wakes when the conversation turns active (someone starts speaking, so it runs before the
reply comes) or when audio is queued; on PulseAudio a stopped stream restarts in 1-3 ms with its first callback
taking the queued audio, so nothing is clipped.

With echo cancellation on (speakers) the speaker never sleeps. The canceller lines AVA's voice up with its echo
by the times the speaker's callback took each block, and a restarted stream breaks that: PulseAudio's plugin takes
three blocks at once on `start()`, then none for 0.3 s to over a second, and PortAudio's own timing says they play
at once. The first half second of a reply then came back uncancelled, and AVA cut itself off in 8 of 16 replies
spaced past the sleep (measured on the loopback echo path). Keeping the stream awake costs little (see `bench.sh`,
section 5).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from ava_tray import paths
from ava_tray.audio import AudioDeviceError, MicBlockHandler, PlaybackCut
from ava_tray.audio.echo import EchoFrontEnd, EchoMemory, processing_for
from ava_tray.audio.playback import PlaybackBuffer
from ava_tray.audio.resample import LinearResampler
from ava_tray.realtime.events import BYTES_PER_SAMPLE, SAMPLE_RATE
from ava_tray.settings import AUDIO_MODES
from ava_tray.threads import run_on_own_thread

logger = logging.getLogger(__name__)

WIRE_RATE = SAMPLE_RATE
"""The rate AVA speaks with the Realtime API, in both directions."""
MIC_BLOCK_MS: Final = 40
"""The microphone's block (see the module docstring): 20 ms more to what the server hears than 20 ms blocks."""
SPEAKER_BLOCK_MS: Final = 40
"""The speaker's block. With echo cancellation on the speaker's stream never sleeps, and 40 ms blocks keep that
cheap (connected and silent on speakers: 1.18x the two-stream floor at 20 ms, 1.00x at 40 ms; `bench.sh` section
5); a barge-in's cut waits at most one block longer."""
IDLE_BATCH: Final = 3
"""While idle, microphone blocks wake the event loop this many at a time."""
SPEAKER_SLEEP_S: Final = 5.0
"""The speaker's stream stops this long after the conversation went idle with nothing left to play."""

Kind = Literal["input", "output"]

_PORTAUDIO_MISSING = (
    "The PortAudio library is missing: install libportaudio2 (Debian/Ubuntu), portaudio "
    "(Fedora, Arch or Homebrew), then start AVA again."
)


def _loud(block: bytes, level: float | None) -> bool:
    """The block's RMS (mono int16) reaches `level`: a few microseconds, fine on PortAudio's thread."""
    if level is None or not block:
        return False
    samples = np.frombuffer(block, dtype=np.int16).astype(np.float32)
    return float(np.dot(samples, samples)) >= level * level * samples.size


def _import_sounddevice() -> Any:
    """Import `sounddevice`, turning a missing PortAudio library into `AudioDeviceError`."""
    try:
        import sounddevice
    except (OSError, ImportError) as exc:
        logger.warning("sounddevice unavailable: %s", exc)
        raise AudioDeviceError(_PORTAUDIO_MISSING) from exc
    return sounddevice


# PortAudio reads the list of devices once, when it starts; a headset plugged in later is not in it, and one
# unplugged stays in it. Restarting PortAudio reads the list again, but closes every open stream, so it is
# done only while this process has no stream open: before audio opens (each connection attempt) and when
# the Settings pickers list the devices (while audio is open a helper process lists them instead).
# `_portaudio_lock` orders the restart with opening and closing.
_portaudio_lock = threading.RLock()
_open_stream_count = 0


def rescan_devices(sd: Any) -> bool:
    """Restart PortAudio so that it sees the devices present now; False (no-op) while a stream is open."""
    with _portaudio_lock:
        if _open_stream_count:
            return False
        started = time.monotonic()
        try:
            sd._terminate()
            sd._initialize()
        except (sd.PortAudioError, OSError) as exc:
            raise AudioDeviceError(f"PortAudio could not look for audio devices ({_reason(exc)}): "
                                   "check the sound system, then Restart from AVA's menu.") from exc
        logger.debug("audio devices re-read in %.0f ms", (time.monotonic() - started) * 1000)
        return True


def _count_streams(delta: int) -> None:
    global _open_stream_count
    with _portaudio_lock:
        _open_stream_count += delta


def _noun(kind: Kind) -> str:
    return "microphone" if kind == "input" else "speaker"


def _settings_hint(kind: Kind) -> str:
    return f"choose another {kind} device in Settings"


def _reason(exc: BaseException) -> str:
    """The short PortAudio reason in an exception, e.g. 'Invalid sample rate'."""
    text = str(exc.args[0]) if exc.args else str(exc)
    text = text.rsplit(": ", 1)[-1]
    text = text.split(" [PaErrorCode", 1)[0].strip()
    return text or type(exc).__name__


@dataclass(frozen=True)
class PlayRecord:
    """When `play()` handed a chunk to the speaker's queue (for latency measurements)."""

    item_id: str
    handed_at: float
    frames: int


@dataclass(frozen=True)
class _DeviceChoice:
    index: int
    name: str
    rate: int


class SoundDeviceVoiceIO:
    """Microphone and speaker through PortAudio, at 24 kHz where the device allows it, else resampled.

    Stream callbacks run on PortAudio's threads: they copy bytes, touch the playback queue and hand
    microphone blocks to the event loop with `call_soon_threadsafe`; they never log or block.
    """

    def __init__(
        self,
        *,
        input_device: str | int | None = None,
        output_device: str | int | None = None,
        mic_block_ms: int = MIC_BLOCK_MS,
        loop: asyncio.AbstractEventLoop | None = None,
        device_rate: int | None = None,
        on_failure: Callable[[AudioDeviceError], None] | None = None,
        audio_mode: str = "headphones",
        echo_memory: EchoMemory | None = None,
    ) -> None:
        """`device_rate` forces the rate the devices are opened at (tests, devices that misreport);
        `on_failure` is called on the loop when a running stream dies (see `failure`);
        `audio_mode` is Settings.audio_mode (the default here, "headphones", leaves the microphone raw);
        `echo_memory` carries what echo cancellation learnt over from earlier openings of the same devices."""
        if not 10 <= mic_block_ms <= 100:
            raise ValueError(f"mic_block_ms must be between 10 and 100, got {mic_block_ms}")
        if audio_mode not in AUDIO_MODES:
            raise ValueError(f"audio_mode must be one of {', '.join(AUDIO_MODES)}, got {audio_mode!r}")
        self._audio_mode = audio_mode
        self._echo_memory = echo_memory
        self.echo: EchoFrontEnd | None = None
        """The microphone's front end (echo cancellation or half-duplex), once open."""
        self._input_device = input_device
        self._output_device = output_device
        self._mic_block_ms = mic_block_ms
        self._loop = loop
        self._forced_rate = device_rate
        self._on_failure = on_failure

        self._in_stream: Any = None
        self._out_stream: Any = None
        self._input: _DeviceChoice | None = None
        self._output: _DeviceChoice | None = None
        self._closing = False
        self._close_future: asyncio.Future[None] | None = None
        self._failure: AudioDeviceError | None = None
        self._on_mic_block: MicBlockHandler | None = None
        self._mic_resampler: LinearResampler | None = None
        self._mic_pending = bytearray()
        self._speaker_resampler: LinearResampler | None = None
        self._playback = PlaybackBuffer()
        self._warned_closed_play = False
        self._mic_waiting: collections.deque[tuple[bytes, float]] = collections.deque()
        """Microphone blocks from PortAudio's thread not yet handed to the loop."""
        self._active = True
        self._delivery_batch = 1
        self._wake_level: float | None = None
        """While idle, a block this loud (RMS) goes to the loop at once (`wake_on_sound`)."""
        self._speaker_lock = threading.Lock()
        """Held while the speaker's stream starts, stops or closes (never two of them at once)."""
        self._speaker_wanted = True
        self._speaker_running = False
        self._speaker_switch: asyncio.Task[None] | None = None
        self._speaker_sleep_timer: asyncio.TimerHandle | None = None
        self._last_audible = 0.0

        self.captured_blocks = 0
        """Microphone blocks received from the device."""
        self.played_blocks = 0
        """Speaker blocks that carried assistant audio (silence padding not counted)."""
        self.underflows = 0
        """Blocks where the device ran out of data (output underflow, input underflow): not fatal."""
        self.overflows = 0
        """Blocks where data was lost because we were late (input overflow, output overflow): not fatal."""
        self.play_log: collections.deque[PlayRecord] = collections.deque(maxlen=4096)
        """The last `play()` hand-offs, for latency benchmarks."""
        self.speaker_sleeps = 0
        """Times the speaker's stream was stopped while idle."""
        self.speaker_sleep_s = SPEAKER_SLEEP_S
        """How long after the conversation went idle, with nothing left to play, the speaker's stream stops."""

    # --- VoiceIO -------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True between a successful `open()` and `close()`."""
        return self._out_stream is not None

    @property
    def is_playing(self) -> bool:
        """True while queued assistant audio has not all been taken by the speaker."""
        return self._playback.pending_bytes > 0

    @property
    def failure(self) -> AudioDeviceError | None:
        """Set when a stream stopped while it should have been running (device unplugged, server died)."""
        return self._failure

    @property
    def input_rate(self) -> int | None:
        """The rate the microphone runs at, once open."""
        return self._input.rate if self._input else None

    @property
    def output_rate(self) -> int | None:
        """The rate the speaker runs at, once open."""
        return self._output.rate if self._output else None

    async def open(self, on_mic_block: MicBlockHandler) -> None:
        """Open and start both streams (off the loop); raise `AudioDeviceError` if a device fails."""
        if self._in_stream is not None or self._out_stream is not None:
            raise RuntimeError("the audio devices are already open")
        sd = _import_sounddevice()
        loop = self._loop or asyncio.get_running_loop()
        self._on_mic_block = on_mic_block
        self._closing = False
        self._close_future = None
        self._failure = None
        self._mic_pending.clear()
        self._mic_waiting.clear()
        self._playback.cut()
        self._speaker_wanted = True

        opening = asyncio.ensure_future(
            run_on_own_thread(lambda: self._open_streams(sd, loop), name="ava-audio-device", join=True))
        try:
            in_stream, out_stream = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # AVA stopped meanwhile (Quit, Ctrl+C, Restart). The thread cannot be stopped half-way: let it finish,
            # then close what it opened; those streams stop because AVA stops them, which is no device failure.
            self._closing = True
            with contextlib.suppress(Exception):
                streams = await opening
                await run_on_own_thread(lambda: self._close_streams(streams), name="ava-audio-device", join=True)
            self._input = self._output = None
            raise
        except BaseException:
            self._input = self._output = None
            raise
        self._in_stream, self._out_stream = in_stream, out_stream
        self._last_audible = time.monotonic()
        assert self._input is not None and self._output is not None
        logger.info(
            "audio open: microphone %r at %d Hz in %d ms blocks, speaker %r at %d Hz",
            self._input.name,
            self._input.rate,
            self._mic_block_ms,
            self._output.name,
            self._output.rate,
        )
        if not self._active:
            self._schedule_speaker_sleep()

    def play(self, item_id: str, pcm: bytes) -> None:
        """Queue 24 kHz mono int16 assistant audio for the speaker; never blocks."""
        if self._out_stream is None or self._output is None:
            if not self._warned_closed_play:
                logger.warning("play() while the speaker is not open: audio dropped")
                self._warned_closed_play = True
            return
        if len(pcm) % BYTES_PER_SAMPLE:
            pcm = pcm[:-1]
        if not pcm:
            return
        data = self._speaker_resampler.process_bytes(pcm) if self._speaker_resampler else pcm
        self._playback.push(item_id, data)
        self.play_log.append(PlayRecord(item_id, time.monotonic(), len(pcm) // BYTES_PER_SAMPLE))
        self._wake_speaker()

    def wake_on_sound(self, level: float | None) -> None:
        self._wake_level = level

    def echo_resemblance(self, heard: bytes, ended_at: float) -> float:
        echo = self.echo
        return 0.0 if echo is None else echo.resemblance(heard, ended_at)

    def set_active(self, active: bool) -> None:
        """Active (someone speaks, AVA speaks or is about to): every microphone block reaches the loop at once
        and the speaker runs. Idle: blocks come `IDLE_BATCH` at a time and the speaker sleeps after a while."""
        if active == self._active:
            return
        self._active = active
        self._delivery_batch = 1 if active else IDLE_BATCH
        if self._out_stream is None:
            return
        if active:
            self._deliver_waiting()
            self._wake_speaker()
        else:
            self._schedule_speaker_sleep()

    @property
    def speaker_awake(self) -> bool:
        """The speaker's stream is running (or starting)."""
        return self._speaker_wanted

    def interrupt(self) -> PlaybackCut | None:
        """Drop all queued audio at once; say which item was cut and how many ms of it were played."""
        cut = self._playback.cut()
        if self._speaker_resampler is not None:
            self._speaker_resampler.reset()
        if cut is None or self._output is None:
            return None
        item_id, played_bytes = cut
        played_ms = round(played_bytes / BYTES_PER_SAMPLE * 1000 / self._output.rate)
        logger.debug("playback of %s cut after %d ms", item_id, played_ms)
        return PlaybackCut(item_id=item_id, played_ms=played_ms)

    def item_started_at(self, item_id: str) -> float | None:
        """Monotonic time the speaker first took audio of `item_id` (for latency measurements)."""
        return self._playback.started_at(item_id)

    async def close(self) -> None:
        """Stop and close both streams off the loop; after it no callback runs. Idempotent."""
        if self._close_future is not None:
            await asyncio.shield(self._close_future)
            return
        streams = (self._in_stream, self._out_stream)
        if streams == (None, None):
            return
        self._closing = True
        self._close_future = asyncio.get_running_loop().create_future()
        if self._speaker_sleep_timer is not None:
            self._speaker_sleep_timer.cancel()
        try:
            await run_on_own_thread(lambda: self._close_under_lock(streams), name="ava-audio-device", join=True)
            if self._speaker_switch is not None:
                await asyncio.wait({self._speaker_switch})
        finally:
            self._in_stream = self._out_stream = None
            self._speaker_switch = None
            self._speaker_running = False
            self._playback.cut()
            self._close_future.set_result(None)
            self._close_future = None
            logger.info("audio closed")

    # --- the sleeping speaker (switched on helper threads) --------------------------------------

    def _wake_speaker(self) -> None:
        """Have the speaker's stream run (audio is queued, or may come soon); idle, it may sleep again later."""
        if not self._speaker_wanted:
            self._speaker_wanted = True
            self._switch_speaker()
        if not self._active and self._speaker_sleep_timer is None:
            self._schedule_speaker_sleep()

    def _schedule_speaker_sleep(self, delay: float | None = None) -> None:
        if self._speaker_sleep_timer is not None:
            self._speaker_sleep_timer.cancel()
        loop = asyncio.get_running_loop()
        wait = self.speaker_sleep_s if delay is None else delay
        self._speaker_sleep_timer = loop.call_later(wait, self._maybe_sleep_speaker)

    def _maybe_sleep_speaker(self) -> None:
        """Stop the speaker's stream if the conversation is idle and it played nothing for `speaker_sleep_s`, unless
        echo cancellation is on (see the module docstring)."""
        self._speaker_sleep_timer = None
        if self._active or self._closing or self._out_stream is None or not self._speaker_wanted:
            return
        if self.echo is not None and self.echo.processing == "aec":
            return
        quiet_for = time.monotonic() - self._last_audible
        if self._playback.pending_bytes or quiet_for < self.speaker_sleep_s:
            self._schedule_speaker_sleep(max(0.05, self.speaker_sleep_s - quiet_for))
            return
        self._speaker_wanted = False
        self._switch_speaker()

    def _switch_speaker(self) -> None:
        """Bring the speaker's stream to the wanted state on a helper thread (one switch at a time)."""
        if self._speaker_switch is None or self._speaker_switch.done():
            self._speaker_switch = asyncio.ensure_future(self._run_speaker_switch())

    async def _run_speaker_switch(self) -> None:
        while self._speaker_running != self._speaker_wanted and not self._closing:
            switch = functools.partial(self._set_speaker_running, self._speaker_wanted)
            try:
                await run_on_own_thread(switch, name="ava-audio-speaker", join=True)
            except AudioDeviceError as error:
                if self._failure is None:
                    self._failure = error
                self._report_failure(error)
                return

    def _set_speaker_running(self, running: bool) -> None:
        """On a helper thread: start or stop the speaker's stream (a stop drops only silence)."""
        sd = _import_sounddevice()
        with self._speaker_lock:
            stream = self._out_stream
            if self._closing or stream is None:
                return
            if running:
                try:
                    stream.start()
                except (sd.PortAudioError, OSError) as exc:
                    name = self._output.name if self._output else "default"
                    raise self._open_error("output", name, exc) from exc
                self._speaker_running = True
            else:
                self._speaker_running = False  # before the stop: its finished callback is no failure
                with contextlib.suppress(sd.PortAudioError, OSError):
                    stream.abort()
                self.speaker_sleeps += 1

    def _close_under_lock(self, streams: Any) -> None:
        with self._speaker_lock:
            self._close_streams(streams)

    # --- opening (on a helper thread) ----------------------------------------------------------

    def _open_streams(self, sd: Any, loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
        """Choose devices and rates, open and start both streams; on any failure close what opened."""
        with _portaudio_lock:
            return self._rescan_and_open(sd, loop)

    def _rescan_and_open(self, sd: Any, loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
        opened: list[Any] = []
        try:
            rescan_devices(sd)
            self._input = self._choose(sd, "input", self._input_device)
            self._output = self._choose(sd, "output", self._output_device)
            processing = processing_for(self._audio_mode, self._output.name)
            canceller = (self._echo_memory.canceller_for(self._input.name, self._output.name)
                         if processing == "aec" and self._echo_memory is not None else None)
            self.echo = EchoFrontEnd(processing, output_rate=self._output.rate, canceller=canceller)
            in_stream = self._make_stream(sd, "input", self._input, loop)
            opened.append(in_stream)
            _count_streams(1)
            out_stream = self._make_stream(sd, "output", self._output, loop)
            opened.append(out_stream)
            _count_streams(1)
            started: tuple[tuple[Any, Kind, _DeviceChoice], ...] = (
                (in_stream, "input", self._input),
                (out_stream, "output", self._output),
            )
            self._speaker_running = True
            for stream, kind, choice in started:
                try:
                    stream.start()
                except (sd.PortAudioError, OSError) as exc:
                    raise self._open_error(kind, choice.name, exc) from exc
            self.echo.set_delay_ms(self._latency_ms(in_stream, out_stream))
            return in_stream, out_stream
        except BaseException:
            self._closing = True  # the finished callbacks of what we close now are no failure
            self._close_streams(opened)
            raise

    @staticmethod
    def _latency_ms(*streams: Any) -> int:
        """The devices' reported input plus output latency, in ms (0 if unknown)."""
        total = 0.0
        for stream in streams:
            with contextlib.suppress(Exception):
                total += float(stream.latency)
        return round(total * 1000)

    def _choose(self, sd: Any, kind: Kind, wanted: str | int | None) -> _DeviceChoice:
        """Find the device and the rate to open it at, or raise a user-facing `AudioDeviceError`."""
        noun = _noun(kind)
        try:
            info = sd.query_devices(wanted, kind=kind)
        except ValueError as exc:
            if str(exc).startswith("Multiple"):
                message = f"Several devices match '{wanted}': {_settings_hint(kind)} and pick one by name."
            else:
                message = f"The {noun} '{wanted}' was not found: plug it in or {_settings_hint(kind)}."
            raise AudioDeviceError(message) from exc
        except (sd.PortAudioError, OSError) as exc:
            if wanted is None:
                message = f"No {noun} found. Plug one in or {_settings_hint(kind)}."
            else:
                message = f"The {noun} '{wanted}' was not found: plug it in or {_settings_hint(kind)}."
            raise AudioDeviceError(message) from exc
        index = int(info["index"])
        name = str(info["name"])
        rate = self._forced_rate or WIRE_RATE
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        try:
            check(device=index, channels=1, dtype="int16", samplerate=rate)
        except (sd.PortAudioError, ValueError):
            if self._forced_rate is not None:
                raise AudioDeviceError(
                    f"The {noun} '{name}' cannot run at {rate} Hz: {_settings_hint(kind)}."
                ) from None
            rate = round(float(info["default_samplerate"]))
        return _DeviceChoice(index=index, name=name, rate=rate)

    def _make_stream(self, sd: Any, kind: Kind, choice: _DeviceChoice, loop: asyncio.AbstractEventLoop) -> Any:
        blocksize = choice.rate * (self._mic_block_ms if kind == "input" else SPEAKER_BLOCK_MS) // 1000
        try:
            if kind == "input":
                self._mic_resampler = LinearResampler(choice.rate, WIRE_RATE) if choice.rate != WIRE_RATE else None
                return sd.RawInputStream(
                    device=choice.index,
                    samplerate=choice.rate,
                    channels=1,
                    dtype="int16",
                    blocksize=blocksize,
                    callback=self._input_callback(loop),
                    finished_callback=self._finished_callback(loop, kind, choice.name),
                )
            self._speaker_resampler = LinearResampler(WIRE_RATE, choice.rate) if choice.rate != WIRE_RATE else None
            return sd.RawOutputStream(
                device=choice.index,
                samplerate=choice.rate,
                channels=1,
                dtype="int16",
                blocksize=blocksize,
                callback=self._output_callback(),
                finished_callback=self._finished_callback(loop, kind, choice.name),
            )
        except (sd.PortAudioError, OSError, ValueError) as exc:
            raise self._open_error(kind, choice.name, exc) from exc

    def _open_error(self, kind: Kind, name: str, exc: BaseException) -> AudioDeviceError:
        return AudioDeviceError(
            f"The {_noun(kind)} '{name}' could not be opened ({_reason(exc)}): {_settings_hint(kind)}."
        )

    @staticmethod
    def _close_streams(streams: Any) -> None:
        """Abort and close streams, ignoring errors of devices that are already gone."""
        for stream in streams:
            if stream is None:
                continue
            with contextlib.suppress(Exception):
                stream.abort()
            with contextlib.suppress(Exception):
                stream.close()
            _count_streams(-1)

    # --- callbacks (PortAudio's threads: no logging, no blocking) -----------------------------

    def _input_callback(self, loop: asyncio.AbstractEventLoop) -> Callable[[Any, int, Any, Any], None]:
        deliver = self._deliver_waiting
        waiting = self._mic_waiting

        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            if status:
                if status.input_overflow:
                    self.overflows += 1
                if status.input_underflow:
                    self.underflows += 1
            self.captured_blocks += 1
            # The monotonic time the block reached us: PortAudio's own clock is not comparable.
            block = bytes(indata)
            waiting.append((block, time.monotonic()))
            if len(waiting) >= self._delivery_batch or _loud(block, self._wake_level):
                with contextlib.suppress(RuntimeError):  # loop closed: nobody listens any more
                    loop.call_soon_threadsafe(deliver)

        return callback

    def _output_callback(self) -> Callable[[Any, int, Any, Any], None]:
        playback = self._playback
        echo = self.echo

        def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
            if status:
                if status.output_underflow:
                    self.underflows += 1
                if status.output_overflow:
                    self.overflows += 1
            audible = playback.fill(outdata, len(outdata)) > 0
            if audible:
                self.played_blocks += 1
                self._last_audible = time.monotonic()
            if echo is not None:
                echo.on_output(outdata, audible)  # a copy under a short lock: the reference for the canceller

        return callback

    def _finished_callback(self, loop: asyncio.AbstractEventLoop, kind: Kind, name: str) -> Callable[[], None]:
        """PortAudio calls this whenever the stream stops; it is a failure only if AVA is not closing it."""

        def finished() -> None:
            if self._closing or (kind == "output" and not self._speaker_running):
                return  # AVA closed the streams, or put the speaker to sleep
            error = AudioDeviceError(
                f"The {_noun(kind)} '{name}' stopped working (unplugged, or the sound server stopped): "
                f"check it or {_settings_hint(kind)}."
            )
            if self._failure is None:
                self._failure = error
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._report_failure, error)

        return finished

    # --- on the loop ---------------------------------------------------------------------------

    def _deliver_waiting(self) -> None:
        """Hand on the oldest microphone block PortAudio's thread has left for the loop; the others follow in order,
        one a loop step, so what a block lets out (a gate opening with its pre-roll) is sent before the next block
        is processed."""
        waiting = self._mic_waiting
        if waiting:
            raw, captured_at = waiting.popleft()
            self._deliver_mic(raw, captured_at)
        if waiting and not self._closing:
            asyncio.get_running_loop().call_soon(self._deliver_waiting)

    def _deliver_mic(self, raw: bytes, captured_at: float) -> None:
        """Hand a microphone block on: resampled to 24 kHz if needed, through the echo front end, in blocks
        of exactly `mic_block_ms`.

        Blocks still queued on the loop when `close()` began are dropped.
        """
        if self._closing or self._on_mic_block is None:
            return
        echo = self.echo
        if self._mic_resampler is None and (echo is None or echo.processing == "off"):
            self._on_mic_block(raw, captured_at)
            return
        pcm = self._mic_resampler.process_bytes(raw) if self._mic_resampler else raw
        self._mic_pending += echo.process(pcm, captured_at) if echo else pcm
        size = WIRE_RATE * self._mic_block_ms // 1000 * BYTES_PER_SAMPLE
        while len(self._mic_pending) >= size:
            block = bytes(self._mic_pending[:size])
            del self._mic_pending[:size]
            self._on_mic_block(block, captured_at)

    def _report_failure(self, error: AudioDeviceError) -> None:
        if self._closing:
            return
        logger.error("audio device failed: %s", error)
        if self._on_failure is not None:
            self._on_failure(error)


def list_devices() -> tuple[list[str], list[str]]:
    """Names of the input and output devices for the Settings pickers; empty without PortAudio.

    Always the devices present now: read here when no stream is open; while AVA's audio is open (when
    PortAudio cannot restart, see `rescan_devices`) read by a short-lived `ava-tray --list-devices json`,
    falling back to the list read when the audio opened.
    """
    with _portaudio_lock:
        audio_open = _open_stream_count > 0
    if audio_open:
        fresh = _list_devices_in_child()
        if fresh is not None:
            return fresh
    return list_devices_here()


CHILD_LISTING_TIMEOUT_S = 10.0


def _list_devices_in_child() -> tuple[list[str], list[str]] | None:
    """The device lists from a fresh process (its own PortAudio), or None if that failed."""
    try:
        done = subprocess.run([*paths.launch_command(), "--list-devices", "json"], capture_output=True, text=True,
                              timeout=CHILD_LISTING_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL,
                              creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))  # Windows: no console
        if done.returncode != 0:
            raise ValueError(f"exit code {done.returncode}: {done.stderr.strip()[-200:]}")
        listing = json.loads(done.stdout.strip().splitlines()[-1])
        inputs, outputs = listing["inputs"], listing["outputs"]
        if not all(isinstance(name, str) for name in [*inputs, *outputs]):
            raise ValueError("not a list of names")
        return list(inputs), list(outputs)
    except (OSError, ValueError, KeyError, IndexError, TypeError, subprocess.TimeoutExpired) as exc:
        logger.warning("could not list audio devices in a helper process (%s); showing those seen at start", exc)
        return None


def list_devices_here() -> tuple[list[str], list[str]]:
    """The device names PortAudio in this process sees (read anew unless a stream is open)."""
    try:
        sd = _import_sounddevice()
        rescan_devices(sd)
        devices = list(sd.query_devices())
        hostapis = [str(api["name"]) for api in sd.query_hostapis()]
    except AudioDeviceError:
        return [], []
    except Exception as exc:  # PortAudio errors: a picker just shows no devices
        logger.warning("could not list audio devices: %s", exc)
        return [], []

    def names(kind: Kind) -> list[str]:
        """A name found under several host APIs is given as "name, host API", which `sounddevice` matches
        exactly, so every entry opens the device it names."""
        found = [d for d in devices if d[f"max_{kind}_channels"] > 0]
        counts = collections.Counter(str(d["name"]) for d in found)
        result = []
        for d in found:
            name = str(d["name"])
            result.append(name if counts[name] == 1 else f"{name}, {hostapis[d['hostapi']]}")
        return result

    return names("input"), names("output")


def portaudio_info() -> str:
    """One line about the PortAudio library in use, for a self-test; says so if it is missing."""
    try:
        sd = _import_sounddevice()
    except AudioDeviceError as exc:
        return str(exc)
    version = sd.get_portaudio_version()[1]
    path = _loaded_library_path("libportaudio") or getattr(sd, "_libname", None) or "unknown path"
    return f"{version} ({path}); sounddevice {sd.__version__}"


def _loaded_library_path(stem: str) -> str | None:
    """The full path of a loaded shared library whose file name starts with `stem` (Linux only)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if path.startswith("/") and path.rsplit("/", 1)[-1].startswith(stem):
                    return path
    except OSError:
        pass
    return None
