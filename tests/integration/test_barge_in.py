"""Barge-in on the simulator with device-free audio: the user speaking over AVA silences it at once, the
server is told how much of the reply was heard, and nothing more of that reply is played."""

from __future__ import annotations

import pytest
import room_audio as ra
from conversation_rig import conversation
from waits import wait_until

from ava_tray.audio import PlaybackCut
from ava_tray.session import RolloverPolicy
from ava_tray.simulator import RealtimeSimulator


def user_says(text: str) -> bytes:
    """Real speech (espeak-ng): the voice gate's detector hears a person, not a test tone."""
    reason = ra.espeak_missing_reason()
    if reason:
        pytest.skip(reason)
    return ra.scene([ra.speak(text, "en-us", 170)], [0.0, 0.2], None, speech_rms_dbfs=-24).pcm


async def test_speaking_over_ava_cuts_its_reply_and_tells_the_server_what_was_heard() -> None:
    async with RealtimeSimulator() as simulator, \
            conversation(simulator, rollover=RolloverPolicy(enabled=False)) as talk:
        session = simulator.sessions[0]
        assert simulator.request_reply(4.0)
        await wait_until(lambda: any(talk.voice.played_ms(item) >= 500 for item in talk.voice.played),
                         what="AVA to have spoken for half a second")
        (item_id,) = talk.voice.played
        assert talk.told.speaking == [True]

        talk.voice.say(user_says("Stop, wait a moment."))
        await simulator.wait_for(lambda: session.truncates and session.replies_cancelled == 1, timeout=5)
        (cut,) = talk.voice.cuts
        assert cut == PlaybackCut(item_id, cut.played_ms) and 500 <= cut.played_ms < 4000
        assert session.truncates[0]["item_id"] == item_id
        assert session.truncates[0]["audio_end_ms"] == cut.played_ms, "the server knows what the user heard"
        assert talk.told.speaking == [True, False]

        # AVA answers the user's turn; of the cut reply nothing more was played meanwhile.
        await simulator.wait_for(lambda: session.replies_sent == 1, timeout=5)
        await wait_until(lambda: len(talk.voice.played) == 2, what="the answer to be played")
        assert talk.voice.played_ms(item_id) == cut.played_ms
        assert talk.told.speaking[:3] == [True, False, True]
        assert not session.errors_sent
