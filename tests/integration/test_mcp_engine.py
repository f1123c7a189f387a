"""MCP servers outlive Realtime sessions: on the simulator with device-free audio, a whole AvaEngine declares an
SDK server's tools in every session.update, a call from the simulator reaches the server and its answer comes
back as function_call_output, and a rollover and an expiry keep the same server process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import replace
from typing import Any

from mcp_support import alive, stdio_entry, write_config

from ava_tray import paths
from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.engine import AvaEngine
from ava_tray.history import ReconnectHistory
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.simulator.faults import Fault
from ava_tray.tools.mcp.status import ServerState

SESSION_LIMIT = 4.0
"""A short first session: the engine rolls over to a fresh one about a second before it ends (the sessions after
it are long, so that only the rollover and the expiry the test stages move the conversation)."""
LONG_SESSION = 3600.0
REPLY_SECONDS = 0.2
"""The model's spoken reply to each tool output (short: the next call waits for it to be over)."""


def declared(session_update: dict[str, Any]) -> set[str]:
    return {tool["name"] for tool in session_update["session"].get("tools", [])}


class SimulatorCalls:
    """Function calls made through the simulator, and their outputs from whichever session got them."""

    def __init__(self, simulator: RealtimeSimulator) -> None:
        self.simulator = simulator

    def calls(self) -> list[dict[str, Any]]:
        return [call for session in self.simulator.sessions for call in session.function_calls]

    def outputs(self) -> dict[str, str]:
        return {item["call_id"]: item["output"] for session in self.simulator.sessions
                for item in session.function_outputs}

    def replies(self) -> int:
        return sum(session.replies_sent for session in self.simulator.sessions)

    async def call(self, name: str, arguments: dict[str, Any], patience: float = 15.0) -> dict[str, Any]:
        """Have the model call `name`; return the output AVA sent back once the model's reply to it is over
        (the simulator makes the next call when it is idle)."""
        made, replies = len(self.calls()), self.replies()
        self.simulator.request_function_call(name, arguments)
        await self.simulator.wait_for(lambda: len(self.calls()) > made, timeout=patience)
        call_id = self.calls()[made]["call_id"]
        await self.simulator.wait_for(lambda: call_id in self.outputs() and self.replies() >= replies + 2,
                                      timeout=patience)
        decoded = json.loads(self.outputs()[call_id])
        assert isinstance(decoded, dict)
        return decoded


async def test_mcp_tools_in_every_session_and_the_same_server_across_rollover_and_expiry() -> None:
    write_config(paths.config_dir() / "mcp.json",
                 {"local": stdio_entry(autoApprove=["pid", "echo", "hang"], timeout=1.5)})
    async with RealtimeSimulator(session_limit=SESSION_LIMIT, reply_seconds=REPLY_SECONDS,
                                 record_audio=False) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None, voice_io_factory=FakeVoiceIO,
                           history=ReconnectHistory(None))
        engine.supervisor.delays = replace(engine.supervisor.delays, session_expired=0.0)
        model = SimulatorCalls(simulator)
        task = asyncio.create_task(engine.run())
        try:
            await simulator.wait_for(lambda: simulator.sessions[0].session_updates, timeout=15)
            simulator.session_limit = LONG_SESSION  # for the sessions after the first
            first = declared(simulator.sessions[0].session_updates[0])
            assert {"local__pid", "local__echo", "local__hang", "get_time", "remember"} <= first, \
                "the server was up before the first session was configured"
            assert (await model.call("local__echo", {"text": "through the session"})) == \
                {"result": "through the session"}
            pid = int((await model.call("local__pid", {}))["result"])

            # A rollover: the conversation moves to a fresh session; the server stays.
            await simulator.wait_for(lambda: engine.session.handovers >= 1 and not simulator.sessions[0].open,
                                     timeout=SESSION_LIMIT + 5)
            assert simulator.sessions[0].close_reason == "rolled over to a fresh session"
            assert declared(simulator.sessions[1].session_updates[0]) == first
            assert int((await model.call("local__pid", {}))["result"]) == pid

            # An expiry: the session ends, the supervisor opens a new one; the server stays.
            sessions = len(simulator.sessions)
            simulator.inject(Fault.EXPIRE_NOW)
            await simulator.wait_for(lambda: len(simulator.sessions) > sessions
                                     and simulator.sessions[-1].session_updates, timeout=10)
            assert declared(simulator.sessions[-1].session_updates[0]) == first
            assert int((await model.call("local__pid", {}))["result"]) == pid and alive(pid)

            # Killed mid-session: started again, and its next call works in the same session.
            assert engine.toolbox.mcp is not None
            os.kill(pid, signal.SIGKILL)
            host = engine.toolbox.mcp
            await simulator.wait_for(lambda: host.status().servers[0].restarts >= 1
                                     and host.status().servers[0].state is ServerState.READY, timeout=30)
            again = int((await model.call("local__pid", {}))["result"])
            assert again != pid and alive(again)

            # A hanging tool: an error output to the model, and AVA goes on.
            hung = await model.call("local__hang", {"seconds": 2.0})  # it outlives its 1.5 s, not the test
            assert "did not finish within 1.5 seconds" in hung["error"]
            assert (await model.call("local__echo", {"text": "still here"})) == {"result": "still here"}
            assert declared(simulator.sessions[-1].session_updates[0]) == first
        finally:
            engine.stop()
            await asyncio.wait_for(task, 15)
    assert not alive(again), "quitting AVA stops the servers"
