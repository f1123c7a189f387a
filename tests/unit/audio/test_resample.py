"""LinearResampler: pure numpy, no device."""

from __future__ import annotations

import numpy as np
import pytest

from ava_tray.audio.resample import LinearResampler


def sine(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def in_blocks(resampler: LinearResampler, signal: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Feed `signal` in blocks cycling through `sizes`; return the joined output."""
    out, pos, i = [], 0, 0
    while pos < signal.size:
        size = sizes[i % len(sizes)]
        out.append(resampler.process(signal[pos : pos + size]))
        pos += size
        i += 1
    return np.concatenate(out)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_round_trip_24k_48k_24k_keeps_frequency_and_amplitude() -> None:
    original = sine(440, 24000)
    up = in_blocks(LinearResampler(24000, 48000), original, [480])
    back = in_blocks(LinearResampler(48000, 24000), up, [960])

    assert abs(up.size - 2 * original.size) <= 2
    assert peak_hz(up, 48000) == pytest.approx(440, abs=2)
    assert peak_hz(back, 24000) == pytest.approx(440, abs=2)
    assert rms(up) == pytest.approx(rms(original), rel=0.01)
    n = min(back.size, original.size)
    assert np.max(np.abs(back[:n].astype(int) - original[:n].astype(int))) <= 1


def test_48k_to_24k_keeps_a_tone() -> None:
    out = in_blocks(LinearResampler(48000, 24000), sine(1000, 48000), [960])
    assert peak_hz(out, 24000) == pytest.approx(1000, abs=2)
    assert rms(out) == pytest.approx(10000 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize(("src", "dst"), [(24000, 48000), (48000, 24000), (44100, 24000), (24000, 44100)])
def test_blocks_join_exactly_as_one_piece(src: int, dst: int) -> None:
    """Any cut into blocks gives the same samples as one call: no click at block boundaries."""
    signal = sine(700, src, seconds=0.5)
    whole = LinearResampler(src, dst).process(signal)
    blocked = in_blocks(LinearResampler(src, dst), signal, [src // 50, 1, 137, 7, src // 100])
    assert blocked.size == whole.size
    assert np.max(np.abs(blocked.astype(int) - whole.astype(int))) <= 1
    # No discontinuity: no step larger than the sine's steepest slope allows (+ rounding).
    max_step = 2 * np.pi * 700 * 10000 / dst + 2
    assert np.max(np.abs(np.diff(blocked.astype(int)))) <= max_step
    assert blocked.size == pytest.approx(signal.size * dst / src, abs=2)


def test_reset_starts_a_new_stream() -> None:
    resampler = LinearResampler(24000, 48000)
    first = resampler.process(sine(440, 24000, 0.1))
    resampler.reset()
    again = resampler.process(sine(440, 24000, 0.1))
    assert np.array_equal(first, again)


def test_bytes_and_empty_blocks() -> None:
    resampler = LinearResampler(24000, 48000)
    assert resampler.process(np.zeros(0, dtype=np.int16)).size == 0
    out = resampler.process_bytes(sine(440, 24000, 0.02).astype("<i2").tobytes())
    assert len(out) % 2 == 0 and 958 <= len(out) // 2 <= 960  # the last input sample waits for the next block


def test_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        LinearResampler(0, 24000)
