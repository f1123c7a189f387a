"""The voice gate in a conversation, on the simulator with device-free audio and real speech (espeak-ng):
sentences reach the server whole, one turn each; silence and mute send nothing; the gate off streams as
before; the devices are told when the conversation is idle; the engine shows what is sent."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import numpy as np
import pytest
import room_audio as ra
from conversation_rig import appended_audio, conversation
from waits import wait_until

from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.engine import AvaEngine
from ava_tray.history import ReconnectHistory
from ava_tray.session import GateOptions, RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.simulator.voice import SpeechStarted, TurnDetector
from ava_tray.status import describe
from ava_tray.supervisor import Connected

NO_ROLLOVER = RolloverPolicy(enabled=False)
SPEED = 3.0
"""The device-free audio, and the simulator's replies with it, run three times faster than real time: what is
asserted is the audio, not the clock."""


def fast_simulator(*, record_audio: bool = True) -> RealtimeSimulator:
    """The simulator with its replies streamed in step with the faster devices."""
    server = RealtimeSimulator(record_audio=record_audio)
    server.reply_speed *= SPEED
    return server


BYTES_PER_MS = 48


def one_turn_for_the_server(voice: ra.Samples) -> bool:
    """The simulator's VAD, fed directly (no gate), takes this request for one turn (a long pause at a comma
    would make two: that is the server's doing, not the gate's)."""
    alone = ra.scene([voice], [0.5, 1.5], None, speech_rms_dbfs=-26)
    return sum(isinstance(event, SpeechStarted) for event in TurnDetector(500.0, 500).feed(alone.pcm)) == 1


@pytest.fixture(scope="module")
def requests() -> ra.Scene:
    """Three requests in different voices and speeds, with pauses of 1.8 s, over a quiet room."""
    reason = ra.espeak_missing_reason()
    if reason:
        pytest.skip(reason)
    spoken = (ra.speak(text, voice, speed) for text, voice, speed in
              zip(ra.SENTENCES[1:], itertools.cycle(ra.VOICES), itertools.cycle(ra.SPEEDS), strict=False))
    voices = list(itertools.islice(filter(one_turn_for_the_server, spoken), 3))
    floor = ra.shaped_noise(20.0, None, np.random.default_rng(11)) * ra.dbfs(-70)
    return ra.scene(voices, [0.5, 1.8, 1.8, 1.2], floor, speech_rms_dbfs=-26)


def speech_ms(scene: ra.Scene, span: tuple[int, int]) -> int:
    return (span[1] - span[0]) * 10


async def test_spoken_requests_reach_the_server_whole_one_turn_each_and_the_pauses_stay_here(
        requests: ra.Scene) -> None:
    async with fast_simulator() as simulator, conversation(simulator, rollover=NO_ROLLOVER, speed=SPEED) as talk:
        session = simulator.sessions[0]
        talk.voice.say(requests.pcm)
        await wait_until(lambda: not talk.voice.saying, timeout=requests.seconds + 5, what="the requests said")
        await simulator.wait_for(lambda: session.replies_sent == len(requests.utterances), timeout=10)
        sent = appended_audio(session)
    assert session.speech_started == len(requests.utterances), "one server turn per request"
    # Everything the server got is the microphone's audio, in order; every request's speech is in it.
    captured = b"".join(talk.voice.captured)
    position = 0
    for first, end in requests.utterances:
        voice = requests.pcm[first * ra.FRAME * 2 : end * ra.FRAME * 2]
        found = sent.find(voice[:4800], position)
        assert found >= 0, "a request's first 100 ms did not reach the server"
        assert sent[found : found + len(voice)] == voice, "a request did not reach the server whole"
        position = found + len(voice)
    assert captured.find(sent[:4800]) >= 0
    spoken_ms = sum(speech_ms(requests, span) for span in requests.utterances)
    gate_ms = len(requests.utterances) * (500 + 700)  # pre-roll and hang-over around each request
    assert len(sent) <= (spoken_ms + gate_ms + 200) * BYTES_PER_MS, "the pauses between requests were sent"


async def test_a_quiet_room_sends_nothing_and_the_devices_idle() -> None:
    uplink: list[tuple[bool, int]] = []
    async with fast_simulator() as simulator, conversation(simulator, rollover=NO_ROLLOVER, speed=SPEED) as talk:
        talk.session.on_uplink = lambda sending, sent: uplink.append((sending, sent))
        await wait_until(lambda: len(talk.voice.captured) >= 100, timeout=10, what="two seconds of room tone")
        assert simulator.sessions[0].received_audio_ms == 0
        assert not talk.session.sending and uplink == []
        assert talk.voice.active is False, "the devices were not told the conversation is idle"


async def test_the_devices_are_active_while_the_user_speaks_and_while_ava_answers(requests: ra.Scene) -> None:
    async with fast_simulator() as simulator, conversation(simulator, rollover=NO_ROLLOVER, speed=SPEED) as talk:
        end = requests.utterances[0][1]
        talk.voice.say(requests.pcm[: (end + 10) * ra.FRAME * 2])
        await wait_until(lambda: talk.session.sending, timeout=5, what="the gate to open")
        assert talk.voice.active
        await wait_until(lambda: talk.voice.played, timeout=10, what="AVA's answer")
        assert talk.voice.active, "the speaker was let sleep while AVA answered"
        await wait_until(lambda: not talk.voice.is_playing and not talk.voice.active, timeout=15,
                         what="the conversation to go idle after the answer")
        assert not talk.session.sending


async def test_muted_nothing_is_sent_even_while_someone_speaks(requests: ra.Scene) -> None:
    async with fast_simulator() as simulator, conversation(simulator, rollover=NO_ROLLOVER, speed=SPEED) as talk:
        talk.session.muted = True
        talk.voice.say(requests.pcm[: requests.utterances[0][1] * ra.FRAME * 2])
        await wait_until(lambda: not talk.voice.saying, timeout=10, what="the request said")
        assert simulator.sessions[0].received_audio_ms == 0 and not talk.session.sending


async def test_push_to_talk_sends_only_while_the_key_is_held_with_the_first_syllable(requests: ra.Scene) -> None:
    """Push-to-talk through the gate: speech with the key up sends nothing; the key pressed as the user starts to
    speak sends the request whole (the pre-roll keeps the first syllable), and the hang-over after the key is let go
    lets the server end the turn."""
    first, end = requests.utterances[0]
    request = requests.pcm[: (end + 5) * ra.FRAME * 2]
    async with fast_simulator() as simulator, conversation(simulator, rollover=NO_ROLLOVER, speed=SPEED) as talk:
        session = simulator.sessions[0]
        talk.session.push_to_talk = True
        talk.voice.say(request)
        await wait_until(lambda: not talk.voice.saying, timeout=10, what="a request with the key up")
        assert session.received_audio_ms == 0 and not talk.session.sending
        await wait_until(lambda: len(talk.voice.captured) > 60, timeout=5, what="more quiet")
        said_at = len(talk.voice.captured)
        talk.voice.say(request)
        # The key goes down 200 ms after the voice began (people speak as they press).
        await wait_until(lambda: len(talk.voice.captured) >= said_at + first // 2 + 10, timeout=5,
                         what="the voice under way")
        talk.session.key_held = True
        await wait_until(lambda: not talk.voice.saying, timeout=10, what="the request said")
        talk.session.key_held = False
        await simulator.wait_for(lambda: session.replies_sent == 1, timeout=10)
        sent = appended_audio(session)
    voice = requests.pcm[first * ra.FRAME * 2 : end * ra.FRAME * 2]
    assert voice in sent, "the request did not reach the server whole (its first syllable before the key?)"
    assert session.speech_started == 1


async def test_with_the_gate_off_the_microphone_streams_as_before() -> None:
    async with fast_simulator() as simulator, \
            conversation(simulator, rollover=NO_ROLLOVER, gate=GateOptions(enabled=False), speed=SPEED) as talk:
        session = simulator.sessions[0]
        await wait_until(lambda: len(talk.voice.captured) >= 50, timeout=10, what="a second of room tone")
        await simulator.wait_for(lambda: session.received_audio_ms >= 900, timeout=5)
        assert talk.session.sending and talk.session.gate_state == "off (streaming continuously)"
        assert talk.voice.active, "streaming continuously, every block counts"
        assert b"".join(talk.voice.captured).startswith(appended_audio(session))


async def test_the_engine_shows_when_audio_leaves_the_machine_and_counts_the_day(requests: ra.Scene) -> None:
    voices: list[FakeVoiceIO] = []

    def make_voice() -> FakeVoiceIO:
        voices.append(FakeVoiceIO(speed=SPEED))
        return voices[-1]

    async with fast_simulator(record_audio=False) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None, voice_io_factory=make_voice,
                           history=ReconnectHistory(None))
        sending_seen: list[bool] = []
        engine.subscribe(lambda snapshot: sending_seen.append(snapshot.sending))
        task = asyncio.create_task(engine.run())
        try:
            await wait_until(lambda: isinstance(engine.snapshot.state, Connected) and voices, timeout=10,
                             what="AVA connected")
            await wait_until(lambda: engine.snapshot.voice_gate == "on", timeout=5, what="the gate reported")
            assert not engine.snapshot.sending and engine.snapshot.sent_today.bytes == 0
            idle = describe(engine.snapshot, engine.clock.monotonic())
            assert idle.icon_name == "connected" and "hearing you" not in idle.tooltip
            first, end = requests.utterances[0]
            voices[0].say(requests.pcm[: (end + 10) * ra.FRAME * 2])
            await wait_until(lambda: engine.snapshot.sending, timeout=5, what="audio leaving the machine")
            hearing = describe(engine.snapshot, engine.clock.monotonic())
            assert hearing.icon_name == "hearing" and "hearing you" in hearing.tooltip
            await wait_until(lambda: not engine.snapshot.sending, timeout=10, what="the gate to close")
            today = engine.snapshot.sent_today
            assert today.openings == 1
            assert (end - first) * 10 * BYTES_PER_MS <= today.bytes <= ((end - first) * 10 + 1400) * BYTES_PER_MS
            assert sending_seen.count(True) >= 1
        finally:
            engine.stop()
            await asyncio.wait_for(task, 10)


async def test_a_request_followed_by_a_noise_the_server_takes_for_speech_is_still_answered(
        requests: ra.Scene) -> None:
    """A fan switched on as the request ends: loud enough for the server's VAD to call it sound, not speech to the
    gate. When the gate closes the server still hears the user; the silence it waits for is sent, so the turn ends
    and AVA answers (the real API would otherwise wait for the user's next words)."""
    end = requests.utterances[0][1]
    fan = ra.fan_noise(5.0, -30, np.random.default_rng(3))
    assert ra.rms(fan) > 500, "the fan must sound like speech to the simulator's energy VAD"
    pcm = requests.pcm[: end * ra.FRAME * 2] + ra.to_pcm(fan)
    async with fast_simulator() as simulator, conversation(simulator, rollover=NO_ROLLOVER, speed=SPEED) as talk:
        session = simulator.sessions[0]
        talk.voice.say(pcm)
        await wait_until(lambda: not talk.voice.saying, timeout=15, what="the request and the fan")
        await wait_until(lambda: not talk.session.sending, timeout=5, what="the gate to close in the fan")
        await simulator.wait_for(lambda: session.replies_sent == 1, timeout=5)
    assert session.speech_started == 1
