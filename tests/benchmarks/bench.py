"""AVA Tray benchmarks against the local simulator, on real audio (PulseAudio null sinks).

Run with `bash scripts/bench.sh` (it starts the services). Prints figures and, where there is one, a
ratio against a baseline measured in the same run:
  1. reconnect time per cause: session end → next session configured (baseline: the seed's fixed delay);
  2. the deaf time at a planned expiry: rollover off (the seed's behaviour) against rollover on;
  3. an unreachable server for 30 s: attempts made, and time from the port opening to a ready session;
  4. client-side audio latency, p50 and p99 (mic block captured → sent; audio delta received → device);
  5. CPU seconds per minute while connected and silent: console (headphones, speakers, speakers with the voice
     gate off) and tray, against a process that only holds the same two audio streams open (the floor);
  6. echo cancellation on a real echo path (PulseAudio loopback, 60 ms, about -6 dB): the echo of AVA's
     voice left in the microphone with and without it (dB removed) and the CPU it costs per minute;
  7-10. the voice gate (issue 15): uplink while nobody speaks, speech delivered, the echo path, double talk
     (tests/benchmarks/bench_always_on.py).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for the pulse helpers

import bench_always_on as always_on
import pulse
import room_audio as ra
from waits import wait_state

from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import Fault, RealtimeSimulator
from ava_tray.supervisor import Connected, Reconnecting

NO_ROLLOVER = RolloverPolicy(enabled=False)


def header(title: str) -> None:
    print(f"\n== {title}", flush=True)


def make_engine(simulator: RealtimeSimulator, rollover: RolloverPolicy = NO_ROLLOVER, *,
                voice_gate: bool = True) -> AvaEngine:
    settings = replace(Settings(), realtime_url=simulator.url, voice_gate=voice_gate)
    return AvaEngine(settings, None, history=ReconnectHistory(None), launch=LaunchOptions(rollover=rollover))


async def bench_reconnect_per_cause(repeats: int) -> None:
    header(f"1. Reconnect time per cause: session end -> next session configured (real delays; median of {repeats})")
    async with RealtimeSimulator(record_audio=False) as simulator:
        engine = make_engine(simulator)
        task = asyncio.create_task(engine.run())
        await wait_state(engine, lambda s: isinstance(s, Connected), 15)
        cases: list[tuple[str, float, Callable[[], None]]] = [
            ("session_expired", 3.0, lambda: simulator.inject(Fault.EXPIRE_NOW)),
            ("connection_lost", 5.0, lambda: simulator.inject(Fault.DROP)),
            ("other", 10.0, lambda: (simulator.inject(Fault.HTTP_500), simulator.inject(Fault.EXPIRE_NOW))),
        ]
        print(f"{'cause':<18}{'seed delay':>11}{'measured':>11}{'overhead':>11}{'ratio':>8}   overheads (ms)")
        for cause, seed, trigger in cases:
            overheads = []
            for _ in range(repeats):
                trigger()
                await wait_state(engine, lambda s, c=cause: isinstance(s, Reconnecting)  # type: ignore[misc]
                                 and s.cause.value == c, 20)
                ended = time.monotonic()
                await wait_state(engine, lambda s: isinstance(s, Connected), 30)
                overheads.append(time.monotonic() - ended - seed)
                # An expiry between cases resets the back-off, so each cause is measured as a first failure.
                simulator.inject(Fault.EXPIRE_NOW)
                await wait_state(engine, lambda s: isinstance(s, Reconnecting), 20)
                await wait_state(engine, lambda s: isinstance(s, Connected), 20)
            overhead = statistics.median(overheads)
            print(f"{cause:<18}{seed:>10.1f}s{seed + overhead:>10.3f}s{overhead * 1000:>9.0f}ms"
                  f"{(seed + overhead) / seed:>8.3f}   {', '.join(f'{o * 1000:.0f}' for o in overheads)}", flush=True)
        engine.stop()
        await task


async def deaf_time(rollover: RolloverPolicy, limit: float, handovers: int) -> tuple[float, int, int]:
    """Continuous speech into the mic across `handovers` planned expiries; ms the server heard nothing."""
    async with RealtimeSimulator(session_limit=limit, record_audio=False, speech_threshold=1e9) as simulator:
        engine = make_engine(simulator, rollover, voice_gate=False)  # continuous audio: the handover alone
        task = asyncio.create_task(engine.run())
        speech = pulse.speech_like_pcm(2.0)
        async with pulse.feed_mic(speech, repeat=True):
            await wait_state(engine, lambda s: isinstance(s, Connected), 15)
            await simulator.wait_for(lambda: any(s.received_audio_ms > 500 for s in simulator.sessions), 10)
            first = len(simulator.sessions) - 1
            await simulator.wait_for(lambda: len(simulator.sessions) > first + handovers
                                     and simulator.sessions[first + handovers].received_audio_ms > 500,
                                     timeout=handovers * (limit + 15))
        engine.stop()
        await task
    window = simulator.sessions[first:first + handovers + 1]
    arrivals = sorted((t, ms) for s in window for t, ms in s.audio_arrivals)
    span_ms = (arrivals[-1][0] - arrivals[0][0]) * 1000
    received_ms = sum(ms for _, ms in arrivals[:-1])
    return max(0.0, span_ms - received_ms) / handovers, simulator.max_concurrent, sum(
        1 for s in window if s.close_code == 1001)


async def bench_rollover_gap() -> None:
    header("2. Deaf time at a planned expiry (continuous speech into the mic; 12 s sessions, 3 handovers)")
    off, _, expired_off = await deaf_time(NO_ROLLOVER, 12.0, 3)
    on, concurrent, expired_on = await deaf_time(RolloverPolicy(margin=4.0, hard_margin=1.5), 12.0, 3)
    print(f"rollover off (the seed): {off:8.0f} ms per expiry   ({expired_off} sessions hit the limit)")
    print(f"rollover on:             {on:8.0f} ms per handover ({expired_on} sessions hit the limit, "
          f"at most {concurrent} open at once)")
    print(f"gap removed: {off - on:.0f} ms per session end", flush=True)


async def bench_unreachable() -> None:
    header("3. Server unreachable for 30 s: attempts, and ready after the port opens")
    async with RealtimeSimulator(record_audio=False) as simulator:
        engine = make_engine(simulator)
        task = asyncio.create_task(engine.run())
        await wait_state(engine, lambda s: isinstance(s, Connected), 15)
        await simulator.close_port()
        before = engine.supervisor.attempt
        simulator.inject(Fault.DROP)
        await asyncio.sleep(30)
        attempts = engine.supervisor.attempt - before
        await simulator.open_port()
        opened = time.monotonic()
        await wait_state(engine, lambda s: isinstance(s, Connected), 15)
        print(f"attempts while unreachable: {attempts}; ready {time.monotonic() - opened:.3f} s after the port opened "
              "(the endpoint is probed once a second: 0-1 s, then connecting)")
        engine.stop()
        await task


async def bench_latency(turns: int) -> None:
    header(f"4. Client audio latency over {turns} spoken turns")
    async with RealtimeSimulator(record_audio=False) as simulator:
        engine = make_engine(simulator)
        task = asyncio.create_task(engine.run())
        await wait_state(engine, lambda s: isinstance(s, Connected), 15)
        for turn in range(turns):
            # Real speech, a second of quiet first: the voice gate hears a person begin to speak.
            async with pulse.feed_mic(ra.said(ra.SENTENCES[turn % len(ra.SENTENCES)], voice=ra.VOICES[turn % 4])):
                await simulator.wait_for(lambda n=turn: simulator.sessions[-1].replies_sent > n, 15)
            # The next turn starts once AVA's reply has finished playing, as a person would wait.
            await wait_state(engine, lambda s: isinstance(s, Connected) and not s.speaking, 15)
        engine.stop()
        await task
    for name, samples in (("mic block captured -> sent on the socket", engine.latency.mic_to_socket),
                          ("audio delta received -> handed to the device", engine.latency.socket_to_device)):
        p50, p99 = samples.percentile(0.5), samples.percentile(0.99)
        print(f"{name:<46} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({len(samples.samples)} samples)")
    from ava_tray.audio.devices import MIC_BLOCK_MS

    print(f"(from the block's callback; a block's first sample waited {MIC_BLOCK_MS} ms in the device before it: "
          "the seed's blocks were 20 ms)")


async def echo_run(audio_mode: str, seconds: float) -> tuple[float, float, float, float]:
    """Play `seconds` of AVA's voice with the echo path on; return (microphone RMS over the last half,
    processing CPU s/min, process CPU s/min, frames late) for `audio_mode`."""
    from ava_tray.audio.devices import SoundDeviceVoiceIO
    from ava_tray.simulator import synthetic_voice

    voice = SoundDeviceVoiceIO(audio_mode=audio_mode)
    heard: list[tuple[float, bytes]] = []
    await voice.open(lambda pcm, at: heard.append((at, pcm)))
    try:
        await pulse.wait_until(lambda: voice.captured_blocks > 25, timeout=10, what="the microphone running")
        cpu_before, wall_before = time.process_time(), time.monotonic()
        echo_before = voice.echo.stats.cpu_seconds if voice.echo else 0.0
        started = time.monotonic()
        voice.play("bench", synthetic_voice(seconds))
        await pulse.wait_until(lambda: not voice.is_playing, timeout=seconds + 10, what="the reply played")
        ended = time.monotonic()
        cpu = (time.process_time() - cpu_before) * 60 / (ended - wall_before)
        echo_cpu = ((voice.echo.stats.cpu_seconds if voice.echo else 0.0) - echo_before) * 60 / (ended - wall_before)
    finally:
        await voice.close()
    middle = started + (ended - started) / 2
    late = b"".join(pcm for at, pcm in heard if middle <= at <= ended)
    return pulse.rms(late), echo_cpu, cpu, float(voice.overflows)


async def bench_echo(seconds: float) -> None:
    header(f"6. Echo cancellation on a real echo path ({seconds:.0f} s of AVA's voice, loopback 60 ms at "
           f"{pulse.LOOPBACK_VOLUME})")
    from ava_tray.audio.echo import load_error

    if load_error() is not None:
        print(f"skipped: the audio processing library does not load ({load_error()})")
        return
    with pulse.echo_path():
        off_rms, _, off_cpu, _ = await echo_run("headphones", seconds)
        on_rms, apm_cpu, on_cpu, _ = await echo_run("speakers", seconds)
    removed = 20 * math.log10(off_rms / max(on_rms, 1.0))
    print(f"{'echo in the microphone, off':<34}RMS {off_rms:8.1f}  (the simulator's VAD fires at 500)")
    print(f"{'echo in the microphone, on':<34}RMS {on_rms:8.1f}  ({removed:.1f} dB removed)")
    print(f"{'processing module alone':<34}{apm_cpu:8.3f} CPU s/min")
    print(f"{'whole process, off':<34}{off_cpu:8.3f} CPU s/min")
    print(f"{'whole process, on':<34}{on_cpu:8.3f} CPU s/min  (+{on_cpu - off_cpu:.3f})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs (CPU 10 s, 3 turns, no 30 s outage)")
    args = parser.parse_args()
    if not pulse.pulse_available():
        sys.exit("PulseAudio is not running: use `bash scripts/bench.sh`.")
    subprocess.run(["pactl", "set-sink-volume", "speaker", "100%"], check=False)
    await bench_reconnect_per_cause(1 if args.quick else 5)
    await bench_rollover_gap()
    if not args.quick:
        await bench_unreachable()
    await bench_latency(3 if args.quick else 8)
    await always_on.bench_cpu(10.0 if args.quick else 30.0, rounds=1 if args.quick else 2)
    await bench_echo(10.0 if args.quick else 30.0)
    await always_on.bench_uplink(20.0 if args.quick else 60.0)
    await always_on.bench_speech_delivered(4 if args.quick else 8)
    await always_on.bench_echo_path(3 if args.quick else 10)
    await always_on.bench_double_talk()


if __name__ == "__main__":
    asyncio.run(main())
