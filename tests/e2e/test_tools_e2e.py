"""Tools end to end: the real engine and session against the simulator on loopback, real PortAudio audio.

Run through `bash scripts/with-services.sh .venv/bin/python -m pytest tests/e2e/test_tools_e2e.py -q` (PulseAudio null
sinks); without PulseAudio these tests skip. Every client event is validated against the official SDK.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import webbrowser
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pydantic
import pytest
from openai.types.realtime import RealtimeClientEvent
from waits import wait_until

from ava_tray.audio import VoiceIO
from ava_tray.engine import AvaEngine
from ava_tray.history import ReconnectHistory
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import Fault, RealtimeSimulator
from ava_tray.simulator.connection import SimulatedSession
from ava_tray.supervisor import Connected
from ava_tray.tools import builtin, make_tool
from ava_tray.tools.fakes import FakeConsent, FakeNotifier

pytestmark = pytest.mark.e2e

CLIENT_EVENT = pydantic.TypeAdapter(RealtimeClientEvent)


class ConsentByTool:
    """Says yes to every tool except those named."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.asked: list[str] = []

    async def ask(self, tool: str, summary: str) -> bool:
        self.asked.append(tool)
        return tool not in self.refuse


@dataclass
class Ava:
    simulator: RealtimeSimulator
    engine: AvaEngine
    notifier: FakeNotifier
    task: asyncio.Task[None] | None = None

    @property
    def session(self) -> SimulatedSession:
        return self.simulator.sessions[-1]

    async def start(self) -> None:
        self.task = asyncio.create_task(self.engine.run())
        await self.configured(1)

    async def configured(self, sessions: int) -> None:
        await wait_until(lambda: len(self.simulator.sessions) >= sessions
                         and self.simulator.sessions[sessions - 1].session_updates
                         and isinstance(self.engine.supervisor.state, Connected), timeout=20,
                         what=f"session {sessions} to be configured")

    async def call(self, name: str, arguments: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
        """Have the simulator call a tool; wait for the output and the audio reply that follows it."""
        session = self.session
        outputs, replies = len(session.function_outputs), session.replies_sent
        self.simulator.request_function_call(name, arguments)
        await wait_until(lambda: len(session.function_outputs) > outputs and session.replies_sent >= replies + 2,
                         timeout=timeout, what=f"the output of {name} and the reply after it")
        call = next(c for c in reversed(session.function_calls) if c["name"] == name)
        item = session.function_outputs[-1]
        assert item["call_id"] == call["call_id"]
        kinds = [e["type"] for e in session.client_events if e["type"] != "input_audio_buffer.append"]
        created = [i for i, e in enumerate(session.client_events) if e["type"] == "conversation.item.create"
                   and e["item"].get("call_id") == call["call_id"]]
        assert len(created) == 1 and session.client_events[created[0] + 1]["type"] == "response.create", kinds
        decoded = json.loads(item["output"])
        assert isinstance(decoded, dict)
        return decoded

    async def stop(self) -> None:
        if self.task is not None:
            self.engine.stop()
            await asyncio.wait_for(self.task, 10)
            self.task = None


def validate_client_events(simulator: RealtimeSimulator) -> int:
    count = 0
    for session in simulator.sessions:
        for event in session.client_events:
            CLIENT_EVENT.validate_python(event)
            count += 1
    return count


@pytest.fixture
async def make_ava(voice_io_factory: Callable[[], VoiceIO], tmp_path: Path) -> AsyncIterator[Callable[..., Ava]]:
    simulator = RealtimeSimulator()
    await simulator.start()
    made: list[Ava] = []

    def make(consent: Any = None) -> Ava:
        settings = replace(Settings(), realtime_url=simulator.url, delay_session_expired=0.0)
        engine = AvaEngine(settings, None, voice_io_factory=voice_io_factory,
                           history=ReconnectHistory(tmp_path / f"history-{len(made)}.jsonl"))
        notifier = FakeNotifier()
        engine.toolbox.registry.consent = consent or FakeConsent(answer=True)
        engine.toolbox.reminders.notifier = notifier
        ava = Ava(simulator, engine, notifier)
        made.append(ava)
        return ava

    yield make
    for ava in made:
        await ava.stop()
        ava.engine.toolbox.memory.close()
    await simulator.stop()
    assert validate_client_events(simulator) > 0


async def test_every_built_in_tool_round_trips(make_ava: Callable[..., Ava], monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    monkeypatch.setattr(builtin, "_qt_gui_running", lambda: False)  # console mode, even if a Qt test ran before
    document = tmp_path / "notes.txt"
    document.write_text("notes")
    ava = make_ava()
    await ava.start()

    assert "iso" in await ava.call("get_time", {"time_zone": "Europe/Paris"})
    reminder = await ava.call("set_reminder", {"text": "water the plants", "delay_seconds": 3600})
    assert reminder["text"] == "water the plants"
    assert (await ava.call("list_reminders", {}))["reminders"][0]["id"] == reminder["id"]
    assert (await ava.call("cancel_reminder", {"reminder_id": reminder["id"]}))["cancelled"]
    fact = (await ava.call("remember", {"fact": "The user's favourite colour is teal."}))["remembered"]
    assert (await ava.call("recall", {"query": "favourite colour"}))["facts"][0]["id"] == fact["id"]
    assert (await ava.call("forget", {"fact_id": fact["id"]}))["forgotten"]["id"] == fact["id"]
    assert (await ava.call("calculate", {"expression": "2 ** 10 - 24"}))["result"] == 1000
    assert (await ava.call("read_clipboard", {}))["error"] == "The clipboard is not available in console mode."
    assert "console mode" in (await ava.call("write_clipboard", {"text": "hi"}))["error"]
    assert (await ava.call("open_address", {"address": str(document)}))["opened"] == document.as_uri()
    assert opened == [document.as_uri()]
    status = await ava.call("ava_status", {})
    assert status["state"].startswith("connected") and status["reconnects_today"] == 0
    assert (await ava.call("mute_microphone", {"muted": True}))["muted"] is True and ava.engine.muted
    assert (await ava.call("mute_microphone", {"muted": False}))["muted"] is False and not ava.engine.muted
    assert (await ava.call("change_voice", {"voice": "cedar"}))["voice"] == "cedar"
    assert ava.engine.settings.voice == "cedar"

    called = {c["name"] for c in ava.session.function_calls}
    assert called == set(ava.engine.toolbox.registry.names)
    assert len(ava.simulator.sessions) == 1


async def test_tools_and_memory_survive_expiry_and_a_process_restart(make_ava: Callable[..., Ava]) -> None:
    ava = make_ava()
    await ava.start()
    await ava.call("remember", {"fact": "The user's spare key is under the blue flowerpot."})
    ava.simulator.inject(Fault.EXPIRE_NOW)
    await ava.configured(2)
    first, second = (s.session_updates[-1]["session"] for s in ava.simulator.sessions[:2])
    assert first["tools"] == second["tools"] and len(second["tools"]) == len(ava.engine.toolbox.registry.names)
    assert "blue flowerpot" not in first["instructions"] and "blue flowerpot" in second["instructions"]
    assert (await ava.call("recall", {"query": "where is the spare key"}))["facts"][0]["text"].endswith(
        "blue flowerpot.")
    await ava.stop()
    ava.engine.toolbox.memory.close()

    restarted = make_ava()  # a new engine: a new MemoryStore on the same file
    await restarted.start()
    third = restarted.session.session_updates[-1]["session"]
    assert "blue flowerpot" in third["instructions"] and third["tools"] == first["tools"]
    assert (await restarted.call("recall", {"query": "spare key"}))["count"] == 1


async def test_failing_tools_give_error_outputs_and_the_session_goes_on(make_ava: Callable[..., Ava]) -> None:
    release = threading.Event()

    def explode() -> None:
        """Always fails."""
        raise RuntimeError("the widget is jammed")

    def hang() -> None:
        """Never finishes in time."""
        release.wait(30)

    ava = make_ava()
    ava.engine.toolbox.registry.register(make_tool(explode))
    ava.engine.toolbox.registry.register(make_tool(hang, timeout=1.0))
    await ava.start()
    assert "the widget is jammed" in (await ava.call("explode", {}))["error"]
    started = asyncio.get_running_loop().time()
    assert "did not finish within 1 seconds" in (await ava.call("hang", {}))["error"]
    assert asyncio.get_running_loop().time() - started < 5
    release.set()
    assert "must be a string" in (await ava.call("calculate", {"expression": 5}))["error"]
    assert "unexpected argument" in (await ava.call("get_time", {"zone": "UTC"}))["error"]
    assert (await ava.call("calculate", {"expression": "6 * 7"}))["result"] == 42
    assert len(ava.simulator.sessions) == 1 and isinstance(ava.engine.supervisor.state, Connected)


async def test_a_side_effect_without_consent_does_nothing(make_ava: Callable[..., Ava],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    consent = ConsentByTool(refuse={"open_address", "mute_microphone", "change_voice"})
    ava = make_ava(consent)
    await ava.start()
    for name, arguments in [("open_address", {"address": "https://example.org"}),
                            ("mute_microphone", {"muted": True}), ("change_voice", {"voice": "ash"})]:
        result = await ava.call(name, arguments)
        assert result["declined"] is True and "nothing was done" in result["error"], name
    assert opened == [] and not ava.engine.muted and ava.engine.settings.voice == "marin"
    assert consent.asked == ["open_address", "mute_microphone", "change_voice"]


async def test_a_reminder_fires_once_across_a_reconnect(make_ava: Callable[..., Ava]) -> None:
    ava = make_ava()
    await ava.start()
    reminder = await ava.call("set_reminder", {"text": "stand up", "delay_seconds": 5})
    ava.simulator.inject(Fault.EXPIRE_NOW)
    await ava.configured(2)
    await wait_until(lambda: ava.notifier.shown, timeout=15, what="the reminder")
    session = ava.simulator.sessions[-1]
    # It is also spoken: the live session gets the reminder and is asked to say it.
    await wait_until(lambda: any(e.get("type") == "conversation.item.create" and "stand up" in json.dumps(e)
                                 for e in session.client_events), timeout=5, what="the spoken reminder")
    await wait_until(lambda: any(e.get("type") == "response.create" for e in session.client_events),
                     timeout=5, what="a response.create for the reminder")
    await ava.simulator.wait_for(lambda: not session.open or session.replies_sent >= 1, timeout=10)
    await ava.call("calculate", {"expression": "1 + 1"})  # the new session works after it fired
    stored = ava.engine.toolbox.reminders.get(reminder["id"])
    assert stored is not None and stored.fired_at is not None and stored.fired_at >= stored.due_at
    assert ava.notifier.shown == [("AVA reminder", "Reminder due: stand up")]


async def test_tools_and_memory_survive_a_rollover(voice_io_factory: Callable[[], VoiceIO], tmp_path: Path) -> None:
    """A seamless rollover (make before break) carries the same tools and the memory into the new session."""
    async with RealtimeSimulator(session_limit=10.0) as simulator:
        settings = replace(Settings(), realtime_url=simulator.url)  # rollover on, as shipped
        engine = AvaEngine(settings, None, voice_io_factory=voice_io_factory,
                           history=ReconnectHistory(tmp_path / "history.jsonl"))
        engine.toolbox.registry.consent = FakeConsent(answer=True)
        ava = Ava(simulator, engine, FakeNotifier())
        await ava.start()
        await ava.call("remember", {"fact": "The user's bike lock code is 4711."})
        await wait_until(lambda: len(simulator.sessions) >= 2 and simulator.sessions[1].session_updates
                         and not simulator.sessions[0].open, timeout=15, what="the rollover")
        assert simulator.sessions[0].close_code == 1000, "closed by the client, not expired"
        assert engine.session.handovers == 1
        first, second = (s.session_updates[-1]["session"] for s in simulator.sessions[:2])
        assert first["tools"] == second["tools"]
        assert "4711" in second["instructions"]
        assert (await ava.call("recall", {"query": "bike lock"}))["facts"][0]["text"].endswith("4711.")
        await ava.stop()
        engine.toolbox.memory.close()
    assert validate_client_events(simulator) > 0


async def test_a_tool_still_running_at_the_hard_margin_answers_in_the_new_session(
        voice_io_factory: Callable[[], VoiceIO], tmp_path: Path) -> None:
    """A running tool holds the rollover back until the hard margin; then the handover happens mid-call and
    the answer goes to the new session with its call re-created first (OpenAI refuses an output whose call
    the conversation never had: the simulator does too, with `invalid_tool_call_id`)."""
    limit = 12.0
    started, release = threading.Event(), threading.Event()

    def slow_lookup() -> dict[str, str]:
        """Looks something up, slowly."""
        started.set()
        release.wait(30)
        return {"answer": "found it"}

    async with RealtimeSimulator(session_limit=limit) as simulator:
        settings = replace(Settings(), realtime_url=simulator.url)  # rollover on, as shipped
        engine = AvaEngine(settings, None, voice_io_factory=voice_io_factory,
                           history=ReconnectHistory(tmp_path / "history.jsonl"))
        engine.toolbox.registry.consent = FakeConsent(answer=True)
        engine.toolbox.registry.register(make_tool(slow_lookup, timeout=30.0))
        ava = Ava(simulator, engine, FakeNotifier())
        await ava.start()
        first = simulator.sessions[0]
        simulator.request_function_call("slow_lookup", {})
        await wait_until(started.is_set, timeout=10, what="the tool to start")
        call_id = first.function_calls[-1]["call_id"]

        await wait_until(lambda: len(simulator.sessions) >= 2 and bool(simulator.sessions[1].session_updates)
                         and not first.open, timeout=limit, what="the rollover")
        second = simulator.sessions[1]

        def wall(monotonic: float) -> float:
            return time.time() - (time.monotonic() - monotonic)

        soft, hard = RolloverPolicy().window(wall(first.opened_at), int(first.expires_at))  # as the client saw it
        handed_over = wall(second.opened_at)
        assert soft + 1.0 < hard - 0.2 <= handed_over < first.expires_at, (
            f"handed over {handed_over - soft:+.2f} s after the soft margin, {handed_over - hard:+.2f} s after the "
            "hard one: it must wait for the hard one while the tool runs")
        assert not release.is_set() and first.close_code == 1000 and engine.session.handovers == 1

        release.set()
        await wait_until(lambda: len(second.function_outputs) == 1 and second.replies_sent >= 1, timeout=10,
                         what="the tool's answer and the reply to it in the new session")
        assert not first.function_outputs and not second.errors_sent
        sent = [e for e in second.client_events if e["type"] in ("conversation.item.create", "response.create")]
        tail = [(e["type"], e.get("item", {}).get("type")) for e in sent[-3:]]
        assert tail == [("conversation.item.create", "function_call"),
                        ("conversation.item.create", "function_call_output"), ("response.create", None)]
        assert sent[-3]["item"]["call_id"] == sent[-2]["item"]["call_id"] == call_id
        assert sent[-3]["item"]["name"] == "slow_lookup"
        assert json.loads(sent[-2]["item"]["output"]) == {"answer": "found it"}
        await ava.stop()
        engine.toolbox.memory.close()
    assert validate_client_events(simulator) > 0
