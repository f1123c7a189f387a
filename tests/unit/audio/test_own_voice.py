"""Telling AVA's own voice, slipped past echo cancellation, from a user talking over it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import room_audio as ra  # tests/room_audio.py

from ava_tray.audio.own_voice import (
    EARLIEST_S,
    HEARD_S,
    SAME_VOICE,
    PlayedAudio,
    measure_on_synthetic_echo,
    resemblance,
)
from ava_tray.simulator.voice import synthetic_voice

RATE = ra.RATE
HEARD = round(HEARD_S * RATE)


def room_echo(played: npt.NDArray[np.float64], delay_s: float, gain: float) -> npt.NDArray[np.float64]:
    """`played` as a microphone hears it across a room: late, quieter, with a few reflections."""
    delay = round(delay_s * RATE)
    echo = np.zeros_like(played)
    for extra, share in ((0, 1.0), (37, 0.5), (113, 0.3), (251, 0.2)):
        echo[delay + extra :] += played[: played.size - delay - extra] * gain * share
    return echo


def loud_ends(signal: npt.NDArray[np.float64], rng: np.random.Generator, count: int, level: float) -> list[int]:
    """`count` places the voice gate could ask about: the last 100 ms loud (its three windows judged speech)."""
    ends: list[int] = []
    while len(ends) < count:
        end = int(rng.integers(RATE + HEARD, signal.size - RATE // 10))
        if np.sqrt(np.mean(signal[end - RATE // 10 : end] ** 2)) >= level:
            ends.append(end)
    return ends


def as_pcm(x: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.clip(x, -32768, 32767).astype(np.int16)


def played_before(ava: npt.NDArray[np.float64], end: int) -> npt.NDArray[np.int16]:
    """What the speaker played from `EARLIEST_S` before the heard stretch to just after it."""
    return as_pcm(ava[end - HEARD - round(EARLIEST_S * RATE) : end + RATE // 50])


@pytest.fixture(scope="module")
def espeak() -> None:
    reason = ra.espeak_missing_reason()
    if reason:
        pytest.skip(reason)


def test_avas_voice_coming_back_across_a_room_resembles_what_was_played() -> None:
    ava = np.frombuffer(synthetic_voice(4.0), dtype="<i2").astype(np.float64)
    rng = np.random.default_rng(3)
    for delay_s in (0.06, 0.15, 0.3, 0.45):
        echo = room_echo(ava, delay_s, gain=0.05)
        for end in loud_ends(echo, rng, 10, level=0.025 * ava.std()):
            heard = as_pcm(echo[end - HEARD : end] + rng.normal(0, 3, HEARD))
            assert resemblance(heard, played_before(ava, end)) >= SAME_VOICE, f"delay {delay_s} s, at {end}"


def speech_as_ava() -> npt.NDArray[np.float64]:
    return ra.speak("Sure. The forecast for tomorrow is sunny, with light winds from the west. I have added that to "
                    "your calendar for three o'clock.", "en-us+m3", 170) * 0.15


@pytest.mark.parametrize("echo_left_db", [-20, -6])
def test_a_user_talking_over_ava_does_not(espeak: None, echo_left_db: int) -> None:
    """AVA's echo left `echo_left_db` under the user's voice: -20, echo cancellation at work; -6, the worst case, it
    removed nothing and the user is barely louder. Then a few stretches may look like AVA (the gate asks again at
    the next window), most do not."""
    users = [ra.speak(text, voice, speed) * 0.1 for text, voice, speed in (
        ("Stop, wait a moment please.", "en-us", 170),
        ("No, I meant the other one, tomorrow at noon.", "en-gb", 150),
        ("Hang on, what about the weather in Paris?", "en-us+f3", 190))]
    avas = {"simulator": np.frombuffer(synthetic_voice(6.0), dtype="<i2").astype(np.float64),
            "speech": speech_as_ava()}
    rng = np.random.default_rng(5)
    for name, ava in avas.items():
        gain = 10 ** (echo_left_db / 20) * float(np.std(users[0])) / float(np.std(ava))
        echo = room_echo(ava, 0.2, gain)
        over, alone = [], []
        for index, end in enumerate(loud_ends(echo, rng, 40, level=0.3 * float(np.std(echo)))):
            user = users[index % len(users)]
            start = loud_ends(user, rng, 1, level=0.5 * float(np.std(user)))[0] - HEARD
            over.append(resemblance(as_pcm(user[start : start + HEARD] + echo[end - HEARD : end]),
                                    played_before(ava, end)))
            alone.append(resemblance(as_pcm(echo[end - HEARD : end]), played_before(ava, end)))
        unlike = float(np.mean(np.array(over) < SAME_VOICE))
        assert unlike >= (1.0 if echo_left_db <= -20 else 0.9), f"{name}: {sorted(over)[-5:]}"
        assert min(alone) >= SAME_VOICE, f"a control: {name}'s echo alone resembles what was played"


def test_silence_or_too_little_to_judge_resembles_nothing() -> None:
    ava = as_pcm(np.frombuffer(synthetic_voice(2.0), dtype="<i2").astype(np.float64))
    assert resemblance(np.zeros(HEARD, dtype=np.int16), ava) == 0.0
    assert resemblance(ava[:HEARD], np.zeros(RATE, dtype=np.int16)) == 0.0
    assert resemblance(ava[:240], ava) == 0.0


def test_what_was_played_is_placed_by_when_the_speaker_took_it() -> None:
    played = PlayedAudio(keep_s=1.0)
    played.add(10.0, np.full(240, 1, dtype=np.int16))
    played.add(10.02, np.full(240, 2, dtype=np.int16))  # 10 ms of nothing played between the two
    stretch = played.between(9.99, 10.04)
    assert list(stretch[::120]) == [0, 0, 1, 1, 0, 0, 2, 2, 0, 0]
    played.add(11.5, np.full(240, 3, dtype=np.int16))
    assert not played.between(9.99, 10.04).any(), "chunks older than keep_s are forgotten"


def test_the_echo_is_found_as_late_as_the_devices_latency_says(espeak: None) -> None:
    ava = speech_as_ava()
    latency_s = 0.4
    echo = room_echo(ava, EARLIEST_S + latency_s - 0.05, gain=0.1)
    played = PlayedAudio(keep_s=ava.size / RATE)
    for start in range(0, ava.size, 960):
        played.add(start / RATE, as_pcm(ava[start : start + 960]))
    end = loud_ends(echo, np.random.default_rng(1), 1, level=0.1 * float(np.std(echo)))[0]
    heard = as_pcm(echo[end - HEARD : end])
    assert played.heard_in(heard, end / RATE, latency_s) >= SAME_VOICE
    assert played.heard_in(heard, end / RATE, 0.0) < SAME_VOICE, "a control: beyond the delays searched"


def test_the_self_tests_synthetic_echo_is_recognised() -> None:
    assert measure_on_synthetic_echo() >= SAME_VOICE
