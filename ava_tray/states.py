"""What the supervisor publishes: one frozen state at a time, each with what a UI needs to render it.

Pure data (no asyncio, no Qt). `ava_tray.policy` decides which state follows which;
`ava_tray.supervisor` publishes them and still exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

from ava_tray.realtime.ending import Cause, SessionEnding


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
class Paused:
    """AVA chose not to talk for now (today's budget is spent): no session until it resumes.

    It resumes by itself when the reason passes (the next day) or when the user goes on anyway.
    """

    reason: str
    """The sentence to show: "today's budget of $2.00 is spent"."""


@dataclass(frozen=True)
class Stopped:
    """Nothing runs and nothing will (the user quit)."""


SupervisorState = Connecting | Connected | Reconnecting | WaitingForNetwork | Error | Paused | Stopped
