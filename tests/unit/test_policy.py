"""The reconnect policy as a table: each ending and situation, each command and timer, in and out of next_step.

No asyncio and no clock: every event carries its own time, and every expected effect is written out.
The clock-driven tests of the same rules over real tasks are in test_supervisor.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ava_tray.policy import (
    RULES,
    CancelCountdown,
    CancelSession,
    Choice,
    CompleteLastRecord,
    DeadlineReached,
    Effect,
    Event,
    Finish,
    NetworkChanged,
    PolicyState,
    Publish,
    ReconnectDelays,
    RecordEnding,
    RestartRequested,
    RolledOver,
    RunCancelled,
    RunSession,
    ServerAnswers,
    SessionCancelled,
    SessionEnded,
    SessionReady,
    SleepUntil,
    SpeakingChanged,
    Started,
    StartProbing,
    StopRequested,
    UnexpectedEvent,
    WokeFromSleep,
    next_step,
)
from ava_tray.realtime.ending import Cause, SessionEnding
from ava_tray.states import Connected, Connecting, Error, Reconnecting, Stopped, SupervisorState, WaitingForNetwork

NOW, WALL = 1000.0, 1_700_000_000.0
"""When the session ends (monotonic, wall); session 1 was ready 50 s before."""
LATER = NOW + 7.0

EXPIRED = SessionEnding(Cause.SESSION_EXPIRED, "Session expired (60-minute limit reached)", 1001)
LOST = SessionEnding(Cause.CONNECTION_LOST, "Connection lost: no close frame", 1006)
UNREACHABLE = SessionEnding(Cause.CONNECTION_LOST, "Connection lost: the server refused the connection",
                            unreachable=True)
OTHER = SessionEnding(Cause.OTHER, "Unexpected error: HTTP 500")
FATAL = SessionEnding(Cause.FATAL, "The API key was rejected.", 3000)


def connected(**changes: object) -> PolicyState:
    """Session 1, connected for 50 s, online, no failures before it."""
    state = PolicyState(public=Connected(attempt=1, since=NOW - 50), started=True, attempt=1, connected_at=NOW - 50)
    return replace(state, **changes)  # type: ignore[arg-type]


def ended(ending: SessionEnding, draw: float = 0.5) -> SessionEnded:
    return SessionEnded(ending, NOW, WALL, draw)


def recorded(ending: SessionEnding, delay: float | None, *, session_s: float = 50.0, since: float | None = WALL,
             attempt: int = 1, ongoing: bool = True) -> RecordEnding:
    return RecordEnding(ending, at=WALL, attempt=attempt, delay_s=delay, session_s=session_s,
                        unavailable_since=since, ongoing=ongoing)


def countdown(ending: SessionEnding, delay: float, *, probe: bool = False, session_s: float = 50.0,
              since: float = WALL, attempt: int = 2) -> tuple[SupervisorState, tuple[Effect, ...]]:
    state = Reconnecting(ending=ending, attempt=attempt, deadline=NOW + delay, delay=delay)
    effects: tuple[Effect, ...] = (recorded(ending, delay, session_s=session_s, since=since, attempt=attempt - 1),
                                   Publish(state), SleepUntil(NOW + delay))
    return state, effects + ((StartProbing(),) if probe else ())


def reconnect_at_once(ending: SessionEnding) -> tuple[SupervisorState, tuple[Effect, ...]]:
    state = Connecting(attempt=2, since=NOW)
    return state, (recorded(ending, 0.0), Publish(state), RunSession(2))


STOP = (Stopped(), (recorded(Choice.STOP.ending, 0.0, since=None, ongoing=False), Publish(Stopped()), Finish()))
NEVER_CONNECTED = PolicyState(public=Connecting(attempt=1, since=NOW - 4), started=True, attempt=1,
                              unavailable_since=NOW - 4, unavailable_since_wall=WALL - 4)
SECOND_IN_A_CHAIN = PolicyState(public=Connecting(attempt=2, since=NOW - 3), started=True, attempt=2,
                                failures_in_row=1, unavailable_since=NOW - 20, unavailable_since_wall=WALL - 20,
                                record_pending=True)


# (state, event) -> (published state, effects), failures in a row after it
ENDINGS = [
    pytest.param(connected(), ended(EXPIRED), countdown(EXPIRED, 3.0), 0, id="expired: 3 s"),
    pytest.param(connected(failures_in_row=3), ended(EXPIRED), countdown(EXPIRED, 3.0), 0,
                 id="expired: resets the back-off"),
    pytest.param(connected(), ended(LOST), countdown(LOST, 5.0), 1, id="lost: 5 s"),
    pytest.param(connected(failures_in_row=2, connected_at=NOW - 5), ended(LOST),
                 countdown(LOST, 20.0, session_s=5.0), 3, id="lost: third in a row doubles twice"),
    pytest.param(connected(failures_in_row=2, connected_at=NOW - 5), ended(LOST, draw=0.0),
                 countdown(LOST, 15.0, session_s=5.0), 3, id="lost: jitter down to -25 %"),
    pytest.param(connected(failures_in_row=4, connected_at=NOW - 60), ended(LOST),
                 countdown(LOST, 5.0, session_s=60.0), 1, id="lost: a stable session resets the back-off"),
    pytest.param(connected(), ended(UNREACHABLE), countdown(UNREACHABLE, 5.0, probe=True), 1,
                 id="lost, unreachable: probe during the countdown"),
    pytest.param(connected(), ended(OTHER), countdown(OTHER, 10.0), 1, id="other: 10 s"),
    pytest.param(connected(failures_in_row=9, connected_at=NOW - 5), ended(OTHER),
                 countdown(OTHER, 300.0, session_s=5.0), 10, id="other: capped at max_backoff"),
    pytest.param(connected(), ended(FATAL),
                 (Error(ending=FATAL, attempt=1), (recorded(FATAL, None), Publish(Error(ending=FATAL, attempt=1)))),
                 1, id="fatal: waits for the user"),
    pytest.param(connected(restart_requested=True), ended(FATAL),
                 (Connecting(attempt=2, since=NOW), (recorded(FATAL, None), Publish(Error(ending=FATAL, attempt=1)),
                                                     Publish(Connecting(attempt=2, since=NOW)), RunSession(2))),
                 1, id="fatal, restart asked for meanwhile: at once"),
    pytest.param(connected(restart_requested=True), ended(LOST), reconnect_at_once(LOST), 1,
                 id="lost, restart asked for meanwhile: at once"),
    pytest.param(connected(online=False), ended(LOST),
                 (WaitingForNetwork(ending=LOST, attempt=2),
                  (recorded(LOST, 5.0), Publish(WaitingForNetwork(ending=LOST, attempt=2)))),
                 1, id="lost while offline: wait for the network"),
    pytest.param(connected(online=False), ended(UNREACHABLE),
                 (WaitingForNetwork(ending=UNREACHABLE, attempt=2),
                  (recorded(UNREACHABLE, 5.0), Publish(WaitingForNetwork(ending=UNREACHABLE, attempt=2)))),
                 1, id="unreachable while offline: no probe"),
    pytest.param(connected(restart_requested=True), SessionCancelled(NOW, WALL),
                 reconnect_at_once(Choice.RESTART.ending), 0, id="restart: at once, not a failure"),
    pytest.param(connected(restart_requested=True, failures_in_row=2, connected_at=NOW - 5),
                 SessionCancelled(NOW, WALL),
                 (Connecting(attempt=2, since=NOW),
                  (recorded(Choice.RESTART.ending, 0.0, session_s=5.0), Publish(Connecting(attempt=2, since=NOW)),
                   RunSession(2))),
                 2, id="restart: keeps the failures in a row"),
    pytest.param(connected(), SessionCancelled(NOW, WALL), reconnect_at_once(Choice.RESTART.ending), 0,
                 id="cancelled without asking: a restart"),
    pytest.param(connected(stop_requested=True), SessionCancelled(NOW, WALL), STOP, 0, id="stop"),
    pytest.param(connected(stop_requested=True), ended(LOST), STOP, 0, id="stop: wins over the session's own end"),
    pytest.param(NEVER_CONNECTED, ended(OTHER), countdown(OTHER, 10.0, session_s=0.0, since=WALL - 4), 1,
                 id="never connected: the outage began at the start"),
    pytest.param(SECOND_IN_A_CHAIN, ended(OTHER), countdown(OTHER, 20.0, session_s=0.0, since=WALL - 20, attempt=3), 2,
                 id="never connected again: the outage keeps its beginning"),
    pytest.param(connected(), ended(SessionEnding(Cause.ROLLOVER, "a runner should not say this")),
                 countdown(SessionEnding(Cause.ROLLOVER, "a runner should not say this"), 10.0), 1,
                 id="a cause the table does not list: read as other"),
]


@pytest.mark.parametrize(("state", "event", "expected", "failures"), ENDINGS)
def test_what_follows_each_ending(state: PolicyState, event: Event,
                                  expected: tuple[SupervisorState, tuple[Effect, ...]], failures: int) -> None:
    after, effects = next_step(state, event)
    assert (after.public, effects) == expected
    assert after.failures_in_row == failures
    assert after.restart_requested is False or isinstance(after.public, Stopped)


COUNTING_DOWN = PolicyState(public=Reconnecting(ending=LOST, attempt=2, deadline=NOW + 5, delay=5.0), started=True,
                            attempt=1, failures_in_row=1, unavailable_since=NOW, unavailable_since_wall=WALL,
                            record_pending=True)
OFFLINE = replace(COUNTING_DOWN, public=WaitingForNetwork(ending=LOST, attempt=2), online=False)
IN_ERROR = replace(COUNTING_DOWN, public=Error(ending=FATAL, attempt=1))
CONNECTED = connected()
CONNECTING = PolicyState(public=Connecting(attempt=2, since=NOW - 1), started=True, attempt=2, failures_in_row=1,
                         unavailable_since=NOW - 6, unavailable_since_wall=WALL - 6, record_pending=True)
NOT_STARTED = PolicyState(public=Connecting(attempt=1, since=NOW))
STOPPED = replace(COUNTING_DOWN, public=Stopped(), stop_requested=True, record_pending=False)

NEXT_SESSION = (Connecting(attempt=2, since=LATER), (Publish(Connecting(attempt=2, since=LATER)), RunSession(2)))
LEAVE_COUNTDOWN = (NEXT_SESSION[0], (CancelCountdown(), *NEXT_SESSION[1]))
STOP_WAITING = (Stopped(), (CompleteLastRecord(None), Publish(Stopped()), Finish()))


def unchanged(state: PolicyState) -> tuple[SupervisorState, tuple[Effect, ...]]:
    return state.public, ()


# (state, event) -> (published state, effects)
TRANSITIONS = [
    pytest.param(NOT_STARTED, Started(NOW, WALL), (NOT_STARTED.public, (RunSession(1),)),
                 id="start: session 1 (already shown as connecting)"),
    pytest.param(replace(NOT_STARTED, stop_requested=True), Started(NOW, WALL),
                 (Stopped(), (Publish(Stopped()), Finish())), id="start after stop: stopped, no session"),
    pytest.param(NOT_STARTED, StopRequested(), unchanged(NOT_STARTED), id="stop before the start: remembered"),
    pytest.param(NOT_STARTED, RestartRequested(NOW), unchanged(NOT_STARTED), id="restart before the start: ignored"),
    pytest.param(CONNECTING, SessionReady(2, NOW, WALL + 3600),
                 (Connected(attempt=2, since=NOW, expires_at=WALL + 3600),
                  (CompleteLastRecord(6.0), Publish(Connected(attempt=2, since=NOW, expires_at=WALL + 3600)))),
                 id="ready: the last record gets its unavailable time"),
    pytest.param(CONNECTING, SpeakingChanged(2, True), unchanged(CONNECTING), id="speaking before ready: ignored"),
    pytest.param(CONNECTED, SpeakingChanged(1, True),
                 (Connected(attempt=1, since=NOW - 50, speaking=True),
                  (Publish(Connected(attempt=1, since=NOW - 50, speaking=True)),)), id="speaking"),
    pytest.param(CONNECTED, SpeakingChanged(7, True), unchanged(CONNECTED), id="a finished session's event: ignored"),
    pytest.param(CONNECTED, RolledOver(1, NOW, WALL, WALL + 3600),
                 (Connected(attempt=1, since=NOW, expires_at=WALL + 3600, rollovers=1),
                  (RecordEnding(Choice.ROLLOVER.ending, at=WALL, attempt=1, delay_s=0.0, session_s=50.0,
                                unavailable_since=None, unavailable_s=0.0),
                   Publish(Connected(attempt=1, since=NOW, expires_at=WALL + 3600, rollovers=1)))),
                 id="rollover: recorded with no time unavailable"),
    pytest.param(CONNECTED, RestartRequested(NOW), (CONNECTED.public, (CancelSession(),)),
                 id="restart: cancel the session"),
    pytest.param(CONNECTED, WokeFromSleep(NOW), (CONNECTED.public, (CancelSession(),)), id="woke: a restart"),
    pytest.param(CONNECTING, WokeFromSleep(NOW), unchanged(CONNECTING), id="woke while connecting: ignored"),
    pytest.param(CONNECTED, StopRequested(), (CONNECTED.public, (CancelSession(),)), id="stop: cancel the session"),
    pytest.param(CONNECTED, NetworkChanged(False, NOW), unchanged(CONNECTED),
                 id="network down: the session is left alone"),
    pytest.param(CONNECTED, DeadlineReached(NOW), unchanged(CONNECTED), id="a countdown's leftover: ignored"),
    pytest.param(COUNTING_DOWN, DeadlineReached(NOW + 5), (Connecting(attempt=2, since=NOW + 5),
                 (CancelCountdown(), Publish(Connecting(attempt=2, since=NOW + 5)), RunSession(2))),
                 id="countdown: deadline"),
    pytest.param(COUNTING_DOWN, DeadlineReached(NOW + 4.999), (COUNTING_DOWN.public, (SleepUntil(NOW + 5),)),
                 id="countdown: woke early, sleep the rest"),
    pytest.param(COUNTING_DOWN, ServerAnswers(LATER), LEAVE_COUNTDOWN, id="countdown: the server answers"),
    pytest.param(COUNTING_DOWN, RestartRequested(LATER), LEAVE_COUNTDOWN, id="countdown: restart now"),
    pytest.param(COUNTING_DOWN, WokeFromSleep(LATER), LEAVE_COUNTDOWN, id="countdown: woke from sleep"),
    pytest.param(COUNTING_DOWN, NetworkChanged(False, LATER),
                 (WaitingForNetwork(ending=LOST, attempt=2),
                  (CancelCountdown(), Publish(WaitingForNetwork(ending=LOST, attempt=2)))),
                 id="countdown: network down"),
    pytest.param(COUNTING_DOWN, NetworkChanged(True, LATER), unchanged(COUNTING_DOWN), id="countdown: still online"),
    pytest.param(COUNTING_DOWN, StopRequested(), (Stopped(), (CancelCountdown(), *STOP_WAITING[1])),
                 id="countdown: stop"),
    pytest.param(OFFLINE, NetworkChanged(True, LATER), NEXT_SESSION, id="offline: back up, connect at once"),
    pytest.param(OFFLINE, RestartRequested(LATER), NEXT_SESSION, id="offline: restart now"),
    pytest.param(OFFLINE, WokeFromSleep(LATER), unchanged(OFFLINE), id="offline: woke, still offline"),
    pytest.param(OFFLINE, DeadlineReached(LATER), unchanged(OFFLINE), id="offline: no countdown"),
    pytest.param(OFFLINE, StopRequested(), STOP_WAITING, id="offline: stop"),
    pytest.param(IN_ERROR, RestartRequested(LATER), NEXT_SESSION, id="error: restart"),
    pytest.param(IN_ERROR, NetworkChanged(False, LATER), NEXT_SESSION, id="error: a network change, one more try"),
    pytest.param(IN_ERROR, WokeFromSleep(LATER), unchanged(IN_ERROR), id="error: woke, still waits for the user"),
    pytest.param(IN_ERROR, ServerAnswers(LATER), unchanged(IN_ERROR), id="error: no probing"),
    pytest.param(IN_ERROR, StopRequested(), STOP_WAITING, id="error: stop"),
    pytest.param(COUNTING_DOWN, RunCancelled(), STOP_WAITING, id="run cancelled"),
    pytest.param(STOPPED, RestartRequested(LATER), unchanged(STOPPED), id="stopped: restart ignored"),
    pytest.param(STOPPED, SessionEnded(LOST, LATER, WALL), unchanged(STOPPED), id="stopped: a late ending ignored"),
    pytest.param(STOPPED, Started(LATER, WALL), (Stopped(), (Finish(),)), id="stopped: run() again returns"),
]


@pytest.mark.parametrize(("state", "event", "expected"), TRANSITIONS)
def test_commands_and_timers(state: PolicyState, event: Event,
                             expected: tuple[SupervisorState, tuple[Effect, ...]]) -> None:
    after, effects = next_step(state, event)
    assert (after.public, effects) == expected


@pytest.mark.parametrize(("state", "event"), [
    pytest.param(COUNTING_DOWN, ended(LOST), id="an ending with no session"),
    pytest.param(COUNTING_DOWN, SessionReady(1, NOW), id="ready after the session ended"),
    pytest.param(CONNECTING, RolledOver(2, NOW, WALL), id="a rollover before ready"),
    pytest.param(CONNECTED, Started(NOW, WALL), id="started twice"),
    pytest.param(OFFLINE, SessionCancelled(NOW, WALL), id="a cancelled session with none running"),
])
def test_an_event_with_no_rule_raises_and_changes_nothing(state: PolicyState, event: Event) -> None:
    with pytest.raises(UnexpectedEvent) as raised:
        next_step(state, event)
    assert raised.value.state is state and raised.value.event is event


def test_the_commands_set_the_flags_the_ending_reads() -> None:
    restarting, _ = next_step(CONNECTED, RestartRequested(NOW))
    assert restarting.restart_requested and next_step(restarting, RestartRequested(NOW)) == (restarting, ())
    offline, _ = next_step(CONNECTED, NetworkChanged(False, NOW))
    assert not offline.online
    started, _ = next_step(NOT_STARTED, Started(NOW, WALL))
    assert (started.attempt, started.unavailable_since, started.unavailable_since_wall) == (1, NOW, WALL)
    ready, _ = next_step(CONNECTING, SessionReady(2, NOW))
    assert (ready.unavailable_since, ready.record_pending, ready.connected_at) == (None, False, NOW)


def test_the_table_has_a_rule_for_each_way_a_session_ends() -> None:
    server = {Cause.SESSION_EXPIRED, Cause.CONNECTION_LOST, Cause.OTHER, Cause.FATAL}
    assert set(RULES) == server | {Choice.RESTART, Choice.STOP, Choice.PAUSE}
    assert {choice.value for choice in Choice} | server == set(Cause), "every history cause is one or the other"
    assert [rule.retried for rule in RULES.values()] == [True, True, True, False, True, False, False]


@pytest.mark.parametrize(("cause", "seconds"), [
    (Cause.SESSION_EXPIRED, 3.0), (Cause.CONNECTION_LOST, 5.0), (Cause.OTHER, 10.0), (Cause.USER_RESTART, 0.0),
    (Cause.FATAL, 10.0), (Cause.ROLLOVER, 10.0), (Cause.STOPPED, 10.0),
])
def test_base_delays_read_from_the_table_as_before(cause: Cause, seconds: float) -> None:
    assert ReconnectDelays().base_for(cause) == seconds


# -- a pause (today's budget is spent) ------------------------------------------------------------

SPENT = "today's budget of $2.00 is spent"


def test_a_pause_ends_the_session_records_it_and_opens_none() -> None:
    from ava_tray.policy import PauseRequested
    from ava_tray.states import Paused

    asked, effects = next_step(connected(), PauseRequested(SPENT, NOW, WALL))
    assert effects == (CancelSession(),) and isinstance(asked.public, Connected)
    paused, effects = next_step(asked, SessionCancelled(NOW, WALL))
    assert paused.public == Paused(SPENT)
    assert effects == (RecordEnding(Choice.PAUSE.ending, at=WALL, attempt=1, delay_s=None, session_s=50.0,
                                    unavailable_since=None), Publish(Paused(SPENT)))
    assert not any(isinstance(e, RunSession) for e in effects), "no session opens while paused"
    for event in (WokeFromSleep(LATER), DeadlineReached(LATER), ServerAnswers(LATER), NetworkChanged(False, LATER)):
        after, nothing = next_step(paused, event)
        assert nothing == () and after.public == Paused(SPENT), event


def test_a_pause_from_a_countdown_or_an_error_and_the_resume() -> None:
    from ava_tray.policy import PauseRequested, ResumeRequested
    from ava_tray.states import Paused

    counting = connected(public=Reconnecting(EXPIRED, 2, NOW + 3, 3.0), record_pending=True,
                         unavailable_since=NOW, unavailable_since_wall=WALL, connected_at=None)
    paused, effects = next_step(counting, PauseRequested(SPENT, NOW, WALL))
    assert effects == (CancelCountdown(), CompleteLastRecord(None), Publish(Paused(SPENT)))
    resumed, effects = next_step(paused, ResumeRequested(LATER))
    assert resumed.public == Connecting(attempt=2, since=LATER)
    assert effects == (Publish(Connecting(attempt=2, since=LATER)), RunSession(2))
    failed = connected(public=Error(FATAL, 1), connected_at=None)
    assert next_step(failed, PauseRequested(SPENT, NOW, WALL))[0].public == Paused(SPENT)
    assert next_step(connected(), ResumeRequested(NOW)) == (connected(), ()), "nothing to resume"


def test_paused_before_the_first_session_stays_paused_at_start() -> None:
    from ava_tray.policy import PauseRequested
    from ava_tray.states import Paused

    before = PolicyState(public=Connecting(attempt=1, since=NOW))
    asked, effects = next_step(before, PauseRequested(SPENT, NOW, WALL))
    assert effects == ()
    started, effects = next_step(asked, Started(NOW, WALL))
    assert started.public == Paused(SPENT) and effects == (Publish(Paused(SPENT)),)
    assert started.attempt == 0 and started.unavailable_since is None
