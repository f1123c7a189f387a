"""The user's voice while AVA speaks, as the microphone hands it on: real devices, PulseAudio null sinks.

Shared by the echo end-to-end tests and the benchmark (section 10).
"""

from __future__ import annotations

import contextlib
import time

import pulse
import room_audio as ra
from waits import wait_until

from ava_tray.audio.devices import SoundDeviceVoiceIO
from ava_tray.audio.echo import EchoMemory
from ava_tray.simulator import synthetic_voice


def user_voice(level_dbfs: float) -> bytes:
    """A user who talks over AVA (espeak-ng), at `level_dbfs` RMS."""
    voice = ra.trimmed(ra.speak("Stop, stop. I want to ask you something else entirely.", "en-us", 160))
    return ra.to_pcm(voice * ra.dbfs(level_dbfs) / ra.rms(voice))


async def level_over_reply(mode: str, user: bytes, *, echo: bool, replies_before: int,
                           memory: EchoMemory | None = None) -> float:
    """RMS of what the microphone hands on while the user says `user` 1 s into AVA's reply, after
    `replies_before` earlier replies (3 s each) on the same open devices; `memory` as the app passes it."""
    voice = SoundDeviceVoiceIO(audio_mode=mode, echo_memory=memory)
    heard: list[tuple[float, bytes]] = []
    await voice.open(lambda pcm, at: heard.append((at, pcm)))
    speech_s = len(user) / 2 / ra.RATE
    try:
        await wait_until(lambda: voice.captured_blocks > 10, timeout=10, what="the microphone running")
        with pulse.echo_path() if echo else contextlib.nullcontext():
            for index in range(replies_before):
                voice.play(f"before{index}", synthetic_voice(3.0))
                await wait_until(lambda: not voice.is_playing, timeout=10, what="an earlier reply played")
            started = time.monotonic()
            voice.play("reply", synthetic_voice(speech_s + 2.0))
            await wait_until(lambda: time.monotonic() > started + 1.0, timeout=5)
            fed = time.monotonic()
            async with pulse.feed_mic(user):
                await wait_until(lambda: time.monotonic() > fed + speech_s + 0.4, timeout=speech_s + 5)
            await wait_until(lambda: not voice.is_playing, timeout=15, what="the reply played")
    finally:
        await voice.close()
    during = b"".join(pcm for at, pcm in heard if fed + 0.15 <= at <= fed + 0.15 + speech_s)
    return pulse.rms(during)
