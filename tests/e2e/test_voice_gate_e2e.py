"""The voice gate on real audio (PulseAudio null sinks), AVA as a user runs it, against the simulator: spoken
requests (espeak-ng) reach the server whole, one turn each; a silent minute and a minute of fan and keyboard
send (almost) nothing; talking over AVA on speakers interrupts it; the gate off streams as before."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import pulse
import pytest
import room_audio as ra
from gate_rig import LeakyCanceller, TeeVoiceIO, appended, delivered, lag_of, sent_mask, server_turns

from ava_tray.audio import echo
from ava_tray.audio.devices import SoundDeviceVoiceIO
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.simulator.voice import SpeechStarted, TurnDetector
from ava_tray.supervisor import Connected

pytestmark = [pytest.mark.e2e, pulse.needs_pulse()]


@pytest.fixture(scope="module")
def espeak() -> None:
    reason = ra.espeak_missing_reason()
    if reason:
        pytest.skip(reason)


@contextlib.asynccontextmanager
async def running_ava(simulator: RealtimeSimulator, *, audio_mode: str = "headphones",
                      voice_gate: bool = True) -> AsyncIterator[tuple[AvaEngine, list[TeeVoiceIO]]]:
    settings = replace(Settings(), realtime_url=simulator.url, audio_mode=audio_mode, voice_gate=voice_gate)
    voices: list[TeeVoiceIO] = []

    def make_voice() -> TeeVoiceIO:
        voices.append(TeeVoiceIO(SoundDeviceVoiceIO(audio_mode=audio_mode)))
        return voices[-1]

    engine = AvaEngine(settings, None, history=ReconnectHistory(None), voice_io_factory=make_voice,
                       launch=LaunchOptions(rollover=RolloverPolicy(enabled=False)))
    task = asyncio.create_task(engine.run())
    try:
        await pulse.wait_until(lambda: isinstance(engine.supervisor.state, Connected) and voices, timeout=15,
                               what="AVA connected")
        await pulse.wait_until(lambda: len(voices[-1].blocks) > 5, timeout=10, what="the microphone running")
        yield engine, voices
    finally:
        engine.stop()
        await asyncio.wait_for(task, 10)


def single_turn(voice: ra.Samples) -> bool:
    """The simulator's VAD alone takes this request for one turn (no long pause at a comma)."""
    alone = ra.scene([voice], [0.5, 1.5], None, speech_rms_dbfs=-26)
    return sum(isinstance(e, SpeechStarted) for e in TurnDetector(500.0, 500).feed(alone.pcm)) == 1


@pytest.fixture(scope="module")
def requests(espeak: None) -> ra.Scene:
    """Four requests in four voices and three speeds, with quiet pauses and typing over a fan between them."""
    spoken = (ra.speak(text, voice, speed) for text, voice, speed in
              zip(ra.SENTENCES, itertools.cycle(ra.VOICES), itertools.cycle(ra.SPEEDS), strict=False))
    voices = list(itertools.islice(filter(single_turn, spoken), 4))
    gaps = [1.0, 3.0, 2.5, 3.0, 1.5]
    total = sum(gaps) + sum(v.size for v in voices) / ra.RATE + 1
    noise = ra.room_noise(total, np.random.default_rng(21), fan_dbfs=-55, keys_peak_dbfs=-25)
    return ra.scene(voices, gaps, noise, speech_rms_dbfs=-26)


@pytest.mark.timeout(120)
async def test_spoken_requests_reach_the_server_whole_one_turn_each(requests: ra.Scene) -> None:
    async with RealtimeSimulator() as simulator, running_ava(simulator) as (_engine, voices):
        session = simulator.sessions[-1]
        async with pulse.feed_mic(requests.pcm):
            await simulator.wait_for(lambda: session.replies_sent + session.replies_cancelled
                                     >= len(requests.utterances), timeout=requests.seconds + 15)
            await pulse.wait_until(lambda: len(voices[-1].blocks) * 40 > requests.seconds * 1000 + 1500,
                                   timeout=requests.seconds + 10, what="the whole scene heard")
    stream = voices[-1].stream
    pieces = appended([session])
    sent, lag = sent_mask(stream, pieces), lag_of(stream, requests)
    results = delivered(requests, sent, lag, stream)
    summary = "; ".join(f"{r.share:.1%} sent, {r.clipped_ms} ms clipped, {r.lead_ms} ms before, {r.trail_ms} ms "
                        "after" for r in results)
    print(summary)
    assert all(r.share >= 0.995 and r.clipped_ms == 0 for r in results), summary
    assert all(r.lead_ms >= 300 for r in results), "less than the server's prefix_padding_ms before a request"
    starts, ends = server_turns(simulator, pieces, sent)
    said = [((first * ra.FRAME + lag) / ra.RATE, (end * ra.FRAME + lag) / ra.RATE)
            for first, end in requests.utterances]  # in the stream, seconds
    heard = ", ".join(f"{(start - lag) / ra.RATE:.2f}" for start in starts)
    spoken = ", ".join(f"{first / 100:.2f}-{end / 100:.2f}" for first, end in requests.utterances)
    print(f"server turns started at {heard} s; requests spoken at {spoken} s")
    # The gate's hang-over lets the server's VAD hear each request end (then the server ends the turn, and the gate
    # sends nothing more of the hang-over): a turn ended, after the request's last words.
    ended = [any(began <= end / ra.RATE <= finished + 0.2 for end in ends) for began, finished in said]
    assert all(ended), f"the server's VAD could not see a request end: {ended}"
    assert session.speech_started == len(requests.utterances), \
        f"one server turn per request: turns started at {heard} s into the scene; requests spoken at {spoken} s"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("room", ["silent", "fan and keyboard"])
async def test_a_minute_without_speech_sends_almost_nothing(room: str) -> None:
    rng = np.random.default_rng(22)
    if room == "silent":
        minute = ra.shaped_noise(60.0, None, rng) * ra.dbfs(-70)  # a microphone's own hiss
    else:
        minute = ra.room_noise(60.0, rng, fan_dbfs=-45, keys_peak_dbfs=-15)
    async with RealtimeSimulator(record_audio=False) as simulator, running_ava(simulator) as (engine, voices):
        session = simulator.sessions[-1]
        started = len(voices[-1].blocks)
        async with pulse.feed_mic(ra.to_pcm(minute)):
            await pulse.wait_until(lambda: (len(voices[-1].blocks) - started) * 40 >= 60_000, timeout=90,
                                   what="a minute heard")
        sent_ms = session.received_audio_ms
        print(f"{room}: {sent_ms:.0f} ms of a minute sent, {session.speech_started} turns started")
        assert session.speech_started == 0 and engine.snapshot.sent_today.openings <= 1
        # The goal in noise, 5 MB an hour, is 1.7 s of audio a minute.
        assert sent_ms <= (0 if room == "silent" else 1500), f"{sent_ms:.0f} ms of a minute without speech sent"


@pytest.mark.timeout(60)
async def test_with_the_gate_off_the_microphone_streams_as_before() -> None:
    async with RealtimeSimulator(record_audio=False) as simulator, \
            running_ava(simulator, voice_gate=False) as (engine, _voices):
        session = simulator.sessions[-1]
        began, heard = time.monotonic(), session.received_audio_ms
        await simulator.wait_for(lambda: session.received_audio_ms - heard >= 3000, timeout=10)
        elapsed_ms = (time.monotonic() - began) * 1000
        assert session.received_audio_ms - heard >= 0.8 * elapsed_ms
        assert engine.snapshot.sending and engine.snapshot.voice_gate == "off (streaming continuously)"


async def wait_quiet(simulator: RealtimeSimulator, engine: AvaEngine, hold: float = 1.5) -> None:
    """Until nobody has spoken or sent anything for `hold` seconds: the user's turn answered, AVA silent."""
    session = simulator.sessions[-1]

    def now() -> tuple[int, int, int, bool]:
        busy = not simulator.idle or engine.snapshot.state.speaking or engine.snapshot.sending  # type: ignore[union-attr]
        return session.speech_started, session.replies_sent, len(session.truncates), busy

    last, since = now(), time.monotonic()

    def quiet() -> bool:
        nonlocal last, since
        state = now()
        if state != last:
            last, since = state, time.monotonic()
        return not state[3] and time.monotonic() - since >= hold

    await pulse.wait_until(quiet, timeout=30, what=f"{hold} s of quiet: {simulator.describe()}")


def new_reply_playing(simulator: RealtimeSimulator, known: set[str]) -> bool:
    """A reply item not in `known` has streamed more than half a second of audio."""
    return any(item not in known and ms > 500 for session in simulator.open_sessions
               for item, ms in session.assistant_audio_ms.items())


@pytest.mark.timeout(180)
async def test_talking_over_ava_on_speakers_interrupts_it_and_its_own_voice_does_not(espeak: None) -> None:
    """What the user notices: AVA stops talking when talked over (the server heard speech, the client cut its
    playback and told the server what was heard), and never because of its own voice."""
    await talk_over_ava(replies=3, barge_ins=5)


@pytest.mark.timeout(180)
async def test_when_echo_cancellation_lets_avas_voice_through_it_still_does_not_interrupt_itself(
        espeak: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Echo cancellation removing nothing at all: the voice gate knows AVA's own voice by what the speaker played,
    so AVA goes on talking; a user talking over it still cuts it off."""
    monkeypatch.setattr(echo, "_new_apm", LeakyCanceller)
    await talk_over_ava(replies=3, barge_ins=3)


async def talk_over_ava(*, replies: int, barge_ins: int) -> None:
    """AVA on speakers with its voice looped back into the microphone: `replies` it must not cut itself, then
    `barge_ins` replies the user's "Stop, wait a moment." must cut, one server turn each."""
    stop = ra.scene([ra.speak("Stop, wait a moment.", "en-us", 170)], [0.1, 0.3], None, speech_rms_dbfs=-28)
    async with RealtimeSimulator(record_audio=False) as simulator, \
            running_ava(simulator, audio_mode="speakers") as (engine, _voices):
        session = simulator.sessions[-1]
        with pulse.echo_path():
            for attempt in range(replies):
                await wait_quiet(simulator, engine)
                started = session.speech_started
                assert simulator.request_reply(2.0)
                await wait_quiet(simulator, engine)
                assert session.speech_started == started, f"AVA took its own voice for the user ({attempt + 1})"
            for attempt in range(barge_ins):
                await wait_quiet(simulator, engine)
                started, cuts = session.speech_started, len(session.truncates)
                known = {item for s in simulator.open_sessions for item in s.assistant_audio_ms}
                assert simulator.request_reply(4.0)
                await pulse.wait_until(lambda k=known: new_reply_playing(simulator, k), timeout=10,
                                       what="AVA speaking")
                async with pulse.feed_mic(stop.pcm):
                    await pulse.wait_until(lambda c=cuts: len(session.truncates) > c, timeout=10,
                                           what=f"AVA cut off by the user ({attempt + 1})")
                assert session.speech_started == started + 1
