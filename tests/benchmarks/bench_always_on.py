"""Always on, nearly free (issue 15): the voice gate, the idle and double talk, measured on real audio.

Run by bench.py (through `bash scripts/bench.sh`), each section side by side in one run:
  5. CPU seconds a minute while connected and silent, headphones and speakers, against the bare two streams;
  7. uplink per hour while silent and in non-speech room noise (a fan and typing), gate on against gate off;
  8. speech delivered: labelled espeak-ng requests (several voices and speeds, quiet and typing between): the share
     of speech frames that reach the server, onset clipping, the pre-roll, server turns, and the end-of-turn delay
     the gate adds;
  9. on the real echo path (speakers): AVA's own voice starting a turn (self-interruptions) and barge-in, also with
     echo cancellation made to let AVA's voice through (a fault put in), with and without the gate's own-voice check;
 10. the user's voice while AVA speaks with echo cancellation on: attenuation with no echo path (first reply and a
     later one) and level against the simulator's VAD threshold on the echo path.
Figures and ratios only: nothing here asserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import pulse
import room_audio as ra
from double_talk import level_over_reply, user_voice
from gate_rig import LeakyCanceller, TeeVoiceIO, appended, delivered, lag_of, sent_mask, utterance_ends
from waits import wait_until

from ava_tray.audio import echo, voice_gate
from ava_tray.audio.devices import SoundDeviceVoiceIO
from ava_tray.audio.echo import EchoMemory
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.realtime import events
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.simulator.voice import SpeechStarted, SpeechStopped, TurnDetector
from ava_tray.supervisor import Connected

BYTES_PER_MS = 48
MB_PER_HOUR_PER_MS_A_SECOND = BYTES_PER_MS * 3600 / 1e6
"""MB an hour for each millisecond of audio sent per second."""
SIMULATOR_VAD_RMS = 500.0


def header(title: str) -> None:
    print(f"\n== {title}", flush=True)


@contextlib.asynccontextmanager
async def running_ava(simulator: RealtimeSimulator, *, audio_mode: str = "headphones",
                      voice_gate: bool = True) -> AsyncIterator[tuple[AvaEngine, TeeVoiceIO]]:
    """AVA on the real audio devices against `simulator`, the microphone's stream recorded."""
    settings = replace(Settings(), realtime_url=simulator.url, audio_mode=audio_mode, voice_gate=voice_gate)
    voices: list[TeeVoiceIO] = []

    def make_voice() -> TeeVoiceIO:
        voices.append(TeeVoiceIO(SoundDeviceVoiceIO(audio_mode=audio_mode)))
        return voices[-1]

    engine = AvaEngine(settings, None, history=ReconnectHistory(None), voice_io_factory=make_voice,
                       launch=LaunchOptions(rollover=RolloverPolicy(enabled=False)))
    task = asyncio.create_task(engine.run())
    try:
        await wait_until(lambda: isinstance(engine.supervisor.state, Connected) and voices, timeout=15,
                         what="AVA connected")
        await wait_until(lambda: len(voices[-1].blocks) > 5, timeout=10, what="the microphone running")
        yield engine, voices[-1]
    finally:
        engine.stop()
        await asyncio.wait_for(task, 10)


# -- 7. uplink ---------------------------------------------------------------------------------------------------


def room(kind: str, seconds: float) -> bytes:
    rng = np.random.default_rng(71)
    if kind == "silent":
        return ra.to_pcm(ra.shaped_noise(seconds, None, rng) * ra.dbfs(-70))  # a microphone's own hiss
    return ra.to_pcm(ra.room_noise(seconds, rng, fan_dbfs=-45, keys_peak_dbfs=-15))


def wire_bytes(ms: float) -> int:
    """What an append of `ms` of audio is on the WebSocket: the event's JSON (base64 audio) in a masked frame."""
    pcm = round(ms * BYTES_PER_MS)
    return len(events.encode(events.input_audio_append(bytes(pcm)))) + 8


async def uplink(kind: str, voice_gate: bool, seconds: float) -> tuple[float, float, int]:
    """(MB an hour of audio, MB an hour on the wire, server turns started) over `seconds` of a room with nobody
    speaking."""
    async with RealtimeSimulator(record_audio=False) as simulator, \
            running_ava(simulator, voice_gate=voice_gate) as (_engine, voice):
        session = simulator.sessions[-1]
        async with pulse.feed_mic(room(kind, seconds + 5)):
            await wait_until(lambda: len(voice.blocks) > 25 + 3, timeout=10, what="the room in the microphone")
            sent_before, turns_before, blocks = session.received_audio_ms, session.speech_started, len(voice.blocks)
            appends_before = len(session.audio_arrivals)
            await wait_until(lambda: (len(voice.blocks) - blocks) * 40 >= seconds * 1000, timeout=seconds + 20,
                             what=f"{seconds:.0f} s of the room")
        sent_ms = session.received_audio_ms - sent_before
        wire = sum(wire_bytes(ms) for _at, ms in session.audio_arrivals[appends_before:])
        return (sent_ms / seconds * MB_PER_HOUR_PER_MS_A_SECOND, wire * 3600 / seconds / 1e6,
                session.speech_started - turns_before)


async def bench_uplink(seconds: float) -> None:
    header(f"7. Uplink while nobody speaks ({seconds:.0f} s each, gate off {seconds / 4:.0f} s: it streams anyway)")
    print(f"{'room':<28}{'gate off':>14}{'gate on':>14}{'less':>10}{'   server turns off/on'}")
    for kind, label in (("silent", "silent (-70 dBFS hiss)"), ("noise", "fan -45 dBFS + typing -15")):
        off, off_wire, turns_off = await uplink(kind, False, seconds / 4)
        on, on_wire, turns_on = await uplink(kind, True, seconds)
        ratio = f"{off / on:.0f}x" if on > 0 else "all"
        print(f"{label:<28}{off:>9.1f} MB/h{on:>9.3f} MB/h{ratio:>10}   {turns_off}/{turns_on}", flush=True)
        print(f"{'  on the wire (JSON, base64)':<28}{off_wire:>9.1f} MB/h{on_wire:>9.3f} MB/h", flush=True)
    print("audio is PCM16 at 24 kHz; the wire adds base64 and the event's JSON (TLS not counted). "
          "goals: silent <= 1 MB/h, noise <= 5 MB/h")


# -- 5. CPU while connected and silent --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_process(argv: list[str], ready: Callable[[str], bool], seconds: float, env: dict[str, str],
                          settle: float) -> float:
    """CPU seconds a minute of a process, `settle` seconds after `ready(output)` holds, over `seconds`."""
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    output = ""
    try:
        async with asyncio.timeout(30):
            while not ready(output):
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{argv} ended early:\n{output}")
                output += line.decode(errors="replace")
        drain = asyncio.create_task(proc.stdout.read())
        await asyncio.sleep(settle)  # the speaker's stream goes to sleep 5 s after the conversation went idle
        start = cpu_seconds(proc.pid)
        began = time.monotonic()
        await asyncio.sleep(seconds)
        used = cpu_seconds(proc.pid) - start
        drain.cancel()
        return used * 60.0 / (time.monotonic() - began)
    finally:
        proc.terminate()
        await proc.wait()


FLOOR = """
import sounddevice as sd, time
i = sd.RawInputStream(samplerate=24000, channels=1, dtype='int16', blocksize=480, callback=lambda *a: None)
o = sd.RawOutputStream(samplerate=24000, channels=1, dtype='int16', blocksize=480,
                       callback=lambda out, *a: out.__setitem__(slice(None), bytes(len(out))))
i.start(); o.start(); print('ready', flush=True)
time.sleep(3600)
"""


async def bench_cpu(seconds: float, rounds: int) -> None:
    header(f"5. CPU while connected and silent ({seconds:.0f} s each, {rounds} rounds interleaved, CPU seconds a "
           "minute; the simulator runs in the benchmark's process)")
    home = tempfile.mkdtemp(prefix="ava-bench-")
    async with RealtimeSimulator(record_audio=False) as simulator:
        env = dict(os.environ, XDG_CONFIG_HOME=f"{home}/c", XDG_DATA_HOME=f"{home}/d", XDG_STATE_HOME=f"{home}/s",
                   AVA_REALTIME_URL=simulator.url, OPENAI_API_KEY="sk-bench")
        console = [sys.executable, "-m", "ava_tray", "--console", "--no-rollover"]
        connected: Callable[[str], bool] = lambda out: "Connected to Realtime API" in out  # noqa: E731
        runs: dict[str, tuple[list[str], Callable[[str], bool]]] = {
            "audio streams only (floor)": ([sys.executable, "-c", FLOOR], lambda out: "ready" in out),
            "console AVA, headphones": ([*console, "--audio-mode", "headphones"], connected),
            "console AVA, speakers": ([*console, "--audio-mode", "speakers"], connected),
            "console AVA, speakers, gate off": ([*console, "--audio-mode", "speakers", "--no-voice-gate"], connected),
        }
        if os.environ.get("DISPLAY"):
            runs["tray AVA, speakers"] = ([sys.executable, "-m", "ava_tray", "--no-rollover", "--audio-mode",
                                           "speakers", "--log-level", "INFO"], lambda out: "-> Connected" in out)
        figures: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, (argv, ready) in runs.items():
                figures[name].append(await measure_process(argv, ready, seconds, env, settle=8.0))
    floor = statistics.median(figures["audio streams only (floor)"])
    for name, values in figures.items():
        each = ", ".join(f"{v:.3f}" for v in values)
        median = statistics.median(values)
        ratio = "" if name.startswith("audio") else f"  {median / floor:.2f}x the floor"
        print(f"{name:<34}{median:8.3f} s/min{ratio}   ({each})", flush=True)
    print("goals: <= 1.0x the floor with headphones, <= 1.2x with speakers")


# -- 8. speech delivered ----------------------------------------------------------------------------------------


def one_turn_for_the_server(voice: ra.Samples) -> bool:
    """The simulator's energy VAD takes this request, alone, for one turn at 4 dB either side of the scene's level
    (a request it splits at a comma would count against the gate for the server's doing)."""
    for level in (-32, -24):
        alone = ra.scene([voice], [0.5, 1.5], None, speech_rms_dbfs=level)
        if sum(isinstance(e, SpeechStarted) for e in TurnDetector(SIMULATOR_VAD_RMS, 500).feed(alone.pcm)) != 1:
            return False
    return True


def requests_scene(count: int) -> ra.Scene:
    """`count` requests in four voices and three speeds; a quiet room between some, a fan and typing between others."""
    spoken = (ra.speak(text, voice, speed) for text, voice, speed in
              zip(itertools.cycle(ra.SENTENCES), itertools.cycle(ra.VOICES), itertools.cycle(ra.SPEEDS)))
    voices = list(itertools.islice(filter(one_turn_for_the_server, itertools.islice(spoken, 4 * count)), count))
    gaps = [1.0] + [2.0 + 0.5 * (i % 3) for i in range(count - 1)] + [2.0]
    scene = ra.scene(voices, gaps, None, speech_rms_dbfs=-28)
    rng = np.random.default_rng(91)
    background = ra.shaped_noise(scene.seconds, None, rng) * ra.dbfs(-70)
    noise = ra.room_noise(scene.seconds, rng, fan_dbfs=-50, keys_peak_dbfs=-20)
    for index, (first, _end) in enumerate(scene.utterances):
        if index % 2:  # the gap before every other request holds a fan and typing
            previous_end = scene.utterances[index - 1][1]
            span = slice(previous_end * ra.FRAME, first * ra.FRAME)
            background[span] += noise[span]
    scene.samples = scene.samples + background[: scene.samples.size]
    return scene


def server_turn_ends(session_appends: list[bytes], arrivals: list[tuple[float, float]]) -> list[float]:
    """When the server's VAD ended each turn: the arrival time of the append that completed its silence."""
    detector = TurnDetector(SIMULATOR_VAD_RMS, 500)
    ends = []
    for pcm, (arrived, _ms) in zip(session_appends, arrivals, strict=True):
        ends += [arrived for event in detector.feed(pcm) if isinstance(event, SpeechStopped)]
    return ends


async def speech_run(scene: ra.Scene, voice_gate: bool) -> dict[str, float]:
    async with RealtimeSimulator() as simulator, running_ava(simulator, voice_gate=voice_gate) as (_engine, voice):
        session = simulator.sessions[-1]
        blocks = len(voice.blocks)
        async with pulse.feed_mic(scene.pcm):
            await wait_until(lambda: (len(voice.blocks) - blocks) * 40 > scene.seconds * 1000 + 1500,
                             timeout=scene.seconds + 20, what="the whole scene heard")
        await simulator.wait_for(lambda: simulator.idle, timeout=20)
        stream, pieces = voice.stream, appended([session])
        lag = lag_of(stream, scene)
        results = delivered(scene, sent_mask(stream, pieces), lag, stream)
        turn_ends = server_turn_ends(pieces, session.audio_arrivals)
        delays = []
        for end in utterance_ends(scene, lag, stream):
            spoken = voice.captured_at(end)
            after = [t for t in turn_ends if t > spoken]
            if after:
                delays.append((after[0] - spoken) * 1000)
        speech_frames = sum(int(scene.speech[a:b].sum()) for a, b in scene.utterances)
        sent_speech = sum(r.share * scene.speech[a:b].sum() for r, (a, b) in zip(results, scene.utterances,
                                                                                  strict=True))
        return {"share": sent_speech / speech_frames, "worst": min(r.share for r in results),
                "clipped_max": max(r.clipped_ms for r in results),
                "clipped_count": sum(r.clipped_ms > 0 for r in results),
                "lead_min": min(r.lead_ms for r in results),
                "lead_median": statistics.median(r.lead_ms for r in results),
                "trail_min": min(r.trail_ms for r in results), "turns": session.speech_started,
                "end_median": statistics.median(delays) if delays else float("nan"),
                "end_max": max(delays) if delays else float("nan"),
                "sent_s": sum(map(len, pieces)) / BYTES_PER_MS / 1000}


async def bench_speech_delivered(count: int) -> None:
    header(f"8. Speech delivered: {count} espeak-ng requests (4 voices, 140-180 words a minute, -28 dBFS), a quiet "
           "room and a fan with typing between")
    scene = requests_scene(count)
    spoken_s = sum(int(scene.speech[a:b].sum()) for a, b in scene.utterances) / 100
    alone = sum(isinstance(e, SpeechStarted) for e in TurnDetector(SIMULATOR_VAD_RMS, 500).feed(scene.pcm))
    on = await speech_run(scene, True)
    off = await speech_run(scene, False)
    print(f"speech frames delivered:   {on['share']:.2%} (worst request {on['worst']:.2%}; gate off "
          f"{off['share']:.2%})")
    print(f"onset clipping:            {on['clipped_count']} of {count} requests clipped, at most "
          f"{on['clipped_max']} ms")
    print(f"sent before the first syllable: at least {on['lead_min']} ms, median {on['lead_median']:.0f} ms "
          "(prefix_padding_ms 300)")
    print(f"sent after the last syllable:   at least {on['trail_min']} ms (silence_duration_ms 500)")
    print(f"server turns:              {on['turns']} for {count} requests (gate off {off['turns']}; the scene fed "
          f"straight to the simulator's VAD: {alone})")
    print(f"end of turn (last syllable captured -> server's VAD ends the turn): gate on median "
          f"{on['end_median']:.0f} ms, max {on['end_max']:.0f}; gate off median {off['end_median']:.0f} ms, max "
          f"{off['end_max']:.0f}; the gate adds {on['end_median'] - off['end_median']:+.0f} ms (median)")
    print(f"audio sent:                {on['sent_s']:.1f} s gate on, {off['sent_s']:.1f} s gate off, for "
          f"{spoken_s:.1f} s of speech")
    print("goals: >= 99.5 % delivered, no clipping past the pre-roll, <= 50 ms added to the end of a turn, one "
          "server turn per request", flush=True)


# -- 9. the echo path ------------------------------------------------------------------------------------------


async def wait_quiet(simulator: RealtimeSimulator, engine: AvaEngine, hold: float = 1.5) -> None:
    """Until nobody has spoken or sent anything for `hold` seconds."""
    session = simulator.sessions[-1]

    def now() -> tuple[int, int, int, bool]:
        state = engine.snapshot.state
        busy = not simulator.idle or (isinstance(state, Connected) and state.speaking) or engine.snapshot.sending
        return session.speech_started, session.replies_sent, len(session.truncates), busy

    last, since = now(), time.monotonic()

    def quiet() -> bool:
        nonlocal last, since
        state = now()
        if state != last:
            last, since = state, time.monotonic()
        return not state[3] and time.monotonic() - since >= hold

    await wait_until(quiet, timeout=30, what=f"{hold} s of quiet")


async def bench_echo_path(replies: int) -> None:
    header(f"9. On the echo path (speakers, PulseAudio loopback 60 ms at {pulse.LOOPBACK_VOLUME}), voice gate on")
    own, cut, latencies = await echo_path_run(replies, replies)
    print(f"self-interruptions (AVA's own voice started a turn): {own}/{replies}  (goal 0/{replies})")
    timing = f", the user's first word -> AVA cut: median {statistics.median(latencies):.0f} ms" if latencies else ""
    print(f"barge-in (\"Stop, wait a moment.\" over AVA cut it):   {cut}/{replies}  (goal {replies}/{replies}){timing}",
          flush=True)
    # The fault the gate's own-voice check is for: echo cancellation letting AVA's voice through (an echo path that
    # jumped). Put in on purpose, with and without the check, side by side.
    with mock.patch.object(echo, "_new_apm", LeakyCanceller):
        own, cut, latencies = await echo_path_run(replies, replies)
        with mock.patch.object(voice_gate, "SAME_VOICE", 2.0):  # a resemblance is at most 1: the check never says AVA
            unchecked, _, _ = await echo_path_run(replies, 0)
    timing = f", median {statistics.median(latencies):.0f} ms" if latencies else ""
    print(f"echo cancellation removing nothing (a fault put in): self-interruptions {own}/{replies}, barge-in "
          f"{cut}/{replies}{timing}; without the own-voice check: self-interruptions {unchecked}/{replies}", flush=True)


async def echo_path_run(replies: int, barge_ins: int) -> tuple[int, int, list[float]]:
    """`replies` replies on the echo path, then `barge_ins` replies talked over; return (AVA's own voice starting a
    turn, replies the user cut, ms from the user's first word to the cut)."""
    stop = ra.scene([ra.speak("Stop, wait a moment.", "en-us", 170)], [0.1, 0.3], None, speech_rms_dbfs=-28)
    async with RealtimeSimulator(record_audio=False) as simulator, \
            running_ava(simulator, audio_mode="speakers") as (engine, _voice):
        session = simulator.sessions[-1]
        with pulse.echo_path():
            own = 0
            for _ in range(replies):
                await wait_quiet(simulator, engine)
                started = session.speech_started
                simulator.request_reply(2.0)
                await wait_quiet(simulator, engine)
                own += session.speech_started > started
            cut, latencies = 0, []
            for _ in range(barge_ins):
                await wait_quiet(simulator, engine)
                cuts = len(session.truncates)
                known = {item for s in simulator.open_sessions for item in s.assistant_audio_ms}
                simulator.request_reply(4.0)
                await wait_until(lambda k=known: any(i not in k and ms > 500 for s in simulator.open_sessions
                                                     for i, ms in s.assistant_audio_ms.items()), timeout=10)
                began = time.monotonic()
                async with pulse.feed_mic(stop.pcm):
                    with contextlib.suppress(AssertionError):
                        await wait_until(lambda c=cuts: len(session.truncates) > c, timeout=8)
                if len(session.truncates) > cuts:
                    cut += 1
                    latencies.append((time.monotonic() - began) * 1000)
    return own, cut, latencies


# -- 10. the user's voice while AVA speaks ----------------------------------------------------------------------


async def bench_double_talk() -> None:
    header("10. The user's voice while AVA speaks, echo cancellation on (espeak-ng, 1 s into AVA's reply)")
    for level in (-30, -42):
        user = user_voice(level)
        raw = await level_over_reply("headphones", user, echo=False, replies_before=0)
        first = await level_over_reply("speakers", user, echo=False, replies_before=0)
        later = await level_over_reply("speakers", user, echo=False, replies_before=3)
        memory = EchoMemory()
        await level_over_reply("speakers", user, echo=False, replies_before=3, memory=memory)
        reconnected = await level_over_reply("speakers", user, echo=False, replies_before=0, memory=memory)
        echoed = await level_over_reply("speakers", user, echo=True, replies_before=3)
        print(f"user at {level} dBFS: no echo path: raw RMS {raw:.0f}; AVA's first reply since start "
              f"{20 * np.log10(first / raw):+.1f} dB, a later reply {20 * np.log10(later / raw):+.1f} dB, the first "
              f"reply after a reconnect {20 * np.log10(reconnected / raw):+.1f} dB; on the echo path RMS {echoed:.0f} "
              f"(simulator's VAD: {SIMULATOR_VAD_RMS:.0f})", flush=True)
    print("goal: attenuated <= 3 dB with no echo path")
