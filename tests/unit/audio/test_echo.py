"""The microphone's front end with the real WebRTC audio processing module (no devices needed)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from ava_tray.__main__ import build_parser
from ava_tray.audio import echo
from ava_tray.audio.echo import EchoFrontEnd, looks_like_headset, processing_for, wants_echo_cancellation
from ava_tray.bootstrap import launch_options
from ava_tray.settings import Settings
from ava_tray.simulator import synthetic_voice

BLOCK = 480  # 20 ms at 24 kHz, as the devices deliver


def level(pcm: bytes | np.ndarray) -> float:
    x = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes) else pcm
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.parametrize(("name", "headset"), [
    ("Built-in Audio Analog Stereo", False), ("pulse", False), ("default", False),
    ("Speakers (Realtek(R) Audio)", False),
    ("Headphones (Realtek(R) Audio)", True), ("Jabra Evolve2 Headset", True), ("WH-1000XM4 (bluez_output)", True),
    ("Galaxy Buds Pro Hands-Free", True), ("AirPods Pro", True),
])  # fmt: skip
def test_automatic_turns_echo_cancellation_off_for_headsets(name: str, headset: bool) -> None:
    assert looks_like_headset(name) is headset
    assert wants_echo_cancellation("automatic", name) is not headset
    assert wants_echo_cancellation("speakers", name) is True
    assert wants_echo_cancellation("headphones", name) is False


def test_the_library_loads_here_and_the_processing_follows_the_mode() -> None:
    assert echo.load_error() is None
    assert processing_for("speakers", "Headset") == "aec"
    assert processing_for("automatic", "Built-in Speakers") == "aec"
    assert processing_for("automatic", "USB Headset") == "off"
    assert echo.state_line("aec") == "on"
    assert echo.state_line("off") == "off (headphones)"
    assert echo.state_line("half-duplex") == "unavailable: half-duplex"


def run_echo(front: EchoFrontEnd, far: np.ndarray, *, gain: float = 0.5, lag: int = 1440,
             user: np.ndarray | None = None, output_rate: int = 24000) -> np.ndarray:
    """Play `far` (at the output rate) through a simulated room into the front end; return what it lets out."""
    step = output_rate // 50
    far24 = far if output_rate == 24000 else far[:: output_rate // 24000]
    near = np.zeros(far24.size, dtype=np.float64)
    near[lag:] = far24[: far24.size - lag] * gain
    if user is not None:
        near[: user.size] += user
    near16 = np.clip(near, -32768, 32767).astype("<i2")
    out = bytearray()
    for index in range(far.size // step):
        front.on_output(far[index * step : (index + 1) * step].tobytes(), True)
        out += front.process(near16[index * BLOCK : (index + 1) * BLOCK].tobytes(), time.monotonic())
    return np.frombuffer(bytes(out), dtype="<i2")


def test_echo_of_ava_voice_is_removed_and_the_block_sizes_are_kept() -> None:
    front = EchoFrontEnd("aec", delay_ms=60)
    far = np.frombuffer(synthetic_voice(6.0), dtype="<i2")
    out = run_echo(front, far)
    assert out.size == far.size
    echo_level = level(far[-2 * 24000 :]) * 0.5
    residual = level(out[-2 * 24000 :])
    assert residual < echo_level / 10, f"only {20 * np.log10(echo_level / residual):.1f} dB removed"
    assert front.stats.far_frames == front.stats.near_frames == far.size // 240
    assert front.stats.cpu_seconds < 6.0 * 0.1  # well under 10% of a core


def test_the_reference_is_taken_at_the_device_rate_and_resampled() -> None:
    front = EchoFrontEnd("aec", output_rate=48000, delay_ms=60)
    voice = np.frombuffer(synthetic_voice(6.0), dtype="<i2")
    far48 = np.repeat(voice, 2)  # what a 48 kHz device would get
    out = run_echo(front, far48, output_rate=48000)
    assert level(out[-2 * 24000 :]) < level(voice[-2 * 24000 :]) * 0.5 / 10


def test_a_user_talking_over_ava_still_comes_through() -> None:
    front = EchoFrontEnd("aec", delay_ms=60)
    far = np.frombuffer(synthetic_voice(6.0), dtype="<i2")
    t = np.arange(far.size) / 24000
    user = np.where(t > 4.0, 4000 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2, 0.0)
    out = run_echo(front, far, user=user)
    assert level(out[-int(1.5 * 24000) :]) > 500  # above the VAD's threshold


def test_half_duplex_sends_silence_while_ava_speaks_and_for_a_tail_after() -> None:
    front = EchoFrontEnd("half-duplex", delay_ms=50)
    block = (np.ones(BLOCK) * 3000).astype("<i2").tobytes()
    front.on_output(bytes(960), False)
    assert front.process(block, time.monotonic()) == block  # nothing audible played yet
    front.on_output(block, True)
    spoke = time.monotonic()
    assert front.process(block, spoke) == bytes(len(block))
    assert front.process(block, spoke + 0.3) == bytes(len(block))  # tail: 300 ms + the devices' 50 ms
    assert front.process(block, spoke + 0.4) == block
    assert front.state == "unavailable: half-duplex"


def test_off_passes_the_microphone_through_untouched() -> None:
    front = EchoFrontEnd("off")
    block = np.arange(BLOCK, dtype="<i2").tobytes()
    front.on_output(block, True)
    assert front.process(block, time.monotonic()) == block
    assert front.state == "off (headphones)"


def test_partial_frames_wait_for_the_next_block() -> None:
    front = EchoFrontEnd("aec")
    assert front.process(bytes(300), time.monotonic()) == b""
    assert len(front.process(bytes(300), time.monotonic())) == 480
    assert len(front.process(bytes(100), time.monotonic())) == 0


def test_the_self_test_round_removes_a_synthetic_echo() -> None:
    assert echo.measure_echo_removal(seconds=3.0) > 40


def test_audio_mode_setting_and_command_line() -> None:
    assert Settings().audio_mode == "automatic" and not Settings().problems()
    assert replace(Settings(), audio_mode="loud").problems()
    args = build_parser().parse_args(["--console", "--audio-mode", "headphones"])
    assert launch_options(args).apply(Settings()).audio_mode == "headphones"
    assert launch_options(build_parser().parse_args(["--console"])).apply(Settings()).audio_mode == "automatic"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--audio-mode", "loud"])
