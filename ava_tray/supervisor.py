"""The reconnect policy as a state machine: it keeps AVA talking across expiries, drops and restarts.

Qt-free. A `SessionRunner` runs one Realtime session to its end and returns how it ended; the
supervisor decides what comes next (reconnect after a delay, wait for the user, stop) and publishes
every state change with the deadline a UI needs to render a countdown.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from ava_tray.clock import Clock, SystemClock
from ava_tray.history import ReconnectHistory, ReconnectRecord
from ava_tray.realtime.ending import Cause, SessionEnding, classify_ending

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Connecting:
    """A session is being opened (handshake, `session.created`, `session.update`)."""

    attempt: int
    since: float


@dataclass(frozen=True)
class Connected:
    """A session is configured and audio flows; `speaking` while AVA's reply plays."""

    attempt: int
    since: float
    expires_at: float | None = None
    speaking: bool = False
    rollovers: int = 0
    """Fresh sessions taken over seamlessly within this connection (make before break)."""


@dataclass(frozen=True)
class Reconnecting:
    """Waiting until `deadline` (monotonic) before attempt number `attempt`."""

    ending: SessionEnding
    attempt: int
    deadline: float
    delay: float

    @property
    def cause(self) -> Cause:
        return self.ending.cause


@dataclass(frozen=True)
class WaitingForNetwork:
    """The network is down: the countdown is paused and AVA connects as soon as it returns."""

    ending: SessionEnding
    attempt: int

    @property
    def cause(self) -> Cause:
        return self.ending.cause


@dataclass(frozen=True)
class Error:
    """A fatal cause: no automatic retry until the user asks for one."""

    ending: SessionEnding
    attempt: int

    @property
    def reason(self) -> str:
        return self.ending.message


@dataclass(frozen=True)
class Stopped:
    """Nothing runs and nothing will (the user quit)."""


SupervisorState = Connecting | Connected | Reconnecting | WaitingForNetwork | Error | Stopped
StateListener = Callable[[SupervisorState], None]
ReachabilityProbe = Callable[[], Awaitable[bool]]

PROBE_INTERVAL = 1.0
WAKE_CHECK_INTERVAL = 2.0
WAKE_JUMP = 10.0


@dataclass(frozen=True)
class ReconnectDelays:
    """Seconds before reconnecting, by cause; the seed's 3/5/10 s are the base."""

    session_expired: float = 3.0
    connection_lost: float = 5.0
    other: float = 10.0
    max_backoff: float = 300.0
    stable_after: float = 60.0
    jitter: float = 0.25

    def base_for(self, cause: Cause) -> float:
        if cause is Cause.SESSION_EXPIRED:
            return self.session_expired
        if cause is Cause.CONNECTION_LOST:
            return self.connection_lost
        if cause is Cause.USER_RESTART:
            return 0.0
        return self.other


def reconnect_delay_for(cause: Cause, failures_in_row: int, delays: ReconnectDelays,
                        rng: random.Random | None = None) -> float:
    """The delay before the next attempt: the base for the cause, doubled for each failure in a row.

    The first failure waits exactly the base delay (the seed's behaviour); later ones double with
    jitter so that a dead network or server is not hammered, capped at `max_backoff`.
    """
    base = delays.base_for(cause)
    if failures_in_row <= 1 or base == 0:
        return base
    backoff = min(delays.max_backoff, base * 2 ** (failures_in_row - 1))
    spread: float = (rng or random.Random()).uniform(1 - delays.jitter, 1 + delays.jitter)
    return float(min(delays.max_backoff, backoff * spread))


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
        self.delays = delays or ReconnectDelays()
        self._clock = clock or SystemClock()
        self._history = history
        self._rng = rng or random.Random()
        self._state: SupervisorState = Connecting(attempt=1, since=self._clock.monotonic())
        self._listeners: list[StateListener] = []
        self._wake = asyncio.Event()
        self._restart_requested = False
        self._stop_requested = False
        self._attempt = 0
        self._failures_in_row = 0
        self._unavailable_since: float | None = None
        self._pending_record: ReconnectRecord | None = None
        self._transcript_listeners: list[Callable[[str, str], None]] = []
        self._reachability = reachability
        self._online = True

    # -- observation ---------------------------------------------------------------------------

    @property
    def state(self) -> SupervisorState:
        return self._state

    @property
    def attempt(self) -> int:
        """How many sessions have been started (the console's "attempt #N")."""
        return self._attempt

    def subscribe(self, listener: StateListener) -> Callable[[], None]:
        """Call `listener` on every state change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def subscribe_transcript(self, listener: Callable[[str, str], None]) -> None:
        """Call `listener(role, text)` for every finished user or assistant transcript."""
        self._transcript_listeners.append(listener)

    def _set(self, state: SupervisorState) -> None:
        if state == self._state:
            return
        logger.info("state %s -> %s", type(self._state).__name__, _describe(state))
        self._state = state
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                logger.exception("a state listener failed")

    # -- commands ------------------------------------------------------------------------------

    def use_runner(self, runner: SessionRunner) -> None:
        """Run the next sessions with `runner` (new settings or key); the current one is left alone."""
        self._runner = runner

    def restart_now(self) -> None:
        """Skip the countdown (or leave Error) and open a fresh session now."""
        if isinstance(self._state, Stopped):
            return
        self._restart_requested = True
        self._wake.set()

    def stop(self) -> None:
        """End everything; no reconnect follows."""
        self._stop_requested = True
        self._wake.set()

    def network_changed(self, online: bool) -> None:
        """The OS says the network went down or came back; back up means connect at once."""
        if online == self._online:
            return
        logger.info("network %s", "back" if online else "down")
        self._online = online
        if isinstance(self._state, (Connecting, Connected)):
            return  # a live session is left alone: if the network is really gone, it ends by itself
        if online and isinstance(self._state, (WaitingForNetwork, Reconnecting)):
            self._restart_requested = True
        self._wake.set()

    @property
    def online(self) -> bool:
        return self._online

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run sessions until `stop()`; every exit goes through the same cleanup."""
        wake_watch = asyncio.ensure_future(self._watch_for_wake())
        try:
            while not self._stop_requested:
                ending, lasted = await self._run_one_session()
                await self._after(ending, lasted)
        finally:
            wake_watch.cancel()
            await asyncio.wait({wake_watch})
            self._flush_pending(unavailable=None)
            self._set(Stopped())

    async def _watch_for_wake(self) -> None:
        """After the machine sleeps the wall clock jumps against the monotonic one: reconnect at once."""
        offset = self._clock.wall() - self._clock.monotonic()
        while True:
            await self._clock.sleep_until(self._clock.monotonic() + WAKE_CHECK_INTERVAL)
            now_offset = self._clock.wall() - self._clock.monotonic()
            if abs(now_offset - offset) > WAKE_JUMP:
                logger.info("the machine woke from sleep (clock jumped %.0f s): reconnecting now",
                            now_offset - offset)
                if isinstance(self._state, (Connected, Reconnecting)):
                    self.restart_now()
            offset = now_offset

    async def _run_one_session(self) -> tuple[SessionEnding, float]:
        self._attempt += 1
        self._restart_requested = False
        self._wake.clear()
        attempt = self._attempt
        self._set(Connecting(attempt=attempt, since=self._clock.monotonic()))
        connected_at: list[float] = []

        def on_ready(expires_at: float | None) -> None:
            now = self._clock.monotonic()
            connected_at.append(now)
            self._on_connected(now)
            self._set(Connected(attempt=attempt, since=now, expires_at=expires_at))

        def on_speaking(active: bool) -> None:
            if isinstance(self._state, Connected) and self._state.attempt == attempt:
                self._set(replace(self._state, speaking=active))

        def on_transcript(role: str, text: str) -> None:
            for listener in list(self._transcript_listeners):
                try:
                    listener(role, text)
                except Exception:
                    logger.exception("a transcript listener failed")

        def on_rollover(expires_at: float | None) -> None:
            now = self._clock.monotonic()
            self._record(SessionEnding(Cause.ROLLOVER, "Rolled over to a fresh session before the limit"),
                         now - (connected_at[-1] if connected_at else now), delay=0.0)
            self._flush_pending(unavailable=0.0)
            connected_at.append(now)
            self._set(Connected(attempt=attempt, since=now, expires_at=expires_at, rollovers=len(connected_at) - 1))

        context = SessionContext(attempt, on_ready, on_speaking, on_transcript, on_rollover)
        session = asyncio.ensure_future(self._runner(context))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({session, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            if not session.done():
                session.cancel()
            await asyncio.wait({session})

        lasted = self._clock.monotonic() - connected_at[-1] if connected_at else 0.0
        if self._stop_requested:
            return SessionEnding(Cause.STOPPED, "AVA was stopped"), lasted
        if session.cancelled():
            return SessionEnding(Cause.USER_RESTART, "Restarted by the user"), lasted
        error = session.exception()
        if error is not None:
            logger.warning("session ended with %s: %s", type(error).__name__, error)
            return classify_ending(exception=error), lasted
        return session.result(), lasted

    def _on_connected(self, now: float) -> None:
        unavailable = now - self._unavailable_since if self._unavailable_since is not None else None
        self._flush_pending(unavailable)
        self._unavailable_since = None

    async def _after(self, ending: SessionEnding, lasted: float) -> None:
        """Record the ending and wait as the policy says before the next attempt."""
        now = self._clock.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
        if ending.cause is Cause.SESSION_EXPIRED or lasted >= self.delays.stable_after:
            self._failures_in_row = 0
        if ending.cause not in (Cause.SESSION_EXPIRED, Cause.USER_RESTART, Cause.STOPPED):
            self._failures_in_row += 1
        if ending.cause is Cause.STOPPED:
            self._record(ending, lasted, delay=0.0)
            return
        if ending.cause is Cause.FATAL:
            logger.error("fatal: %s", ending.message)
            self._record(ending, lasted, delay=None)
            self._set(Error(ending=ending, attempt=self._attempt))
            await self._wait(deadline=None)
            return
        delay = reconnect_delay_for(ending.cause, self._failures_in_row, self.delays, self._rng)
        if self._restart_requested and ending.cause is not Cause.USER_RESTART:
            delay = 0.0
        self._record(ending, lasted, delay)
        if delay <= 0:
            return
        deadline = now + delay
        probe = ending.unreachable and self._reachability is not None
        while not (self._stop_requested or self._restart_requested):
            if not self._online:
                self._set(WaitingForNetwork(ending=ending, attempt=self._attempt + 1))
                await self._wait(deadline=None)
                continue
            if self._clock.monotonic() >= deadline:
                return
            self._set(Reconnecting(ending=ending, attempt=self._attempt + 1, deadline=deadline, delay=delay))
            await self._wait(deadline, probe=probe)

    async def _wait(self, deadline: float | None, *, probe: bool = False) -> None:
        """Sleep until the deadline, a wake-up (`restart_now()`, `stop()`, the network) or, with `probe`,
        until the unreachable server answers again (then connect at once)."""
        if self._stop_requested or self._restart_requested:
            return
        self._wake.clear()
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self._wake.wait())}
        if deadline is not None:
            waiters.add(asyncio.ensure_future(self._clock.sleep_until(deadline)))
        if probe:
            waiters.add(asyncio.ensure_future(self._probe_until_reachable()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _probe_until_reachable(self) -> None:
        """Cheap reachability checks (no session) once a second; on success, connect at once."""
        assert self._reachability is not None
        while True:
            await self._clock.sleep_until(self._clock.monotonic() + PROBE_INTERVAL)
            try:
                reachable = await self._reachability()
            except Exception as exc:
                logger.debug("reachability probe failed: %s", exc)
                reachable = False
            if reachable:
                logger.info("the server answers again: connecting now")
                self._restart_requested = True
                return

    # -- history -------------------------------------------------------------------------------

    def _record(self, ending: SessionEnding, lasted: float, delay: float | None) -> None:
        self._flush_pending(unavailable=None)
        self._pending_record = ReconnectRecord(
            at=self._clock.wall(),
            cause=ending.cause.value,
            message=ending.message,
            close_code=ending.close_code,
            close_reason=ending.close_reason,
            error_code=ending.error_code,
            attempt=self._attempt,
            delay_s=delay,
            session_s=round(lasted, 3),
        )
        if self._history is not None:
            self._history.append(self._pending_record)

    def _flush_pending(self, unavailable: float | None) -> None:
        """Complete the last record with how long AVA was unavailable once that is known."""
        record, self._pending_record = self._pending_record, None
        if record is not None and unavailable is not None and self._history is not None:
            self._history.set_unavailable(record.id, round(unavailable, 3))


def _describe(state: SupervisorState) -> str:
    if isinstance(state, Reconnecting):
        return f"Reconnecting({state.cause.value}, attempt {state.attempt}, in {state.delay:.1f}s)"
    if isinstance(state, WaitingForNetwork):
        return f"WaitingForNetwork({state.cause.value})"
    if isinstance(state, Error):
        return f"Error({state.ending.cause.value}: {state.reason})"
    return type(state).__name__
