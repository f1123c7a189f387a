"""Test helpers for real audio through the PulseAudio null sinks that scripts/with-services.sh starts.

The microphone is fed by playing into the sink `virtmic` (its monitor is remapped as the default
source `mic`); what the speaker plays is heard on `speaker.monitor`. Pulse is jittery (the first
callback can come a second late, then bursts): wait for conditions with timeouts, never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from waits import wait_until

RATE = 24000
RUN_HINT = "bash scripts/with-services.sh .venv/bin/python -m pytest tests/e2e/audio"
LOUD_RMS = 500.0
"""An RMS (int16 units) well above the null sinks' silence (0) and below the test signals (~5000)."""
WINDOW_MS = 10


# --- signals ----------------------------------------------------------------------------------------


def speech_like_pcm(seconds: float, *, rate: int = RATE, seed: int = 0, level: float = 0.3) -> bytes:
    """Deterministic voiced-speech-like int16 PCM: a gliding pitch with harmonics, syllable envelope."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    pitch = 140.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t) + 10.0 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    # Syllables at ~4 Hz that never fall fully silent, so every 10 ms window is clearly "speech".
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, np.pi)) ** 2
    signal = voice * envelope + 0.02 * rng.standard_normal(n)
    signal *= level / np.max(np.abs(signal))
    return (signal * 32767).astype("<i2").tobytes()


def tone_pcm(freq: float, seconds: float, *, rate: int = RATE, level: float = 0.3) -> bytes:
    """A sine as int16 PCM."""
    t = np.arange(round(seconds * rate)) / rate
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    """int16 PCM bytes as a float64 array."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def rms(pcm: bytes) -> float:
    """Root mean square of int16 PCM, in int16 units (0 for empty)."""
    x = samples(pcm)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def dominant_frequency(pcm: bytes, rate: int = RATE) -> float:
    """The frequency of the strongest FFT bin (Hann window), in Hz."""
    x = samples(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def write_wav(path: Path, pcm: bytes, rate: int = RATE) -> Path:
    """Write mono int16 PCM as a WAV file (e.g. for `paplay`)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


# --- is PulseAudio there? ------------------------------------------------------------------------------


@functools.cache
def pulse_skip_reason() -> str | None:
    """Why real-audio tests cannot run here, or None when the null sinks are up."""
    if shutil.which("pactl") is None:
        return f"pactl not installed: run 'bash scripts/bootstrap.sh', then {RUN_HINT}"
    try:
        info = subprocess.run(["pactl", "info"], capture_output=True, timeout=5, check=False)
        sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"PulseAudio not answering ({exc}): run {RUN_HINT}"
    if info.returncode != 0:
        return f"no PulseAudio running: run {RUN_HINT}"
    names = {line.split("\t")[1] for line in sinks.stdout.splitlines() if "\t" in line}
    if not {"speaker", "virtmic"} <= names:
        return f"PulseAudio has no 'speaker'/'virtmic' null sinks: run {RUN_HINT}"
    return None


def pulse_available() -> bool:
    """True when PulseAudio with the test null sinks answers."""
    return pulse_skip_reason() is None


def needs_pulse() -> pytest.MarkDecorator:
    """A skip mark for tests on real audio, naming the command that runs them."""
    reason = pulse_skip_reason()
    return pytest.mark.skipif(reason is not None, reason=reason or "")



async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# --- the virtual microphone ------------------------------------------------------------------------------

FEED_LATENCY_MS = 250
"""How much of the fed audio PulseAudio holds queued. A real microphone never stops mid-word; a feed with a short
queue does when the machine stalls (a CI host that steals the CPU for 100 ms): the null sink catches up at once,
the queue runs dry, and silence is written into the user's sentence (it split sentences into two turns in CI)."""


@contextlib.asynccontextmanager
async def feed_mic(
    pcm: bytes, *, rate: int = RATE, repeat: bool = False, device: str = "virtmic"
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Play PCM into the virtual microphone with `pacat` while the block runs (looped if `repeat`)."""
    proc = await asyncio.create_subprocess_exec(
        "pacat", "--playback", f"--device={device}", f"--rate={rate}", "--channels=1",
        "--format=s16le", "--raw", f"--latency-msec={FEED_LATENCY_MS}",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdin is not None
    stdin = proc.stdin

    async def write() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                stdin.write(pcm)
                await stdin.drain()
                if not repeat:
                    break
            stdin.close()

    writer = asyncio.create_task(write())
    try:
        yield proc
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await _stop(proc)


# --- listening to the speaker ----------------------------------------------------------------------------


class SpeakerMonitor:
    """Records `speaker.monitor` with `parec` into a buffer and answers "was it loud / quiet since?".

    Positions are sample indices in what was recorded: the null sink is paced in real time, so
    24 samples are 1 ms, and comparing positions avoids the jitter of wall-clock arrival times.
    """

    def __init__(self, *, rate: int = RATE, device: str = "speaker.monitor") -> None:
        self.rate = rate
        self.device = device
        self.pcm = bytearray()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        """Samples recorded so far."""
        return len(self.pcm) // 2

    def ms(self, n_samples: int) -> float:
        """Samples as milliseconds."""
        return n_samples * 1000 / self.rate

    async def start(self, timeout: float = 10.0) -> None:
        """Start recording and wait until the first audio arrived (pulse may take a second)."""
        self._proc = await asyncio.create_subprocess_exec(
            "parec", f"--device={self.device}", f"--rate={self.rate}", "--channels=1",
            "--format=s16le", "--raw", "--latency-msec=10",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        await wait_until(lambda: self.position > 0, timeout=timeout, what=f"parec to record {self.device}")

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while chunk := await self._proc.stdout.read(4096):
            self.pcm += chunk

    async def stop(self) -> None:
        """Stop recording; idempotent."""
        if self._proc is not None:
            await _stop(self._proc)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def _loud_windows(self, since: int) -> tuple[int, np.ndarray]:
        """(start sample of the first window, loudness per complete 10 ms window from `since`)."""
        window = self.rate * WINDOW_MS // 1000
        start = max(0, since)
        x = np.frombuffer(bytes(self.pcm[start * 2 :]), dtype="<i2").astype(np.float64)
        count = x.size // window
        frames = x[: count * window].reshape(count, window)
        return start, np.sqrt(np.mean(frames * frames, axis=1)) if count else np.zeros(0)

    def loud_ms(self, since: int = 0, threshold: float = LOUD_RMS) -> float:
        """Milliseconds of 10 ms windows louder than `threshold` since sample `since`."""
        _, levels = self._loud_windows(since)
        return float(np.count_nonzero(levels > threshold) * WINDOW_MS)

    def quiet_from(self, since: int, quiet_ms: float, threshold: float = LOUD_RMS) -> int | None:
        """Start of the first run of `quiet_ms` below `threshold` that follows the last loud window.

        None until such a run has been recorded.
        """
        start, levels = self._loud_windows(since)
        window = self.rate * WINDOW_MS // 1000
        needed = max(1, round(quiet_ms / WINDOW_MS))
        loud = np.flatnonzero(levels > threshold)
        first_quiet = int(loud[-1]) + 1 if loud.size else 0
        if levels.size - first_quiet < needed:
            return None
        return start + first_quiet * window

    async def wait_for_sound(
        self, ms: float, *, since: int = 0, threshold: float = LOUD_RMS, timeout: float = 10.0
    ) -> None:
        """Wait until `ms` of loud audio was heard since sample `since`."""
        await wait_until(
            lambda: self.loud_ms(since, threshold) >= ms,
            timeout=timeout,
            what=f"{ms} ms of sound on {self.device} (heard {self.loud_ms(since, threshold)} ms)",
        )

    async def wait_for_silence(
        self, quiet_ms: float, *, since: int, threshold: float = LOUD_RMS, timeout: float = 10.0
    ) -> int:
        """Wait for `quiet_ms` of silence after the last sound since `since`; return where it began."""
        found: list[int] = []

        def quiet() -> bool:
            start = self.quiet_from(since, quiet_ms, threshold)
            if start is not None:
                found.append(start)
            return start is not None

        await wait_until(quiet, timeout=timeout, what=f"{quiet_ms} ms of silence on {self.device}")
        return found[-1]


@contextlib.asynccontextmanager
async def monitor_speaker(*, rate: int = RATE) -> AsyncIterator[SpeakerMonitor]:
    """A started `SpeakerMonitor`, stopped at the end."""
    monitor = SpeakerMonitor(rate=rate)
    try:
        await monitor.start()
        yield monitor
    finally:
        await monitor.stop()


# --- an echo path: the speaker heard by the microphone, as on a laptop -----------------------------------

LOOPBACK_VOLUME = "80%"
"""PulseAudio volumes are cubic: 80% is about -6 dB, so AVA's voice reaches the microphone at about half its
level (RMS ~1000-1500 against the simulator VAD's 500), like laptop speakers beside the microphone."""


def _pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=True).stdout.strip()


@contextlib.contextmanager
def echo_path(latency_ms: int = 60, volume: str = LOOPBACK_VOLUME) -> Iterator[None]:
    """Loop what the speaker plays back into the virtual microphone (module-loopback), attenuated."""
    before = {line.split("\t")[0] for line in _pactl("list", "short", "sink-inputs").splitlines() if line}
    module = _pactl("load-module", "module-loopback", "source=speaker.monitor", "sink=virtmic",
                    f"latency_msec={latency_ms}", "source_dont_move=true", "sink_dont_move=true")
    try:
        inputs = [line.split("\t") for line in _pactl("list", "short", "sink-inputs").splitlines() if line]
        ours = [fields[0] for fields in inputs if fields[0] not in before and fields[3] == "module-loopback.c"]
        assert ours, f"the loopback's sink input was not found in {inputs}"
        _pactl("set-sink-input-volume", ours[0], volume)
        yield
    finally:
        _pactl("unload-module", module)


# --- a private, killable sound server ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def private_pulse(timeout: float = 10.0) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A throwaway PulseAudio with one null sink and source; yields (PULSE_SERVER value, process).

    For tests that kill the sound server under a running stream without disturbing the shared one.
    """
    runtime = tempfile.mkdtemp(prefix="ava-pulse-")
    os.chmod(runtime, 0o700)
    socket = f"{runtime}/native"
    server = f"unix:{socket}"
    proc = await asyncio.create_subprocess_exec(
        "pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "-n", "--use-pid-file=no",
        f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket}",
        "--load=module-null-sink sink_name=spare",
        "--load=module-remap-source master=spare.monitor source_name=sparemic",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "XDG_RUNTIME_DIR": runtime},
    )  # fmt: skip

    def answers() -> bool:
        return (
            subprocess.run(
                ["pactl", f"--server={server}", "info"], capture_output=True, timeout=5, check=False
            ).returncode
            == 0
        )

    try:
        await wait_until(answers, timeout=timeout, what="a private PulseAudio", poll=0.05)
        yield server, proc
    finally:
        await _stop(proc)
        shutil.rmtree(runtime, ignore_errors=True)
