"""An idle conversation costs the devices little and loses nothing: `SoundDeviceVoiceIO` on a stand-in PortAudio.

Idle, microphone blocks wake the event loop a few at a time and the speaker's stream sleeps; the moment the
conversation turns active (or AVA has something to say) every block comes at once and the speaker runs again,
its first block carrying the first of the reply.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
from portaudio_stand_in import StandInPortAudio
from waits import wait_until

from ava_tray.audio import AudioDeviceError
from ava_tray.audio.devices import IDLE_BATCH, MIC_BLOCK_MS, SPEAKER_BLOCK_MS, SoundDeviceVoiceIO

MIC_BLOCK = 24 * MIC_BLOCK_MS


def numbered_block(n: int) -> bytes:
    return np.full(MIC_BLOCK, n, dtype="<i2").tobytes()


def capture_on_a_thread(portaudio: StandInPortAudio, numbers: range) -> None:
    """The microphone delivers blocks numbered `numbers`, from a thread as PortAudio's would."""
    mic = portaudio.streams[0]
    worker = threading.Thread(target=lambda: [mic.capture(numbered_block(n)) for n in numbers])
    worker.start()
    worker.join()


async def opened(portaudio: StandInPortAudio, heard: list[int], failures: list[AudioDeviceError],
                 sleep_after: float = 0.05, audio_mode: str = "headphones") -> SoundDeviceVoiceIO:
    voice = SoundDeviceVoiceIO(on_failure=failures.append, audio_mode=audio_mode)
    voice.speaker_sleep_s = sleep_after
    portaudio.may_start.set()
    await voice.open(lambda pcm, captured_at: heard.append(int(np.frombuffer(pcm, dtype="<i2")[0])))
    return voice


async def test_idle_microphone_blocks_come_a_few_at_a_time_and_every_one_arrives(portaudio: StandInPortAudio) -> None:
    heard: list[int] = []
    voice = await opened(portaudio, heard, [])
    voice.set_active(False)
    capture_on_a_thread(portaudio, range(IDLE_BATCH - 1))
    await asyncio.sleep(0)  # a loop turn: a wake-up would deliver now
    assert heard == [], "an idle microphone woke the loop for a single block"
    capture_on_a_thread(portaudio, range(IDLE_BATCH - 1, IDLE_BATCH))
    await wait_until(lambda: len(heard) == IDLE_BATCH, what="the batch")
    capture_on_a_thread(portaudio, range(IDLE_BATCH, IDLE_BATCH + 1))
    voice.set_active(True)  # someone speaks: what waits goes at once, and so does every block from now on
    assert heard == list(range(IDLE_BATCH + 1))
    capture_on_a_thread(portaudio, range(IDLE_BATCH + 1, IDLE_BATCH + 2))
    await wait_until(lambda: len(heard) == IDLE_BATCH + 2, what="the next block on its own")
    await voice.close()


async def test_an_idle_speaker_sleeps_and_wakes_with_the_first_of_the_reply(portaudio: StandInPortAudio) -> None:
    failures: list[AudioDeviceError] = []
    voice = await opened(portaudio, [], failures)
    speaker = portaudio.streams[1]
    voice.set_active(False)
    await wait_until(lambda: not speaker.active, what="the idle speaker to sleep")
    assert voice.speaker_sleeps == 1 and not voice.speaker_awake
    assert voice.failure is None and failures == [], "a sleeping speaker is no failed device"
    reply = np.arange(1, 24 * SPEAKER_BLOCK_MS + 1, dtype="<i2").tobytes()
    voice.play("item_1", reply)
    await wait_until(lambda: speaker.active, what="the speaker to wake for the reply")
    assert speaker.play_block() == reply, "the reply's first block was not the first the speaker played"
    assert voice.failure is None and failures == []
    await voice.close()


async def test_the_speaker_wakes_as_soon_as_someone_speaks(portaudio: StandInPortAudio) -> None:
    voice = await opened(portaudio, [], [])
    speaker = portaudio.streams[1]
    voice.set_active(False)
    await wait_until(lambda: not speaker.active, what="the idle speaker to sleep")
    voice.set_active(True)  # the user started speaking: a reply will follow
    await wait_until(lambda: speaker.active, what="the speaker to wake before the reply")
    assert speaker.starts == 2
    await voice.close()


async def test_an_active_conversation_keeps_the_speaker_running(portaudio: StandInPortAudio) -> None:
    voice = await opened(portaudio, [], [], sleep_after=0.01)
    speaker = portaudio.streams[1]
    voice.set_active(False)
    voice.set_active(True)
    await asyncio.sleep(0.1)  # ten times the sleep delay: nothing may happen
    assert speaker.active and voice.speaker_sleeps == 0
    await voice.close()


async def test_with_echo_cancellation_on_the_speaker_never_sleeps(portaudio: StandInPortAudio) -> None:
    """A restarted stream would throw the canceller's timing off (see devices.py): AVA would hear itself."""
    voice = await opened(portaudio, [], [], sleep_after=0.01, audio_mode="speakers")
    assert voice.echo is not None and voice.echo.processing == "aec"
    speaker = portaudio.streams[1]
    voice.set_active(False)
    await asyncio.sleep(0.1)  # ten times the sleep delay: nothing may happen
    assert speaker.active and voice.speaker_sleeps == 0
    await voice.close()


async def test_a_speaker_that_cannot_restart_is_a_device_failure(portaudio: StandInPortAudio) -> None:
    failures: list[AudioDeviceError] = []
    voice = await opened(portaudio, [], failures)
    speaker = portaudio.streams[1]
    voice.set_active(False)
    await wait_until(lambda: not speaker.active, what="the idle speaker to sleep")

    def unplugged() -> None:
        raise portaudio.PortAudioError("Device unavailable [PaErrorCode -9985]")

    speaker.start = unplugged  # type: ignore[method-assign]
    voice.play("item_1", bytes(960))
    await wait_until(lambda: failures, what="the failure report")
    assert voice.failure is failures[0]
    assert "speaker 'default' could not be opened (Device unavailable)" in str(voice.failure)
    await voice.close()


async def test_an_idle_microphone_hands_on_a_loud_block_at_once(portaudio: StandInPortAudio) -> None:
    """A voice starting in a quiet room is judged (and sent) without waiting for its batch to fill."""
    heard: list[int] = []
    voice = await opened(portaudio, heard, [])
    voice.set_active(False)
    voice.wake_on_sound(500.0)
    capture_on_a_thread(portaudio, range(1, 2))  # a block of level 1: quieter than the wake level
    await asyncio.sleep(0)
    assert heard == [], "a quiet block woke the loop"
    capture_on_a_thread(portaudio, range(600, 601))  # level 600: louder
    await wait_until(lambda: len(heard) == 2, what="the quiet block and the loud one at once")
    assert heard == [1, 600]
    voice.wake_on_sound(None)
    capture_on_a_thread(portaudio, range(700, 701))
    await asyncio.sleep(0)
    assert heard == [1, 600], "with no wake level a loud block waited for nothing"
    await voice.close()
