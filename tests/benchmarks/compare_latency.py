"""Client audio latency of this checkout against an older tree, runs interleaved (bench section 4's measurement).

    git worktree add /tmp/ava-base cde0db0
    bash scripts/with-services.sh .venv/bin/python tests/benchmarks/compare_latency.py /tmp/ava-base --rounds 4

Each run is a fresh process that imports `ava_tray` from one tree (the speech, the PulseAudio helpers and this
script from this checkout), holds eight spoken turns on real audio, and prints the p50 and p99 of mic block
captured -> sent and audio delta received -> handed to the device. The simulator (this checkout's, the same for
every run) is a process of its own, as the real server is another machine: in bench section 4 it shares the
client's event loop, and its standard-library json and base64 calls, made just before the client parses each
delta, leave the client's own json and base64 code warm in the CPU's caches when the client uses the same.
Three set-ups, one run each per round, in turn, so that the machine's drift falls on all of them alike:
  base      the older tree as it ships;
  this      this checkout as it ships (40 ms microphone blocks, the voice gate on);
  this-20   this checkout with the older tree's workload: 20 ms blocks both ways, every block to the loop at once,
            the voice gate off. Set beside `base`, it tells the cost of the code from the cost of those choices.
Microsecond figures move with what else the loop did just before (a C function called once per 100 ms runs cold:
9-12 µs here against about 1 µs warm), so compare ranges over rounds, never a single run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
CHECKOUT = HERE.parents[2]
SETUPS = ("base", "this", "this-20")


def run_once(tree: Path, url: str, like_base: bool, turns: int) -> None:
    """In a child process: one run of `tree` against the simulator at `url`; print one JSON line of figures."""
    sys.path[:0] = [str(tree), str(CHECKOUT / "tests"), str(HERE.parent)]
    from dataclasses import replace

    import pulse
    import room_audio as ra
    from waits import wait_state

    from ava_tray.audio import devices
    from ava_tray.engine import AvaEngine, LaunchOptions
    from ava_tray.history import ReconnectHistory
    from ava_tray.session import RolloverPolicy
    from ava_tray.settings import Settings
    from ava_tray.supervisor import Connected

    settings_changes: dict[str, object] = {}
    if like_base:
        # The older tree's workload: what issue 15 ("always on, nearly free") changed, put back for this run.
        settings_changes["voice_gate"] = False
        devices.SPEAKER_BLOCK_MS = 20  # type: ignore[misc]
        devices.IDLE_BATCH = 1  # type: ignore[misc]
        make_voice = devices.SoundDeviceVoiceIO.__init__

        def twenty_ms(self: object, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("mic_block_ms", 20)
            make_voice(self, *args, **kwargs)  # type: ignore[arg-type]

        devices.SoundDeviceVoiceIO.__init__ = twenty_ms  # type: ignore[method-assign]

    async def main() -> dict[str, float | None]:
        settings = replace(Settings(), realtime_url=url, **settings_changes)  # type: ignore[arg-type]
        engine = AvaEngine(settings, None, history=ReconnectHistory(None),
                           launch=LaunchOptions(rollover=RolloverPolicy(enabled=False)))
        task = asyncio.create_task(engine.run())
        await wait_state(engine, lambda s: isinstance(s, Connected), 15)
        for turn in range(turns):
            async with pulse.feed_mic(ra.said(ra.SENTENCES[turn % len(ra.SENTENCES)], voice=ra.VOICES[turn % 4])):
                await wait_state(engine, lambda s: isinstance(s, Connected) and s.speaking, 15)
            await wait_state(engine, lambda s: isinstance(s, Connected) and not s.speaking, 15)
        engine.stop()
        await task
        latency = engine.latency
        return {"m2s_p50": latency.mic_to_socket.percentile(0.5), "m2s_p99": latency.mic_to_socket.percentile(0.99),
                "s2d_p50": latency.socket_to_device.percentile(0.5),
                "s2d_p99": latency.socket_to_device.percentile(0.99)}

    figures = asyncio.run(main())
    if None in figures.values():
        sys.exit(f"a figure has no samples: {figures}")
    print(json.dumps(figures))


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    """This checkout's simulator in a process of its own; its URL once it listens."""
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    server = subprocess.Popen([sys.executable, "-m", "ava_tray.simulator", "--port", "0", "--log-level", "WARNING"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert server.stdout is not None
    for line in server.stdout:  # it prints its URL once it listens, then nothing more
        if "listening on " in line:
            return server, line.split("listening on ", 1)[1].strip()
    sys.exit("the simulator did not start")


def compare(base: Path, rounds: int, turns: int) -> None:
    results: dict[str, list[dict[str, float]]] = {setup: [] for setup in SETUPS}
    server, url = start_simulator()
    try:
        for round_ in range(1, rounds + 1):
            for setup in SETUPS:
                figures = run_child(base if setup == "base" else CHECKOUT, url, setup == "this-20", turns)
                results[setup].append(figures)
                print(f"round {round_} {setup:<8} " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()),
                      flush=True)
    finally:
        server.terminate()
        server.wait(10)
    print(f"\nranges over {rounds} rounds (ms)")
    print_ranges(results)


def run_child(tree: Path, url: str, like_base: bool, turns: int) -> dict[str, float]:
    command = [sys.executable, str(HERE), "--run", str(tree), "--url", url, "--turns", str(turns)]
    if like_base:
        command.append("--like-base")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"the run of {tree} failed:\n{done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(lines[-1])
    return figures


def print_ranges(results: dict[str, list[dict[str, float]]]) -> None:
    print(f"{'':<9}{'mic->socket p50':>18}{'p99':>14}{'socket->device p50':>21}{'p99':>14}")
    for setup in SETUPS:
        cells = []
        for key in ("m2s_p50", "m2s_p99", "s2d_p50", "s2d_p99"):
            values = [figures[key] for figures in results[setup]]
            cells.append(f"{min(values):.3f}-{max(values):.3f}")
        print(f"{setup:<9}{cells[0]:>18}{cells[1]:>14}{cells[2]:>21}{cells[3]:>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, nargs="?", help="the older tree (a git worktree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--like-base", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        run_once(args.run, args.url, args.like_base, args.turns)
    elif args.base is None or not (args.base / "ava_tray").is_dir():
        parser.error("give the older tree: a directory holding ava_tray/ (git worktree add /tmp/ava-base <commit>)")
    else:
        compare(args.base.resolve(), args.rounds, args.turns)


if __name__ == "__main__":
    main()
