"""The reconnect policy carried out: it keeps AVA talking across expiries, drops and restarts.

Qt-free. A `SessionRunner` runs one Realtime session to its end and returns how it ended. What comes
next (reconnect after a delay, wait for the user, stop) is decided by `ava_tray.policy.next_step`;
the supervisor only turns what happens into its events and carries out the effects it returns:
publishing states, running and cancelling sessions, sleeping, probing, writing the history.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, assert_never

from ava_tray.clock import Clock, SystemClock
from ava_tray.history import ReconnectHistory, ReconnectRecord
from ava_tray.policy import (
    CancelCountdown,
    CancelSession,
    CompleteLastRecord,
    DeadlineReached,
    Effect,
    Event,
    Finish,
    NetworkChanged,
    PauseRequested,
    PolicyState,
    Publish,
    ReconnectDelays,
    RecordEnding,
    RestartRequested,
    ResumeRequested,
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
    backoff_delay,
    next_step,
)
from ava_tray.realtime.ending import Cause, SessionEnding, classify_ending
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

__all__ = [
    "PROBE_INTERVAL",
    "WAKE_CHECK_INTERVAL",
    "WAKE_JUMP",
    "Connected",
    "Connecting",
    "Error",
    "Paused",
    "ReachabilityProbe",
    "ReconnectDelays",
    "Reconnecting",
    "SessionContext",
    "SessionRunner",
    "StateListener",
    "Stopped",
    "Supervisor",
    "SupervisorState",
    "WaitingForNetwork",
    "reconnect_delay_for",
]

logger = logging.getLogger(__name__)

StateListener = Callable[[SupervisorState], None]
ReachabilityProbe = Callable[[], Awaitable[bool]]

PROBE_INTERVAL = 1.0
WAKE_CHECK_INTERVAL = 2.0
WAKE_JUMP = 10.0


def reconnect_delay_for(cause: Cause, failures_in_row: int, delays: ReconnectDelays,
                        rng: random.Random | None = None) -> float:
    """The delay before the next attempt: the base for the cause, doubled for each failure in a row.

    The first failure waits exactly the base delay (the seed's behaviour); later ones double with
    jitter so that a dead network or server is not hammered, capped at `max_backoff`.
    """
    base = delays.base_for(cause)
    draw = (rng or random.Random()).random() if failures_in_row > 1 and base else 0.5
    return backoff_delay(base, failures_in_row, delays, draw)


@dataclass
class SessionContext:
    """What a running session tells the supervisor: configured (with its expiry) and speaking."""

    attempt: int
    _on_ready: Callable[[float | None], None]
    _on_speaking: Callable[[bool], None]
    transcript: Callable[[str, str], None] = field(default=lambda role, text: None)
    _on_rollover: Callable[[float | None], None] = field(default=lambda expires_at: None)

    def ready(self, expires_at: float | None) -> None:
        self._on_ready(expires_at)

    def speaking(self, active: bool) -> None:
        self._on_speaking(active)

    def rolled_over(self, expires_at: float | None) -> None:
        """A fresh server session took over with no gap (make before break)."""
        self._on_rollover(expires_at)


SessionRunner = Callable[[SessionContext], Awaitable[SessionEnding]]


class Supervisor:
    """Runs sessions one after another for as long as AVA should be talking."""

    def __init__(
        self,
        runner: SessionRunner,
        *,
        delays: ReconnectDelays | None = None,
        clock: Clock | None = None,
        history: ReconnectHistory | None = None,
        rng: random.Random | None = None,
        reachability: ReachabilityProbe | None = None,
    ) -> None:
        self._runner = runner
        self._clock = clock or SystemClock()
        self._history = history
        self._rng = rng or random.Random()
        self._reachability = reachability
        self._policy = PolicyState(public=Connecting(attempt=1, since=self._clock.monotonic()),
                                   delays=delays or ReconnectDelays())
        self._listeners: list[StateListener] = []
        self._transcript_listeners: list[Callable[[str, str], None]] = []
        self._events: deque[Event] = deque()
        self._stepping = False
        self._session: asyncio.Future[SessionEnding] | None = None
        self._countdown: set[asyncio.Task[None]] = set()
        self._finished = asyncio.Event()
        self._last_record: str | None = None
        self._shown: SupervisorState = self._policy.public

    # -- observation ---------------------------------------------------------------------------

    @property
    def state(self) -> SupervisorState:
        return self._policy.public

    @property
    def attempt(self) -> int:
        """How many sessions have been started (the console's "attempt #N")."""
        return self._policy.attempt

    @property
    def delays(self) -> ReconnectDelays:
        return self._policy.delays

    @delays.setter
    def delays(self, delays: ReconnectDelays) -> None:
        """New delays apply from the next ending on."""
        self._policy = replace(self._policy, delays=delays)

    @property
    def online(self) -> bool:
        return self._policy.online

    def subscribe(self, listener: StateListener) -> Callable[[], None]:
        """Call `listener` on every state change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def subscribe_transcript(self, listener: Callable[[str, str], None]) -> None:
        """Call `listener(role, text)` for every finished user or assistant transcript."""
        self._transcript_listeners.append(listener)

    # -- commands ------------------------------------------------------------------------------

    def use_runner(self, runner: SessionRunner) -> None:
        """Run the next sessions with `runner` (new settings or key); the current one is left alone."""
        self._runner = runner

    def restart_now(self) -> None:
        """Skip the countdown (or leave Error) and open a fresh session now."""
        self._feed(RestartRequested(self._clock.monotonic()))

    def stop(self) -> None:
        """End everything; no reconnect follows."""
        self._feed(StopRequested())

    def pause(self, reason: str) -> None:
        """End the session (or the wait) and open none until `resume()`; `reason` is shown to the user."""
        self._feed(PauseRequested(reason, self._clock.monotonic(), self._clock.wall()))

    def resume(self) -> None:
        """Leave a pause: open a session now (nothing happens when AVA is not paused)."""
        self._feed(ResumeRequested(self._clock.monotonic()))

    def network_changed(self, online: bool) -> None:
        """The OS says the network went down or came back; back up means connect at once."""
        if online != self.online:
            logger.info("network %s", "back" if online else "down")
        self._feed(NetworkChanged(online, self._clock.monotonic()))

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run sessions until `stop()`; every exit goes through the same cleanup."""
        wake_watch = asyncio.ensure_future(self._watch_for_wake())
        try:
            self._feed(Started(self._clock.monotonic(), self._clock.wall()))
            await self._finished.wait()
        finally:
            if not isinstance(self.state, Stopped):
                self._feed(RunCancelled())
            leftovers: set[asyncio.Future[Any]] = {wake_watch, *self._countdown}
            if self._session is not None:
                leftovers.add(self._session)
            for task in leftovers:
                task.cancel()
            await asyncio.wait(leftovers)

    def _feed(self, event: Event) -> None:
        """Step the policy with `event` and carry out its effects; events that arrive meanwhile wait their turn."""
        self._events.append(event)
        if self._stepping:
            return
        self._stepping = True
        try:
            while self._events:
                event = self._events.popleft()
                try:
                    self._policy, effects = next_step(self._policy, event)
                except UnexpectedEvent as exc:
                    logger.warning("ignored: %s", exc)
                    continue
                for effect in effects:
                    self._carry_out(effect)
        finally:
            self._stepping = False

    def _carry_out(self, effect: Effect) -> None:
        match effect:
            case Publish(state=state):
                self._publish(state)
            case RunSession(attempt=attempt):
                self._start_session(attempt)
            case CancelSession():
                if self._session is not None:
                    self._session.cancel()
            case SleepUntil(deadline=deadline):
                self._start_countdown(self._sleep_until(deadline))
            case StartProbing():
                if self._reachability is not None:
                    self._start_countdown(self._probe_until_reachable(self._reachability))
            case CancelCountdown():
                for task in self._countdown:
                    task.cancel()
            case RecordEnding():
                self._record(effect)
            case CompleteLastRecord(unavailable_s=seconds):
                self._complete_last_record(seconds)
            case Finish():
                self._finished.set()
            case _:
                assert_never(effect)

    def _publish(self, state: SupervisorState) -> None:
        logger.info("state %s -> %s", type(self._shown).__name__, _describe(state))
        self._note_waiting(self._shown, state)
        self._shown = state
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                logger.exception("a state listener failed")

    # -- sessions ------------------------------------------------------------------------------

    def _start_session(self, attempt: int) -> None:
        clock = self._clock

        def on_ready(expires_at: float | None) -> None:
            self._feed(SessionReady(attempt, clock.monotonic(), expires_at))

        def on_speaking(active: bool) -> None:
            self._feed(SpeakingChanged(attempt, active))

        def on_transcript(role: str, text: str) -> None:
            for listener in list(self._transcript_listeners):
                try:
                    listener(role, text)
                except Exception:
                    logger.exception("a transcript listener failed")

        def on_rollover(expires_at: float | None) -> None:
            self._feed(RolledOver(attempt, clock.monotonic(), clock.wall(), expires_at))

        context = SessionContext(attempt, on_ready, on_speaking, on_transcript, on_rollover)
        session: asyncio.Future[SessionEnding]
        try:
            session = asyncio.ensure_future(self._runner(context))
        except Exception as exc:  # the runner failed before it could start: an ending like any other
            session = asyncio.get_running_loop().create_future()
            session.set_exception(exc)
        self._session = session
        session.add_done_callback(self._session_done)

    def _session_done(self, session: asyncio.Future[SessionEnding]) -> None:
        """Report how the session ended: cancelled (a choice) or as it says (classified if it raised)."""
        if session is not self._session:
            return
        self._session = None
        now, wall = self._clock.monotonic(), self._clock.wall()
        if session.cancelled():
            self._feed(SessionCancelled(now, wall))
            return
        error = session.exception()
        if error is not None:
            logger.warning("session ended with %s: %s", type(error).__name__, error)
            ending = classify_ending(exception=error)
        else:
            ending = session.result()
        if ending.is_fatal:
            logger.error("fatal: %s", ending.message)
        self._feed(SessionEnded(ending, now, wall, self._rng.random()))

    # -- the countdown -------------------------------------------------------------------------

    def _start_countdown(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._countdown.add(task)
        task.add_done_callback(self._countdown.discard)

    async def _sleep_until(self, deadline: float) -> None:
        await self._clock.sleep_until(deadline)
        self._feed(DeadlineReached(self._clock.monotonic()))

    async def _probe_until_reachable(self, reachability: ReachabilityProbe) -> None:
        """Cheap reachability checks (no session) once a second; on success, connect at once."""
        while True:
            await self._clock.sleep_until(self._clock.monotonic() + PROBE_INTERVAL)
            try:
                reachable = await reachability()
            except Exception as exc:
                logger.debug("reachability probe failed: %s", exc)
                reachable = False
            if reachable:
                logger.info("the server answers again: connecting now")
                self._feed(ServerAnswers(self._clock.monotonic()))
                return

    async def _watch_for_wake(self) -> None:
        """After the machine sleeps the wall clock jumps against the monotonic one: reconnect at once."""
        offset = self._clock.wall() - self._clock.monotonic()
        while True:
            await self._clock.sleep_until(self._clock.monotonic() + WAKE_CHECK_INTERVAL)
            now_offset = self._clock.wall() - self._clock.monotonic()
            if abs(now_offset - offset) > WAKE_JUMP:
                logger.info("the machine woke from sleep (clock jumped %.0f s)", now_offset - offset)
                self._feed(WokeFromSleep(self._clock.monotonic()))
            offset = now_offset

    # -- history -------------------------------------------------------------------------------

    def _record(self, effect: RecordEnding) -> None:
        ending = effect.ending
        record = ReconnectRecord(
            at=effect.at,
            cause=ending.cause.value,
            message=ending.message,
            close_code=ending.close_code,
            close_reason=ending.close_reason,
            error_code=ending.error_code,
            attempt=effect.attempt,
            delay_s=effect.delay_s,
            session_s=round(effect.session_s, 3),
            unavailable_s=effect.unavailable_s,
            unavailable_since=effect.unavailable_since,
        )
        self._last_record = record.id if effect.ongoing else None
        if self._history is not None:
            self._history.append(record, ongoing=effect.ongoing)

    def _note_waiting(self, shown: SupervisorState, state: SupervisorState) -> None:
        """Waiting for the network begins or ends: the history keeps the stretch (the day strip shows it)."""
        if self._history is None or isinstance(shown, WaitingForNetwork) == isinstance(state, WaitingForNetwork):
            return
        wall = self._clock.wall()
        if isinstance(state, WaitingForNetwork):
            self._history.waiting_for_network(wall)
            return
        since = self._history.offline_since
        self._history.waiting_for_network(None)
        if since is not None:
            self._history.note_offline(since, wall)

    def _complete_last_record(self, unavailable_s: float | None) -> None:
        """Complete the last record with how long AVA was unavailable, now that it is known."""
        record_id, self._last_record = self._last_record, None
        if record_id is None or self._history is None:
            return
        if unavailable_s is None:
            self._history.outage_over(record_id)
        else:
            self._history.set_unavailable(record_id, round(unavailable_s, 3))


def _describe(state: SupervisorState) -> str:
    match state:
        case Reconnecting():
            return f"Reconnecting({state.cause.value}, attempt {state.attempt}, in {state.delay:.1f}s)"
        case WaitingForNetwork():
            return f"WaitingForNetwork({state.cause.value})"
        case Error():
            return f"Error({state.ending.cause.value}: {state.reason})"
        case Paused():
            return f"Paused({state.reason})"
        case Connecting() | Connected() | Stopped():
            return type(state).__name__
        case _:
            assert_never(state)
