"""Every fault the simulator can inject ends in the expected cause, delay and state, on real sessions.

Real parts: the project's simulator on loopback, `websockets`, and real PortAudio through PulseAudio
null sinks (run through scripts/with-services.sh). Delays are the seed's real 3/5/10 s; each test reads
the countdown's deadline instead of waiting it out, then stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import pytest
from waits import wait_state

from ava_tray.audio import VoiceIO
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.realtime.connection import Keepalive
from ava_tray.realtime.ending import Cause
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import Fault, RealtimeSimulator
from ava_tray.supervisor import Connected, Error, Reconnecting, Stopped

KEY = "sk-test-faults-" + "K3y" * 10
NO_ROLLOVER = RolloverPolicy(enabled=False)  # these are the seed's fallback paths


@dataclass
class Rig:
    simulator: RealtimeSimulator
    engine: AvaEngine
    task: asyncio.Task[None]

    async def connected(self, count: int = 1) -> None:
        await wait_state(self.engine, lambda s: isinstance(s, Connected) and self.engine.supervisor.attempt == count)

    async def stop(self) -> None:
        self.engine.stop()
        await asyncio.wait_for(self.task, 5)
        assert isinstance(self.engine.supervisor.state, Stopped)


@pytest.fixture
async def rig(voice_io_factory: Callable[[], VoiceIO], tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[Callable[..., asyncio.Future[Rig]]]:
    made: list[Rig] = []

    async def make(*, api_key: str | None = KEY, key_on_server: str | None = KEY,
                   keepalive: Keepalive | None = None, connect: bool = True) -> Rig:
        simulator = RealtimeSimulator(api_key=key_on_server)
        await simulator.start()
        settings = replace(Settings(), realtime_url=simulator.url)
        history = ReconnectHistory(tmp_path_factory.mktemp("history") / "history.jsonl")
        engine = AvaEngine(settings, api_key, voice_io_factory=voice_io_factory, history=history,
                           launch=LaunchOptions(keepalive=keepalive or Keepalive(), rollover=NO_ROLLOVER))
        task = asyncio.create_task(engine.run())
        rig = Rig(simulator, engine, task)
        made.append(rig)
        if connect:
            await rig.connected()
        return rig

    yield make  # type: ignore[misc]
    for rig in made:
        rig.engine.stop()
        await asyncio.wait_for(rig.task, 5)
        await rig.simulator.stop()


def causes(rig: Rig) -> list[str]:
    return [r.cause for r in rig.engine.history.records]


@pytest.mark.e2e
@pytest.mark.parametrize(("fault", "cause", "delay"), [
    (Fault.EXPIRE_NOW, Cause.SESSION_EXPIRED, 3.0),
    (Fault.DROP, Cause.CONNECTION_LOST, 5.0),
    (Fault.CLOSE_1011, Cause.CONNECTION_LOST, 5.0),
])
async def test_recoverable_faults_reconnect_after_the_seed_delay(rig: Callable[..., asyncio.Future[Rig]],
                                                                 fault: Fault, cause: Cause, delay: float) -> None:
    r = await rig()
    started = time.monotonic()
    r.simulator.inject(fault)
    await wait_state(r.engine, lambda s: isinstance(s, Reconnecting))
    state = r.engine.supervisor.state
    assert isinstance(state, Reconnecting)
    assert state.cause is cause and state.delay == delay and state.attempt == 2
    assert state.deadline == pytest.approx(time.monotonic() + delay, abs=1.0)
    assert time.monotonic() - started < 2.0
    assert causes(r) == [cause.value], "one history record per ending"
    r.engine.supervisor.restart_now()
    await r.connected(2)
    assert len(r.simulator.sessions) == 2
    assert len(r.simulator.sessions[1].session_updates) == 1, "a fresh session.update"
    await r.stop()


@pytest.mark.e2e
async def test_expiry_with_the_error_first_is_still_expiry(voice_io_factory: Callable[[], VoiceIO],
                                                           tmp_path: object) -> None:
    async with RealtimeSimulator(session_limit=1.0, expiry_error_first=True) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None,
                           voice_io_factory=voice_io_factory, history=ReconnectHistory(None),
                           launch=LaunchOptions(rollover=NO_ROLLOVER))
        task = asyncio.create_task(engine.run())
        await wait_state(engine, lambda s: isinstance(s, Reconnecting))
        state = engine.supervisor.state
        assert isinstance(state, Reconnecting) and state.cause is Cause.SESSION_EXPIRED and state.delay == 3.0
        assert "1-second limit" in state.ending.message or "limit reached" in state.ending.message
        engine.stop()
        await asyncio.wait_for(task, 5)


@pytest.mark.e2e
async def test_half_open_socket_is_caught_by_keepalive(rig: Callable[..., asyncio.Future[Rig]]) -> None:
    r = await rig(keepalive=Keepalive(interval=0.3, timeout=0.3))
    r.simulator.inject(Fault.HALF_OPEN)
    await wait_state(r.engine, lambda s: isinstance(s, Reconnecting), patience=5)
    state = r.engine.supervisor.state
    assert isinstance(state, Reconnecting) and state.cause is Cause.CONNECTION_LOST and state.delay == 5.0
    assert state.ending.close_code == 1011
    await r.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("fault", [Fault.CLOSE_4000, Fault.ERROR_QUOTA])
async def test_fatal_faults_stop_in_error_until_restart_now(rig: Callable[..., asyncio.Future[Rig]],
                                                            fault: Fault) -> None:
    r = await rig()
    r.simulator.inject(fault)
    await wait_state(r.engine, lambda s: isinstance(s, Error))
    await asyncio.sleep(0)
    assert len(r.simulator.sessions) == 1
    assert causes(r) == ["fatal"]
    r.engine.supervisor.restart_now()
    await r.connected(2)
    await r.stop()


@pytest.mark.e2e
async def test_wrong_key_is_fatal_with_a_sentence_and_no_retry(rig: Callable[..., asyncio.Future[Rig]]) -> None:
    r = await rig(api_key="sk-wrong-" + "x" * 30, connect=False)
    await wait_state(r.engine, lambda s: isinstance(s, Error))
    state = r.engine.supervisor.state
    assert isinstance(state, Error)
    assert state.ending.close_code == 3000 and "API key was rejected" in state.reason
    with pytest.raises(TimeoutError):
        await r.simulator.wait_for(lambda: len(r.simulator.sessions) > 1, timeout=1.5)
    assert causes(r) == ["fatal"]
    await r.stop()


@pytest.mark.e2e
@pytest.mark.parametrize(("fault", "cause", "delay"), [
    (Fault.HTTP_401, Cause.FATAL, None),
    (Fault.HTTP_500, Cause.OTHER, 10.0),
])
async def test_handshake_refusals(rig: Callable[..., asyncio.Future[Rig]], fault: Fault, cause: Cause,
                                  delay: float | None) -> None:
    r = await rig()
    r.simulator.inject(fault)
    r.engine.supervisor.restart_now()
    expected = Error if delay is None else Reconnecting
    await wait_state(r.engine, lambda s: isinstance(s, expected))
    state = r.engine.supervisor.state
    if isinstance(state, Reconnecting):
        assert state.cause is cause and state.delay == delay
    else:
        assert isinstance(state, Error) and "HTTP 401" in state.reason
    assert causes(r) == ["user_restart", cause.value]
    await r.stop()


@pytest.mark.e2e
async def test_port_closed_is_connection_lost(rig: Callable[..., asyncio.Future[Rig]]) -> None:
    r = await rig()
    await r.simulator.close_port()
    r.simulator.inject(Fault.DROP)
    await wait_state(r.engine, lambda s: isinstance(s, Reconnecting))
    r.engine.supervisor.restart_now()
    await wait_state(r.engine, lambda s: isinstance(s, Reconnecting) and s.attempt == 3)
    state = r.engine.supervisor.state
    assert isinstance(state, Reconnecting) and state.cause is Cause.CONNECTION_LOST
    assert "refused" in state.ending.message.lower() or "connect" in state.ending.message.lower()
    await r.simulator.open_port()
    r.engine.supervisor.restart_now()
    await r.connected(3)
    await r.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("fault", [Fault.MALFORMED_JSON, Fault.UNKNOWN_EVENT])
async def test_bad_server_events_are_survived(rig: Callable[..., asyncio.Future[Rig]], fault: Fault,
                                              caplog: pytest.LogCaptureFixture) -> None:
    r = await rig()
    r.simulator.inject(fault)
    r.simulator.inject(Fault.UNKNOWN_EVENT)
    # The session stays up: a later expiry is still classified normally.
    r.simulator.inject(Fault.EXPIRE_NOW)
    await wait_state(r.engine, lambda s: isinstance(s, Reconnecting))
    state = r.engine.supervisor.state
    assert isinstance(state, Reconnecting) and state.cause is Cause.SESSION_EXPIRED
    if fault is Fault.MALFORMED_JSON:
        assert any("malformed server event" in m for m in caplog.messages)
    await r.stop()
