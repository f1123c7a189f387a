"""What MCP costs AVA, on the simulator with device-free audio and the SDK test server (tests/mcp_server.py):

1. a call: ms from the simulator's function call (its `function_call_arguments.done` sent) to AVA's
   `function_call_output` received, for a trivial built-in (calculate), the same trivial MCP tool (echo) over
   stdio and over streamable HTTP;
2. start-up: s from `AvaEngine.run()` to the first `session.update` the simulator receives, with no MCP server
   and with three, each in a fresh process (the SDK's import is part of the cost).

    PYTHONPATH=$PWD .venv/bin/python tests/benchmarks/bench_mcp.py [--calls 30] [--starts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcp_support import free_port, http_server, stdio_entry, write_config

from ava_tray import paths
from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.engine import AvaEngine
from ava_tray.history import ReconnectHistory
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator


async def until(predicate: object, patience: float = 20.0) -> float:
    """Spin on the loop (no timer granularity) until `predicate()`; the monotonic time it became true."""
    deadline = time.monotonic() + patience
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark waited too long")
        await asyncio.sleep(0)
    return time.perf_counter()


async def call_latencies(calls: int) -> dict[str, list[float]]:
    port = free_port()
    write_config(paths.config_dir() / "mcp.json", {
        "local": stdio_entry(autoApprove=["echo"]),
        "remote": {"url": f"http://127.0.0.1:{port}/mcp", "autoApprove": ["echo"]}})
    results: dict[str, list[float]] = {}
    async with http_server(port), RealtimeSimulator(record_audio=False) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None, voice_io_factory=FakeVoiceIO,
                           history=ReconnectHistory(None))
        task = asyncio.create_task(engine.run())
        try:
            await until(lambda: simulator.sessions and simulator.sessions[0].session_updates)
            session = simulator.sessions[0]
            for name, arguments in (("calculate", {"expression": "1+1"}), ("local__echo", {"text": "hi"}),
                                    ("remote__echo", {"text": "hi"})):
                times = results.setdefault(name, [])
                for _ in range(calls + 2):  # two to warm up
                    made, outputs, replies = len(session.function_calls), len(session.function_outputs), \
                        session.replies_sent
                    simulator.request_function_call(name, arguments)
                    called = await until(lambda made=made: len(session.function_calls) > made)
                    answered = await until(lambda outputs=outputs: len(session.function_outputs) > outputs)
                    assert "error" not in json.loads(session.function_outputs[-1]["output"])
                    times.append((answered - called) * 1000)
                    await until(lambda replies=replies: session.replies_sent >= replies + 2)
                del times[:2]
        finally:
            engine.stop()
            await asyncio.wait_for(task, 15)
    return results


async def one_start(servers: int) -> float:
    write_config(paths.config_dir() / "mcp.json",
                 {f"s{n}": stdio_entry(autoApprove=["echo"]) for n in range(servers)})
    async with RealtimeSimulator(record_audio=False) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None, voice_io_factory=FakeVoiceIO,
                           history=ReconnectHistory(None))
        began = time.perf_counter()
        task = asyncio.create_task(engine.run())
        configured = await until(lambda: simulator.sessions and simulator.sessions[0].session_updates)
        declared = {tool["name"] for tool in simulator.sessions[0].session_updates[0]["session"]["tools"]}
        assert all(f"s{n}__echo" in declared for n in range(servers)), "every server's tools in the first session"
        engine.stop()
        await asyncio.wait_for(task, 15)
    return configured - began


def isolated_environment(folder: str) -> dict[str, str]:
    environment = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        Path(folder, name).mkdir(exist_ok=True)
        environment[name] = str(Path(folder, name))
    return environment


def start_up(servers: int, starts: int) -> list[float]:
    """Seconds to the first session.update, each in a fresh process."""
    seconds = []
    for _ in range(starts):
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run([sys.executable, __file__, "--one-start", str(servers)], capture_output=True,
                                  text=True, timeout=120, env=isolated_environment(folder), check=True)
        seconds.append(float(done.stdout.strip().splitlines()[-1]))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--one-start", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_start is not None:
        print(asyncio.run(one_start(args.one_start)))
        return
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update(isolated_environment(folder))
        latencies = asyncio.run(call_latencies(args.calls))
    print(f"A call, simulator's function call -> AVA's output ({args.calls} calls each, ms):")
    for name, times in latencies.items():
        times.sort()
        print(f"  {name:14} p50 {statistics.median(times):6.1f}   p90 {times[int(len(times) * 0.9)]:6.1f}"
              f"   max {times[-1]:6.1f}")
    print(f"Start-up, engine.run() -> first session.update (fresh process each, {args.starts} runs, s):")
    medians = {}
    for servers in (0, 1, 3):
        runs = start_up(servers, args.starts)
        medians[servers] = statistics.median(runs)
        print(f"  {servers} stdio servers  median {medians[servers]:5.2f}   runs " + " ".join(f"{s:.2f}" for s in runs))
    print(f"  added by three servers: {medians[3] - medians[0]:.2f} s")


if __name__ == "__main__":
    main()
