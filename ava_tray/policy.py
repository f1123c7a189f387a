"""The reconnect policy as data: what follows each ending (`RULES`) and one pure function, `next_step`.

Nothing here awaits, sleeps, draws a random number or reads a clock: time and chance come in with each
event, and what to do comes out as effects (data) that `ava_tray.supervisor.Supervisor` carries out.
An event with no rule in the current state raises `UnexpectedEvent` and leaves the state as it was.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final, Literal, assert_never

from ava_tray.realtime.ending import Cause, SessionEnding
from ava_tray.states import (
    Connected,
    Connecting,
    Error,
    Paused,
    Reconnecting,
    Stopped,
    SupervisorState,
    WaitingForNetwork,
)

BaseDelay = Literal["session_expired", "connection_lost", "other"]
"""Which of `ReconnectDelays`' base delays a rule waits."""


@dataclass(frozen=True)
class ReconnectDelays:
    """Seconds before reconnecting, by cause; the seed's 3/5/10 s are the base."""

    session_expired: float = 3.0
    connection_lost: float = 5.0
    other: float = 10.0
    max_backoff: float = 300.0
    stable_after: float = 60.0
    jitter: float = 0.25

    def base(self, name: BaseDelay | None) -> float:
        """The seconds of one of the base delays; None (no wait) is 0."""
        match name:
            case None:
                return 0.0
            case "session_expired":
                return self.session_expired
            case "connection_lost":
                return self.connection_lost
            case "other":
                return self.other
            case _:
                assert_never(name)

    def base_for(self, cause: Cause) -> float:
        """The base delay after `cause`, by `RULES`; none after a restart, `other` after a cause not retried."""
        rule = RULES[Choice.RESTART] if cause is Cause.USER_RESTART else RULES.get(cause)
        return self.base(rule.delay) if rule is not None and rule.retried else self.other


def backoff_delay(base: float, failures_in_row: int, delays: ReconnectDelays, draw: float) -> float:
    """The base delay, doubled for each failure in a row after the first, with jitter, capped at `max_backoff`.

    `draw` is a uniform draw in [0, 1) that places the delay within ±`jitter` (the same arithmetic as
    `random.uniform`). The first failure waits exactly the base delay, as the seed did.
    """
    if failures_in_row <= 1 or base == 0:
        return base
    backoff = min(delays.max_backoff, base * 2 ** (failures_in_row - 1))
    low, high = 1 - delays.jitter, 1 + delays.jitter
    return float(min(delays.max_backoff, backoff * (low + (high - low) * draw)))


class Choice(enum.Enum):
    """What the user or AVA chose, as against how the server ended a session; the value is the history's cause."""

    RESTART = Cause.USER_RESTART
    """Start a fresh session now: the user asked, or the machine woke from sleep."""
    ROLLOVER = Cause.ROLLOVER
    """A fresh server session took over before the limit; the connection goes on."""
    STOP = Cause.STOPPED
    """AVA stops (Quit, Ctrl+C, new settings that need a new engine)."""
    PAUSE = Cause.PAUSED
    """AVA pauses until it is resumed (today's budget is spent)."""

    @property
    def ending(self) -> SessionEnding:
        """The choice as the history and the states record an ending."""
        return SessionEnding(self.value, _CHOICE_MESSAGES[self])


_CHOICE_MESSAGES: Final = {
    Choice.RESTART: "Restarted by the user",
    Choice.ROLLOVER: "Rolled over to a fresh session before the limit",
    Choice.STOP: "AVA was stopped",
    Choice.PAUSE: "Paused by AVA",
}


@dataclass(frozen=True)
class Rule:
    """What follows one kind of ending."""

    delay: BaseDelay | None
    """The base delay before the next attempt, a field of `ReconnectDelays`; None: no wait."""
    failure: bool
    """Counts as one more failure in a row (each doubles the next delay)."""
    resets_backoff: bool
    """The failures in a row start again from zero (a session also resets them by lasting `stable_after`)."""
    retried: bool
    """AVA reconnects by itself; if not, it waits for the user (fatal) or stops (stop)."""
    probe: bool
    """When the server could not be reached at all, probe it during the countdown and connect once it answers."""


RULES: Final[Mapping[Cause | Choice, Rule]] = MappingProxyType({
    # How the server ended the session (realtime/ending.py classifies it):
    Cause.SESSION_EXPIRED: Rule("session_expired", failure=False, resets_backoff=True,  retried=True,  probe=False),
    Cause.CONNECTION_LOST: Rule("connection_lost", failure=True,  resets_backoff=False, retried=True,  probe=True),
    Cause.OTHER:           Rule("other",           failure=True,  resets_backoff=False, retried=True,  probe=False),
    Cause.FATAL:           Rule(None,              failure=True,  resets_backoff=False, retried=False, probe=False),
    # What the user or AVA chose (a rollover ends no connection: it is recorded, with no time unavailable):
    Choice.RESTART:        Rule(None,              failure=False, resets_backoff=False, retried=True,  probe=False),
    Choice.STOP:           Rule(None,              failure=False, resets_backoff=False, retried=False, probe=False),
    Choice.PAUSE:          Rule(None,              failure=False, resets_backoff=True,  retried=False, probe=False),
})
"""The reconnect policy, one line per ending. A restart asked for while a session runs also makes the
next attempt start at once, whatever ended that session."""


# -- events: what happened, with the time it happened -------------------------------------------


@dataclass(frozen=True)
class Started:
    """`Supervisor.run()` began."""

    now: float
    wall: float


@dataclass(frozen=True)
class SessionReady:
    """Session `attempt` is configured and audio flows."""

    attempt: int
    now: float
    expires_at: float | None = None


@dataclass(frozen=True)
class SpeakingChanged:
    """AVA's reply started or stopped playing in session `attempt`."""

    attempt: int
    active: bool


@dataclass(frozen=True)
class RolledOver:
    """A fresh server session took over session `attempt` with no gap (make before break)."""

    attempt: int
    now: float
    wall: float
    expires_at: float | None = None


@dataclass(frozen=True)
class SessionEnded:
    """The running session ended by itself, as the server (or the session) says."""

    ending: SessionEnding
    now: float
    wall: float
    draw: float = 0.5
    """A uniform draw in [0, 1): where a backed-off delay lands within ±`ReconnectDelays.jitter`."""


@dataclass(frozen=True)
class SessionCancelled:
    """The running session ended because it was cancelled (a restart or a stop was asked for)."""

    now: float
    wall: float


@dataclass(frozen=True)
class RestartRequested:
    """`restart_now()`: skip the countdown, leave Error, or replace the running session."""

    now: float


@dataclass(frozen=True)
class StopRequested:
    """`stop()`: end everything; no reconnect follows."""


@dataclass(frozen=True)
class NetworkChanged:
    """The OS says the network went down or came back."""

    online: bool
    now: float


@dataclass(frozen=True)
class WokeFromSleep:
    """The wall clock jumped against the monotonic one: the machine slept."""

    now: float


@dataclass(frozen=True)
class DeadlineReached:
    """The countdown's sleep ended."""

    now: float


@dataclass(frozen=True)
class ServerAnswers:
    """A reachability probe during the countdown succeeded."""

    now: float


@dataclass(frozen=True)
class PauseRequested:
    """`pause(reason)`: end the session (or the wait) and open none until `ResumeRequested`."""

    reason: str
    now: float
    wall: float


@dataclass(frozen=True)
class ResumeRequested:
    """`resume()`: the reason for the pause passed (a new day) or the user goes on anyway."""

    now: float


@dataclass(frozen=True)
class RunCancelled:
    """`Supervisor.run()` itself was cancelled; its session and countdown are torn down already."""


Event = (Started | SessionReady | SpeakingChanged | RolledOver | SessionEnded | SessionCancelled | RestartRequested
         | StopRequested | NetworkChanged | WokeFromSleep | DeadlineReached | ServerAnswers | PauseRequested
         | ResumeRequested | RunCancelled)


# -- effects: what the supervisor should do ---------------------------------------------------


@dataclass(frozen=True)
class Publish:
    """Tell the listeners about a new state."""

    state: SupervisorState


@dataclass(frozen=True)
class RunSession:
    """Start session number `attempt`; its end comes back as `SessionEnded` or `SessionCancelled`."""

    attempt: int


@dataclass(frozen=True)
class CancelSession:
    """Cancel the running session (it then ends as `SessionCancelled`)."""


@dataclass(frozen=True)
class SleepUntil:
    """Send `DeadlineReached` once the monotonic clock reaches `deadline`."""

    deadline: float


@dataclass(frozen=True)
class StartProbing:
    """Probe the endpoint about once a second; send `ServerAnswers` when it answers."""


@dataclass(frozen=True)
class CancelCountdown:
    """Cancel the countdown's sleep and probing."""


@dataclass(frozen=True)
class RecordEnding:
    """Append a history record. If `ongoing`, AVA is unavailable from here on and the record awaits its
    unavailable time (`CompleteLastRecord`); any record still awaiting one is left without it."""

    ending: SessionEnding
    at: float
    attempt: int
    delay_s: float | None
    session_s: float
    unavailable_since: float | None
    """Wall time the outage this ending belongs to began (AVA's start when it never connected since)."""
    unavailable_s: float | None = None
    ongoing: bool = False


@dataclass(frozen=True)
class CompleteLastRecord:
    """The last record's outage is over: it lasted `unavailable_s` (None: AVA stopped before it was known)."""

    unavailable_s: float | None


@dataclass(frozen=True)
class Finish:
    """The run is over: `Supervisor.run()` returns."""


Effect = (Publish | RunSession | CancelSession | SleepUntil | StartProbing | CancelCountdown | RecordEnding
          | CompleteLastRecord | Finish)


# -- the state and the function ---------------------------------------------------------------


@dataclass(frozen=True)
class PolicyState:
    """Everything the policy remembers: the published state and what decides the next one."""

    public: SupervisorState
    delays: ReconnectDelays = field(default_factory=ReconnectDelays)
    started: bool = False
    attempt: int = 0
    """Sessions started so far (the console's "attempt #N")."""
    failures_in_row: int = 0
    online: bool = True
    restart_requested: bool = False
    """Asked for while a session runs: it is cancelled, and whatever ended it, the next one starts at once."""
    stop_requested: bool = False
    pause_requested: Paused | None = None
    """Asked for while a session runs: it is cancelled, and AVA pauses once it has ended."""
    connected_at: float | None = None
    """When the running session was last ready or rolled over (monotonic): how long it has lasted."""
    unavailable_since: float | None = None
    """Monotonic time AVA became unavailable: its start, or the first ending since it was last connected."""
    unavailable_since_wall: float | None = None
    record_pending: bool = False
    """The last record awaits how long AVA was unavailable after it."""


Step = tuple[PolicyState, tuple[Effect, ...]]


class UnexpectedEvent(Exception):
    """An event with no rule in the current state (the state is left unchanged)."""

    def __init__(self, state: PolicyState, event: Event) -> None:
        super().__init__(f"no rule for {type(event).__name__} in {type(state.public).__name__}: {event}")
        self.state = state
        self.event = event


def next_step(state: PolicyState, event: Event) -> Step:
    """The state after `event` and the effects to carry out; raises `UnexpectedEvent` if no rule applies."""
    match event:
        case RunCancelled():
            return (state, ()) if isinstance(state.public, Stopped) else _finish(state)
        case SessionReady(attempt=attempt) | SpeakingChanged(attempt=attempt) | RolledOver(attempt=attempt) \
                if attempt != state.attempt:
            return state, ()  # from a session that is over
        case NetworkChanged(online=online) if online == state.online:
            return state, ()
        case ResumeRequested() if not isinstance(state.public, Paused):
            return replace(state, pause_requested=None), ()  # not paused (any more): nothing to resume
    public = state.public
    match public:
        case Connecting() if not state.started:
            return _before_start(state, event)
        case Connecting() | Connected():
            return _in_session(state, public, event)
        case Reconnecting():
            return _counting_down(state, public, event)
        case WaitingForNetwork():
            return _waiting_for_network(state, event)
        case Error():
            return _waiting_for_user(state, event)
        case Paused():
            return _paused(state, public, event)
        case Stopped():
            # Nothing runs and nothing will; a second run() returns at once.
            return state, ((Finish(),) if isinstance(event, Started) else ())
        case _:
            assert_never(public)


def _before_start(state: PolicyState, event: Event) -> Step:
    match event:
        case Started(now=now, wall=wall):
            started = replace(state, started=True, unavailable_since=now, unavailable_since_wall=wall)
            if state.stop_requested:
                return _finish(started)
            if state.pause_requested is not None:  # paused before the first session (still today's budget)
                return _show(replace(started, pause_requested=None, unavailable_since=None,
                                     unavailable_since_wall=None), state.pause_requested)
            return _next_session(started, now)
        case StopRequested():
            return replace(state, stop_requested=True), ()
        case PauseRequested(reason=reason):
            return replace(state, pause_requested=Paused(reason)), ()
        case NetworkChanged(online=online):
            return replace(state, online=online), ()
        case RestartRequested() | WokeFromSleep() | SpeakingChanged():
            return state, ()  # the first session starts anyway
    raise UnexpectedEvent(state, event)


def _in_session(state: PolicyState, public: Connecting | Connected, event: Event) -> Step:
    match event:
        case SessionReady(now=now, expires_at=expires_at):
            complete: tuple[Effect, ...] = ()
            if state.record_pending and state.unavailable_since is not None:
                complete = (CompleteLastRecord(now - state.unavailable_since),)
            connected = Connected(attempt=state.attempt, since=now, expires_at=expires_at)
            return _show(replace(state, connected_at=now, unavailable_since=None, unavailable_since_wall=None,
                                 record_pending=False), connected, *complete)
        case SpeakingChanged(active=active):
            if isinstance(public, Connected):
                return _show(state, replace(public, speaking=active))
            return state, ()  # not configured yet: nothing plays
        case RolledOver(now=now, wall=wall, expires_at=expires_at) if isinstance(public, Connected):
            lasted = now - (state.connected_at if state.connected_at is not None else now)
            record = RecordEnding(Choice.ROLLOVER.ending, at=wall, attempt=state.attempt, delay_s=0.0,
                                  session_s=lasted, unavailable_since=None, unavailable_s=0.0)
            connected = Connected(attempt=state.attempt, since=now, expires_at=expires_at,
                                  rollovers=public.rollovers + 1)
            return _show(replace(state, connected_at=now), connected, record)
        case SessionEnded(ending=ending, now=now, wall=wall, draw=draw):
            return _after_session(state, ending, now, wall, draw)
        case SessionCancelled(now=now, wall=wall):
            return _after_session(state, Choice.PAUSE if state.pause_requested else Choice.RESTART, now, wall, 0.5)
        case RestartRequested():
            return _cancel_session(state, restart=True)
        case WokeFromSleep():
            # A connection that slept is dead, but a session still opening is left to finish.
            return _cancel_session(state, restart=True) if isinstance(public, Connected) else (state, ())
        case StopRequested():
            return _cancel_session(state, stop=True)
        case PauseRequested(reason=reason):
            if state.pause_requested is not None:
                return replace(state, pause_requested=Paused(reason)), ()
            return replace(state, pause_requested=Paused(reason)), (CancelSession(),)
        case NetworkChanged(online=online):
            return replace(state, online=online), ()  # a live session is left alone: if the network is gone, it ends
        case DeadlineReached() | ServerAnswers():
            return state, ()  # left over from the countdown
    raise UnexpectedEvent(state, event)


def _cancel_session(state: PolicyState, *, restart: bool = False, stop: bool = False) -> Step:
    if (restart and state.restart_requested) or (stop and state.stop_requested):
        return state, ()
    changed = replace(state, restart_requested=state.restart_requested or restart,
                      stop_requested=state.stop_requested or stop)
    return changed, (CancelSession(),)


def _after_session(state: PolicyState, ended: SessionEnding | Choice, now: float, wall: float, draw: float) -> Step:
    """A session is over: record how it ended, then reconnect, wait or stop as its rule says."""
    if state.stop_requested:
        ended = Choice.STOP
    rule = _rule_for(ended)
    ending = ended.ending if isinstance(ended, Choice) else ended
    lasted = now - state.connected_at if state.connected_at is not None else 0.0
    failures = 0 if rule.resets_backoff or lasted >= state.delays.stable_after else state.failures_in_row
    if rule.failure:
        failures += 1
    since, since_wall = ((state.unavailable_since, state.unavailable_since_wall)
                         if state.unavailable_since is not None else (now, wall))
    after = replace(state, failures_in_row=failures, connected_at=None, unavailable_since=since,
                    unavailable_since_wall=since_wall)

    if ended is Choice.STOP:
        return _finish(after, RecordEnding(ending, at=wall, attempt=state.attempt, delay_s=0.0, session_s=lasted,
                                           unavailable_since=None))
    if state.pause_requested is not None:  # a chosen pause is no outage: nothing awaits an unavailable time
        record = RecordEnding(Choice.PAUSE.ending, at=wall, attempt=state.attempt, delay_s=None, session_s=lasted,
                              unavailable_since=None)
        paused = replace(after, pause_requested=None, restart_requested=False, unavailable_since=None,
                         unavailable_since_wall=None, record_pending=False)
        return _show(paused, state.pause_requested, record)

    if not rule.retried:
        record = RecordEnding(ending, at=wall, attempt=state.attempt, delay_s=None, session_s=lasted,
                              unavailable_since=since_wall, ongoing=True)
        waiting, effects = _show(replace(after, record_pending=True), Error(ending=ending, attempt=state.attempt),
                                 record)
        if not state.restart_requested:
            return waiting, effects
        restarted, more = _next_session(waiting, now)
        return restarted, effects + more

    delay = 0.0 if state.restart_requested else backoff_delay(state.delays.base(rule.delay), failures,
                                                              state.delays, draw)
    record = RecordEnding(ending, at=wall, attempt=state.attempt, delay_s=delay, session_s=lasted,
                          unavailable_since=since_wall, ongoing=True)
    after = replace(after, record_pending=True)
    if delay <= 0:
        reconnecting, effects = _next_session(after, now)
        return reconnecting, (record, *effects)
    if not state.online:
        return _show(after, WaitingForNetwork(ending=ending, attempt=state.attempt + 1), record)
    countdown = Reconnecting(ending=ending, attempt=state.attempt + 1, deadline=now + delay, delay=delay)
    counting, effects = _show(after, countdown, record)
    probe = (StartProbing(),) if rule.probe and ending.unreachable else ()
    return counting, (*effects, SleepUntil(countdown.deadline), *probe)


def _rule_for(ended: SessionEnding | Choice) -> Rule:
    """The table's rule; a session that reports a cause the table does not list is read as "other"."""
    if isinstance(ended, Choice):
        return RULES[ended]
    return RULES.get(ended.cause) or RULES[Cause.OTHER]


def _counting_down(state: PolicyState, public: Reconnecting, event: Event) -> Step:
    match event:
        case DeadlineReached(now=now):
            if now < public.deadline:
                return state, (SleepUntil(public.deadline),)  # woke a little early: sleep the rest
            return _leave_countdown(state, now)
        case ServerAnswers(now=now) | RestartRequested(now=now) | WokeFromSleep(now=now):
            return _leave_countdown(state, now)
        case NetworkChanged(online=True, now=now):
            return _leave_countdown(replace(state, online=True), now)
        case NetworkChanged(online=False):
            waiting = WaitingForNetwork(ending=public.ending, attempt=public.attempt)
            paused, effects = _show(replace(state, online=False), waiting)
            return paused, (CancelCountdown(), *effects)
        case StopRequested():
            stopped, effects = _finish(state)
            return stopped, (CancelCountdown(), *effects)
        case PauseRequested(reason=reason):
            paused, effects = _pause(state, reason)
            return paused, (CancelCountdown(), *effects)
        case SpeakingChanged():
            return state, ()
    raise UnexpectedEvent(state, event)


def _pause(state: PolicyState, reason: str) -> Step:
    """Pause from a wait (countdown, network, error): the outage so far keeps its record; no session opens."""
    complete: tuple[Effect, ...] = ()
    if state.record_pending and state.unavailable_since is not None:
        complete = (CompleteLastRecord(None),)
    return _show(replace(state, pause_requested=None, record_pending=False, unavailable_since=None,
                         unavailable_since_wall=None), Paused(reason), *complete)


def _paused(state: PolicyState, public: Paused, event: Event) -> Step:
    match event:
        case ResumeRequested(now=now) | RestartRequested(now=now):
            return _next_session(state, now)
        case PauseRequested(reason=reason):
            return _show(state, Paused(reason))
        case StopRequested():
            return _finish(state)
        case NetworkChanged(online=online):
            return replace(state, online=online), ()
        case Started() | WokeFromSleep() | DeadlineReached() | ServerAnswers() | SpeakingChanged():
            return state, ()  # nothing runs while paused
    raise UnexpectedEvent(state, event)


def _leave_countdown(state: PolicyState, now: float) -> Step:
    reconnecting, effects = _next_session(state, now)
    return reconnecting, (CancelCountdown(), *effects)


def _waiting_for_network(state: PolicyState, event: Event) -> Step:
    match event:
        case NetworkChanged(online=True, now=now):
            return _next_session(replace(state, online=True), now)
        case RestartRequested(now=now):
            return _next_session(state, now)
        case StopRequested():
            return _finish(state)
        case PauseRequested(reason=reason):
            return _pause(state, reason)
        case WokeFromSleep() | DeadlineReached() | ServerAnswers() | SpeakingChanged():
            return state, ()  # nothing to reconnect to until the network is back
    raise UnexpectedEvent(state, event)


def _waiting_for_user(state: PolicyState, event: Event) -> Step:
    match event:
        case RestartRequested(now=now):
            return _next_session(state, now)
        case NetworkChanged(online=online, now=now):
            # A different network may be what the error was about (a proxy's 403): try once more.
            return _next_session(replace(state, online=online), now)
        case StopRequested():
            return _finish(state)
        case PauseRequested(reason=reason):
            return _pause(state, reason)
        case WokeFromSleep() | DeadlineReached() | ServerAnswers() | SpeakingChanged():
            return state, ()  # a fatal cause waits for the user
    raise UnexpectedEvent(state, event)


def _next_session(state: PolicyState, now: float) -> Step:
    attempt = state.attempt + 1
    opening, effects = _show(replace(state, attempt=attempt, restart_requested=False, connected_at=None),
                             Connecting(attempt=attempt, since=now))
    return opening, (*effects, RunSession(attempt))


def _finish(state: PolicyState, record: RecordEnding | None = None) -> Step:
    """Stop: record the last ending if there is one, else leave the pending record's outage unknown."""
    last: tuple[Effect, ...] = ()
    if record is not None:
        last = (record,)
    elif state.record_pending:
        last = (CompleteLastRecord(None),)
    stopped, effects = _show(replace(state, stop_requested=True, record_pending=False), Stopped(), *last)
    return stopped, (*effects, Finish())


def _show(state: PolicyState, public: SupervisorState, *before: Effect) -> Step:
    """Move to `public`; the effects are `before`, then `Publish` unless the state is the same."""
    publish = () if public == state.public else (Publish(public),)
    return replace(state, public=public), (*before, *publish)
