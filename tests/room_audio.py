"""Labelled test audio at 24 kHz: real speech from espeak-ng, a fan and a keyboard, mixed at known places.

Speech is labelled per 10 ms frame from the clean signal (a frame is speech when it is within 40 dB of the
utterance's loudest frame), so a test can say how much of an utterance passed, and where it began.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ava_tray.audio.resample import LinearResampler

RATE = 24_000
FRAME = 240
"""Label resolution: 10 ms at 24 kHz."""
FULL_SCALE = 32768.0

Samples = npt.NDArray[np.float64]
"""Audio as float samples in int16 units (so ±32768 is full scale)."""

SENTENCES = (
    "Hey Ava, what is the weather going to be like tomorrow morning?",
    "Set a timer for twelve minutes, please.",
    "Remind me to call my sister at six thirty.",
    "How many tablespoons are there in a cup?",
    "Could you read me the last thing I copied?",
    "Fine, thanks. Stop talking for a second.",
    "Seven hundred and forty divided by sixteen.",
    "Sure, go ahead and save that to memory.",
)
VOICES = ("en-us", "en-gb", "en+f3", "en+m4")
SPEEDS = (140, 160, 180)


def espeak_missing_reason() -> str | None:
    """Why speech cannot be generated here, or None when espeak-ng is installed."""
    if shutil.which("espeak-ng") is None:
        return "espeak-ng is not installed (apt-get install espeak-ng): no real speech to test with"
    return None


def dbfs(level: float) -> float:
    """An RMS or peak level in dBFS as int16 units."""
    return float(FULL_SCALE * 10 ** (level / 20))


def rms(x: Samples) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def to_pcm(x: Samples) -> bytes:
    """Float samples to little-endian int16 bytes, clipped."""
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def speak(text: str, voice: str = "en-us", speed: int = 160) -> Samples:
    """`text` spoken by espeak-ng, resampled to 24 kHz, as floats in int16 units at espeak's own level."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                       check=True, capture_output=True, timeout=30)
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            raw = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    resampled = LinearResampler(rate, RATE).process(raw) if rate != RATE else raw
    return resampled.astype(np.float64)


def speech_mask(clean: Samples) -> npt.NDArray[np.bool_]:
    """One flag per 10 ms frame: within 40 dB of the loudest frame of this (noise-free) utterance."""
    frames = clean[: clean.size // FRAME * FRAME].reshape(-1, FRAME)
    levels = np.sqrt(np.mean(np.square(frames), axis=1))
    return np.asarray(levels >= levels.max() * 10 ** (-40 / 20))


def trimmed(clean: Samples) -> Samples:
    """The utterance without espeak's leading and trailing digital silence (so labels start at the voice)."""
    loud = np.flatnonzero(speech_mask(clean))
    return clean[loud[0] * FRAME : (loud[-1] + 1) * FRAME]


def shaped_noise(seconds: float, gain: npt.NDArray[np.float64] | None, rng: np.random.Generator) -> Samples:
    """White noise with its spectrum multiplied by `gain` (one value per rfft bin), unit RMS."""
    n = round(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    if gain is not None:
        spectrum *= gain
    x = np.fft.irfft(spectrum, n)
    return x / (rms(x) or 1.0)


def fan_noise(seconds: float, level_dbfs: float, rng: np.random.Generator) -> Samples:
    """A fan: noise low-passed around 400 Hz with a blade hum at 90 Hz and its harmonics, at `level_dbfs` RMS."""
    n = round(seconds * RATE)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    gain = 1 / np.sqrt(1 + (freqs / 400) ** 4)  # second-order low pass
    noise = shaped_noise(seconds, gain, rng)
    t = np.arange(n) / RATE
    hum = sum(np.sin(2 * np.pi * 90 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    x = noise + 0.3 * hum
    return x * dbfs(level_dbfs) / rms(x)


def key_click(rng: np.random.Generator) -> Samples:
    """One key press: a bright noise burst decaying in a few milliseconds over a short low 'thock'."""
    n = round(0.04 * RATE)
    t = np.arange(n) / RATE
    burst = np.diff(rng.standard_normal(n + 1)) * np.exp(-t / rng.uniform(0.002, 0.005))
    thock = np.sin(2 * np.pi * rng.uniform(150, 400) * t) * np.exp(-t / 0.008)
    x = burst + 0.5 * thock
    return np.asarray(x / np.max(np.abs(x)))


def keyboard(seconds: float, peak_dbfs: float, rng: np.random.Generator, keys_per_second: float = 6.0) -> Samples:
    """Typing: clicks at random intervals (a press and, 60-120 ms later, a softer release), peaks near `peak_dbfs`."""
    n = round(seconds * RATE)
    out = np.zeros(n + RATE)
    at = 0.0
    while at < seconds:
        for offset, scale in ((0.0, 1.0), (rng.uniform(0.06, 0.12), 0.5)):
            click = key_click(rng) * dbfs(peak_dbfs) * scale * rng.uniform(0.6, 1.0)
            start = round((at + offset) * RATE)
            out[start : start + click.size] += click
        at += rng.exponential(1 / keys_per_second) + 0.03
    return out[:n]


def room_noise(seconds: float, rng: np.random.Generator, fan_dbfs: float = -50.0,
               keys_peak_dbfs: float = -20.0) -> Samples:
    """A fan and someone typing, the non-speech a desk microphone hears all day."""
    return fan_noise(seconds, fan_dbfs, rng) + keyboard(seconds, keys_peak_dbfs, rng)


@dataclass
class Scene:
    """A mixed recording with the frames (10 ms) that hold speech and where each utterance sits."""

    samples: Samples
    speech: npt.NDArray[np.bool_]
    utterances: list[tuple[int, int]] = field(default_factory=list)
    """(first frame, end frame) of each utterance's speech, in 10 ms frames."""

    @property
    def pcm(self) -> bytes:
        return to_pcm(self.samples)

    @property
    def seconds(self) -> float:
        return self.samples.size / RATE


def scene(utterances: list[Samples], gaps_s: list[float], background: Samples | None = None,
          speech_rms_dbfs: float = -26.0) -> Scene:
    """Utterances (trimmed to their voice) separated by gaps (`gaps_s` has one more entry than utterances: the
    lead-in, the gaps, the tail), each scaled to `speech_rms_dbfs` over its speech frames, over `background`."""
    if len(gaps_s) != len(utterances) + 1:
        raise ValueError("need a gap before, between and after the utterances")
    gap_frames = [round(g * RATE / FRAME) for g in gaps_s]
    parts: list[Samples] = []
    speech: list[npt.NDArray[np.bool_]] = []
    spans: list[tuple[int, int]] = []
    frame = 0
    for i, gap in enumerate(gap_frames):
        parts.append(np.zeros(gap * FRAME))
        speech.append(np.zeros(gap, dtype=bool))
        frame += gap
        if i == len(utterances):
            break
        voice = trimmed(utterances[i])
        voice = voice[: voice.size // FRAME * FRAME]
        mask = speech_mask(voice)
        level = rms(voice.reshape(-1, FRAME)[mask])
        parts.append(voice * dbfs(speech_rms_dbfs) / level)
        speech.append(mask)
        spans.append((frame, frame + mask.size))
        frame += mask.size
    samples = np.concatenate(parts)
    if background is not None:
        if background.size < samples.size:
            raise ValueError("the background is shorter than the scene")
        samples = samples + background[: samples.size]
    return Scene(samples, np.concatenate(speech), spans)


def said(text: str, *, voice: str = "en-us", speed: int = 160, rms_dbfs: float = -24.0, quiet_before_s: float = 1.0,
         quiet_after_s: float = 1.0) -> bytes:
    """`text` spoken (espeak-ng) as PCM for a microphone, at `rms_dbfs` over its speech, with quiet around it: what
    a test's user says. Skips the test when espeak-ng is missing."""
    reason = espeak_missing_reason()
    if reason:
        import pytest

        pytest.skip(reason)
    return scene([speak(text, voice, speed)], [quiet_before_s, quiet_after_s], None, speech_rms_dbfs=rms_dbfs).pcm
