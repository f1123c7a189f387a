"""The reconnect policy, driven by a manual clock so minutes of countdown take no time.

The sessions here are scripted stand-ins for `RealtimeSession.run` (the policy's only contract is
"run a session, return how it ended"); real sessions against the simulator are in test_fault_matrix.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ava_tray.clock import ManualClock
from ava_tray.history import DAY, Outage, ReconnectHistory, availability, outages
from ava_tray.realtime.ending import Cause, SessionEnding
from ava_tray.supervisor import (
    Connected,
    Connecting,
    Error,
    ReconnectDelays,
    Reconnecting,
    SessionContext,
    Stopped,
    Supervisor,
    SupervisorState,
    WaitingForNetwork,
    reconnect_delay_for,
)

EXPIRED = SessionEnding(Cause.SESSION_EXPIRED, "Session expired (60-minute limit reached)", 1001)
LOST = SessionEnding(Cause.CONNECTION_LOST, "Connection lost: no close frame", 1006)
OTHER = SessionEnding(Cause.OTHER, "Unexpected error: HTTP 500")
FATAL = SessionEnding(Cause.FATAL, "The API key was rejected.", 3000)


class ScriptedSessions:
    """Stand-in sessions: each connects (or not), lives until told to end, then returns an ending."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.started = 0
        self.current: asyncio.Future[SessionEnding] | None = None
        self.connect = True

    async def run(self, context: SessionContext) -> SessionEnding:
        self.started += 1
        self.current = asyncio.get_running_loop().create_future()
        if self.connect:
            context.ready(self.clock.wall() + 3600)
        return await self.current

    def end(self, ending: SessionEnding) -> None:
        assert self.current is not None and not self.current.done()
        self.current.set_result(ending)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


class Harness:
    def __init__(self, tmp_path: Path, delays: ReconnectDelays | None = None) -> None:
        self.clock = ManualClock()
        self.sessions = ScriptedSessions(self.clock)
        self.history = ReconnectHistory(tmp_path / "history.jsonl")
        self.supervisor = Supervisor(self.sessions.run, delays=delays, clock=self.clock, history=self.history,
                                     rng=random.Random(7))
        self.states: list[SupervisorState] = []
        self.supervisor.subscribe(self.states.append)
        self.task = asyncio.ensure_future(self.supervisor.run())

    @property
    def state(self) -> SupervisorState:
        return self.supervisor.state

    async def connected(self, count: int) -> None:
        await until(lambda: self.sessions.started == count and isinstance(self.state, Connected))

    async def reconnecting(self) -> Reconnecting:
        await until(lambda: isinstance(self.state, Reconnecting) and self.clock.sleeping > 0)
        assert isinstance(self.state, Reconnecting)
        return self.state

    async def close(self) -> None:
        self.supervisor.stop()
        await asyncio.wait_for(self.task, 2)


@pytest.fixture
def harness(tmp_path: Path) -> Callable[..., Awaitable[Harness]]:
    made: list[Harness] = []

    async def make(**kwargs: ReconnectDelays) -> Harness:
        h = Harness(tmp_path, **kwargs)
        made.append(h)
        return h

    return make


@pytest.mark.parametrize(("ending", "delay"), [(EXPIRED, 3.0), (LOST, 5.0), (OTHER, 10.0)])
async def test_seed_delays_by_cause(harness: Callable[..., Awaitable[Harness]], ending: SessionEnding,
                                    delay: float) -> None:
    h = await harness()
    await h.connected(1)
    h.sessions.end(ending)
    state = await h.reconnecting()
    assert state.delay == delay
    assert state.deadline == pytest.approx(h.clock.monotonic() + delay)
    assert state.attempt == 2
    h.clock.advance(delay - 0.01)
    await asyncio.sleep(0)
    assert isinstance(h.state, Reconnecting), "reconnected before the deadline"
    h.clock.advance(0.02)
    await h.connected(2)
    await h.close()


async def test_states_run_connecting_connected_reconnecting_and_stop(
        harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.sessions.end(EXPIRED)
    await h.reconnecting()
    await h.close()
    kinds = [type(s) for s in h.states]
    assert kinds[:3] == [Connected, Reconnecting, Stopped] or kinds[:2] == [Connected, Reconnecting]
    assert isinstance(h.state, Stopped)
    assert h.sessions.started == 1, "stop() must not start another session"


async def test_failures_in_a_row_back_off_and_reset_after_a_stable_session(
        harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.sessions.connect = False
    h.sessions.end(LOST)
    delays = []
    for attempt in range(2, 8):
        state = await h.reconnecting()
        delays.append(state.delay)
        h.clock.advance(state.delay)
        await until(lambda n=attempt: h.sessions.started == n)
        h.sessions.end(LOST)
    assert delays[0] == 5.0
    for earlier, later in itertools.pairwise(delays):
        assert later > earlier * 1.4 or later >= 225.0, delays
    assert max(delays) <= 300.0
    state = await h.reconnecting()
    h.clock.advance(state.delay)
    h.sessions.connect = True
    await h.connected(8)
    h.clock.advance(120)  # the session stays up for two minutes
    h.sessions.end(LOST)
    assert (await h.reconnecting()).delay == 5.0, "back to the base delay after a stable session"
    await h.close()


async def test_expiry_of_short_sessions_never_backs_off(harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    for number in range(1, 6):
        await h.connected(number)
        h.clock.advance(5)
        h.sessions.end(EXPIRED)
        state = await h.reconnecting()
        assert state.delay == 3.0
        h.clock.advance(3)
    await h.close()


async def test_fatal_waits_for_the_user_then_restart_now(harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.sessions.end(FATAL)
    await until(lambda: isinstance(h.state, Error))
    h.clock.advance(3600)
    for _ in range(20):
        await asyncio.sleep(0)
    assert h.sessions.started == 1, "a fatal cause must not be retried automatically"
    assert isinstance(h.state, Error) and "rejected" in h.state.reason
    h.supervisor.restart_now()
    await h.connected(2)
    await h.close()


async def test_restart_now_skips_the_countdown(harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.sessions.end(OTHER)
    await h.reconnecting()
    h.supervisor.restart_now()
    await h.connected(2)
    assert h.clock.monotonic() == 1000.0, "no time passed"
    await h.close()


async def test_restart_now_while_connected_opens_a_fresh_session(
        harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.supervisor.restart_now()
    await h.connected(2)
    assert h.history.records[-1].cause == Cause.USER_RESTART.value
    await h.close()


async def test_history_records_each_ending_with_unavailable_time(
        harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.clock.advance(42)
    h.sessions.end(EXPIRED)
    await h.reconnecting()
    h.clock.advance(3)
    await h.connected(2)
    record = h.history.records[-1]
    assert (record.cause, record.close_code, record.delay_s, record.session_s, record.attempt) == \
        ("session_expired", 1001, 3.0, 42.0, 1)
    assert record.unavailable_s == pytest.approx(3.0)
    await h.close()
    reloaded = ReconnectHistory(h.history.path)
    assert [r.cause for r in reloaded.records] == ["session_expired", "stopped"]
    assert reloaded.records[0].unavailable_s == pytest.approx(3.0)


async def test_a_crashing_runner_is_classified_not_fatal_to_the_app(
        harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    assert h.sessions.current is not None
    h.sessions.current.set_exception(RuntimeError("bug in a session"))
    state = await h.reconnecting()
    assert state.cause is Cause.OTHER and "bug in a session" in state.ending.message
    await h.close()


async def test_stop_during_connecting_cancels_the_session(harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    h.sessions.connect = False
    await until(lambda: h.sessions.started == 1 and isinstance(h.state, Connecting))
    await h.close()
    assert h.sessions.current is not None and h.sessions.current.cancelled()


def test_delay_policy_caps_and_jitters() -> None:
    delays = ReconnectDelays()
    rng = random.Random(1)
    assert reconnect_delay_for(Cause.SESSION_EXPIRED, 0, delays, rng) == 3.0
    assert reconnect_delay_for(Cause.CONNECTION_LOST, 1, delays, rng) == 5.0
    assert reconnect_delay_for(Cause.OTHER, 1, delays, rng) == 10.0
    assert 225.0 <= reconnect_delay_for(Cause.OTHER, 30, delays, rng) <= 300.0
    spread = {reconnect_delay_for(Cause.CONNECTION_LOST, 3, delays, rng) for _ in range(20)}
    assert len(spread) > 10 and all(15 <= d <= 25 for d in spread)


async def test_network_down_pauses_the_countdown_and_back_up_connects_at_once(
        harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.supervisor.network_changed(False)
    h.sessions.end(LOST)
    await until(lambda: isinstance(h.state, WaitingForNetwork))
    h.clock.advance(600)  # far past any deadline: still waiting, no attempt made
    for _ in range(20):
        await asyncio.sleep(0)
    assert isinstance(h.state, WaitingForNetwork) and h.sessions.started == 1
    h.supervisor.network_changed(True)
    await h.connected(2)
    (lost,) = h.history.records
    assert len(lost.offline) == 1 and lost.offline[0][1] - lost.offline[0][0] == pytest.approx(600.0)
    assert h.history.offline_since is None
    assert ReconnectHistory(h.history.path).records[0].offline == lost.offline  # kept on disk too
    await h.close()


async def test_network_loss_during_a_countdown_pauses_it(harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.sessions.end(OTHER)
    await h.reconnecting()
    h.supervisor.network_changed(False)
    await until(lambda: isinstance(h.state, WaitingForNetwork))
    h.supervisor.network_changed(True)
    await h.connected(2)
    await h.close()


async def test_waking_from_sleep_reconnects_at_once(harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.clock.jump_wall(3600)  # the laptop slept for an hour
    h.clock.advance(2.5)
    await h.connected(2)
    assert h.history.records[-1].cause == "user_restart"
    await h.close()


async def test_an_unreachable_server_is_probed_and_connected_as_soon_as_it_answers(tmp_path: Path) -> None:
    clock = ManualClock()
    sessions = ScriptedSessions(clock)
    reachable = False
    probes = 0

    async def probe() -> bool:
        nonlocal probes
        probes += 1
        return reachable

    supervisor = Supervisor(sessions.run, clock=clock, reachability=probe)
    task = asyncio.ensure_future(supervisor.run())
    await until(lambda: isinstance(supervisor.state, Connected))
    sessions.end(SessionEnding(Cause.CONNECTION_LOST, "refused", unreachable=True))
    await until(lambda: isinstance(supervisor.state, Reconnecting))
    for _ in range(3):
        await until(lambda: clock.sleeping >= 3)  # wake watch, countdown, probe
        clock.advance(1.0)
        await until(lambda n=probes: probes > n)
    assert sessions.started == 1
    reachable = True
    await until(lambda: clock.sleeping >= 3)
    clock.advance(1.0)
    await until(lambda: sessions.started == 2)
    assert clock.monotonic() < 1000.0 + 5.0, "connected before the 5 s countdown ended"
    supervisor.stop()
    await task


async def test_rollover_is_recorded_with_no_time_unavailable(harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    contexts: list[SessionContext] = []
    original = h.sessions.run

    async def capture(context: SessionContext) -> SessionEnding:
        contexts.append(context)
        return await original(context)

    await h.connected(1)
    h.supervisor.use_runner(capture)
    h.supervisor.restart_now()
    await h.connected(2)
    h.clock.advance(30)
    contexts[0].rolled_over(h.clock.wall() + 3600)
    record = h.history.records[-1]
    assert (record.cause, record.unavailable_s, record.session_s) == ("rollover", 0.0, 30.0)
    assert isinstance(h.state, Connected) and h.sessions.started == 2
    await h.close()


async def test_a_network_event_leaves_a_live_session_alone(harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    await h.connected(1)
    h.supervisor.network_changed(False)
    h.supervisor.network_changed(True)
    h.supervisor.network_changed(False)
    for _ in range(20):
        await asyncio.sleep(0)
    assert isinstance(h.state, Connected) and h.sessions.started == 1, "the session was not cut"
    assert h.history.records == []
    h.sessions.end(LOST)  # the network really was gone: the session ends by itself
    await until(lambda: isinstance(h.state, WaitingForNetwork))
    h.supervisor.network_changed(True)
    await h.connected(2)
    await h.close()


async def test_a_failing_transcript_listener_does_not_end_the_session(
        harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    contexts: list[SessionContext] = []
    original = h.sessions.run

    async def capture(context: SessionContext) -> SessionEnding:
        contexts.append(context)
        return await original(context)

    await h.connected(1)
    h.supervisor.use_runner(capture)
    h.supervisor.restart_now()
    await h.connected(2)

    def broken(role: str, text: str) -> None:
        raise BrokenPipeError("the terminal went away")

    h.supervisor.subscribe_transcript(broken)
    contexts[0].transcript("user", "hello")  # must not raise into the session
    assert isinstance(h.state, Connected)
    await h.close()


async def test_time_never_connected_since_start_counts_as_unavailable(
        harness: Callable[..., Awaitable[Harness]]) -> None:
    h = await harness()
    h.sessions.connect = False  # no microphone: every attempt fails before it is configured
    started = h.clock.wall()
    await until(lambda: h.sessions.started == 1)
    h.clock.advance(4)
    h.sessions.end(OTHER)
    h.clock.advance((await h.reconnecting()).delay)
    await until(lambda: h.sessions.started == 2)
    h.clock.advance(4)
    h.sessions.end(OTHER)
    countdown = await h.reconnecting()
    h.clock.advance(1)
    now = h.clock.wall()
    assert outages(h.history.records, now, ongoing=h.history.ongoing) == [
        Outage(started, now, h.history.records[-1].id, ongoing=True)]
    assert availability(h.history.records, now, ongoing=h.history.ongoing) == pytest.approx(1 - (now - started) / DAY)

    h.sessions.connect = True
    h.clock.advance(countdown.deadline - h.clock.monotonic())
    await h.connected(3)
    back = h.clock.wall()
    last = h.history.records[-1]
    assert last.unavailable_s == pytest.approx(back - started, abs=1e-3), "the outage began when AVA started"
    assert h.history.ongoing is None
    assert outages(h.history.records, back) == [Outage(started, pytest.approx(back), last.id)]
    await h.close()
    assert ReconnectHistory(h.history.path).records[-2].unavailable_since == started, "kept in the file"
