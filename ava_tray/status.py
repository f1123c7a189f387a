"""AVA's whole status as one immutable snapshot, and the one function that puts it into words.

The engine owns the truth and publishes a `Snapshot` on every change; `describe(snapshot, now)` maps it
to icon, texts and menu. The tray, its menu, the status window, the console's own lines and the
`ava_status` tool all read the same words from here. Qt-free, so every state is unit-tested without a
display.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import assert_never

from ava_tray.ledger import Uplink
from ava_tray.realtime.ending import Cause
from ava_tray.realtime.events import BYTES_PER_SAMPLE, SAMPLE_RATE
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

logger = logging.getLogger(__name__)

PREFIX = "AVA"
SEP = " · "


@dataclass(frozen=True)
class NeedsKey:
    """No API key yet, so no session runs until one is saved (or the demo is chosen)."""


UiState = SupervisorState | NeedsKey


@dataclass(frozen=True)
class LastInterruption:
    """The most recent time AVA went quiet, from the reconnect history."""

    cause: str
    message: str
    at: float
    """Wall time."""


@dataclass(frozen=True)
class Snapshot:
    """Everything a front end shows, at one moment; published by the engine on every change."""

    state: UiState = field(default_factory=NeedsKey)
    muted: bool = False
    echo: str | None = None
    """"on", "off (headphones)" or "unavailable: half-duplex", once audio devices opened; else None."""
    attempt: int = 0
    """Sessions started so far (the console's "attempt #N")."""
    reconnects_today: int = 0
    last_interruption: LastInterruption | None = None
    started_at: float = 0.0
    """Monotonic time the engine started (for the uptime)."""
    spend_today: float = 0.0
    """USD spent today (the spend ledger's estimate)."""
    spend_month: float = 0.0
    budget_usd: float = 0.0
    """The daily budget in USD; 0: none."""
    tool_lines: tuple[str, ...] = ()
    """The MCP servers in a line each (a server that failed to start says so); empty when none is configured."""
    push_to_talk: bool = False
    """The microphone is open only while the global shortcut is held."""
    talking: bool = False
    """The push-to-talk shortcut is held now."""
    shortcut: str = ""
    """The global shortcut as the user knows it ("Ctrl+Alt+A"), for the push-to-talk texts."""
    sending: bool = False
    """Microphone audio is leaving the machine now (the voice gate is open, or off)."""
    sent_today: Uplink = field(default_factory=lambda: Uplink(0, 0))
    """Microphone audio sent to the server today."""
    voice_gate: str | None = None
    """"on", "off (streaming continuously)" or "unavailable: <why>", once audio opened; else None."""

ICON_NAMES = ("connecting", "connected", "hearing", "speaking", "reconnecting", "offline", "error", "paused", "stopped",
              "muted", "push_to_talk")


@dataclass(frozen=True)
class TrayStatus:
    """Everything the tray shows for one state at one moment."""

    icon_name: str
    tooltip: str
    status_line: str
    """The disabled first menu item and the status window's headline."""
    detail: str
    """A longer sentence for the status window (the full error, what to do)."""
    can_restart: bool
    can_mute: bool
    next_change_in: float | None
    """Seconds until the texts change by themselves (countdown, session age); None: they do not."""
    action: str | None = None
    """A one-step way out of this state, offered in the menu, the status window and the notification
    ("Use gpt-realtime-2.1" after a refused model, "Go on anyway" in a budget pause); None: none."""


def cause_text(cause: Cause) -> str:
    """A few words for a cause, as the tooltip and the history table show it."""
    return {
        Cause.SESSION_EXPIRED: "session expired",
        Cause.CONNECTION_LOST: "connection lost",
        Cause.ROLLOVER: "rolled over",
        Cause.FATAL: "error",
        Cause.OTHER: "unexpected error",
        Cause.USER_RESTART: "restarted by you",
        Cause.STOPPED: "stopped",
        Cause.PAUSED: "paused",
    }.get(cause, str(cause.value).replace("_", " "))


def short_reason(message: str) -> str:
    """The first sentence of an error message, lower-cased at the start, without the final full stop."""
    first = message.strip().split(". ", 1)[0].rstrip(".")
    if len(first) > 1 and first[0].isupper() and not first[1].isupper():
        first = first[0].lower() + first[1:]
    return first


def format_age(seconds: float) -> str:
    """A session's age in whole minutes: `<1 min`, `12 min`, `1 h 05 min`."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def countdown(deadline: float, now: float) -> int:
    """Whole seconds left before the deadline, rounded up (3, 2, 1, then 0)."""
    return max(0, math.ceil(deadline - now - 1e-9))


def _until_next_second(deadline: float, now: float) -> float | None:
    left = deadline - now
    if left <= 0:
        return None
    step = left - math.floor(left)
    return step if step > 1e-6 else 1.0


def spend_text(usd: float) -> str:
    """`$0.42`, `$12.30`; under half a cent, `$0.00`."""
    return f"${usd:.2f}"


BYTES_PER_SECOND = SAMPLE_RATE * BYTES_PER_SAMPLE
"""Microphone audio on the wire: 24 kHz PCM16 (before base64)."""


def uplink_text(uplink: Uplink) -> str:
    """`1.4 MB (29 s of audio, 6 times)`: microphone audio sent to the server."""
    size = uplink.bytes
    amount = f"{size / 1e6:.1f} MB" if size >= 1_000_000 else f"{size / 1e3:.0f} kB" if size else "nothing"
    if not size:
        return amount
    seconds = size / BYTES_PER_SECOND
    length = f"{seconds:.0f} s" if seconds < 60 else format_outage(seconds)
    times = f", {uplink.openings} time{'s' if uplink.openings != 1 else ''}" if uplink.openings else ""
    return f"{amount} ({length} of audio{times})"


def describe(snapshot: Snapshot, now: float) -> TrayStatus:
    """Map the whole status at monotonic time `now` to what the tray shows."""
    status = _describe_state(snapshot, now)
    if snapshot.spend_today >= 0.005 or snapshot.budget_usd > 0:
        spent = f"today {spend_text(snapshot.spend_today)}"
        if snapshot.budget_usd > 0:
            spent += f" of {spend_text(snapshot.budget_usd)}"
        status = replace(status, tooltip=SEP.join([status.tooltip, spent]))
    return status


def _describe_state(snapshot: Snapshot, now: float) -> TrayStatus:
    state, muted = snapshot.state, snapshot.muted
    mute_note = ["microphone muted"] if muted else []
    match state:
        case NeedsKey():
            return TrayStatus("stopped", f"{PREFIX}{SEP}Needs an API key", "Needs an API key",
                              "No API key is set. Open Settings to add one, or try the demo.",
                              can_restart=False, can_mute=False, next_change_in=None)
        case Stopped():
            return TrayStatus("stopped", f"{PREFIX}{SEP}Stopped", "Stopped", "AVA is not running.",
                              can_restart=False, can_mute=False, next_change_in=None)
        case Connecting():
            what = "Connecting…" if state.attempt <= 1 else f"Connecting… (attempt #{state.attempt})"
            return TrayStatus("connecting", SEP.join([PREFIX, what, *mute_note]), what,
                              "Opening a session with the Realtime API.",
                              can_restart=True, can_mute=True, next_change_in=None)
        case Connected():
            age = now - state.since
            what = "Speaking" if state.speaking else "Connected"
            waiting = snapshot.push_to_talk and not muted and not snapshot.talking
            ptt_note = [] if not snapshot.push_to_talk or muted else [
                "push-to-talk: talking" if snapshot.talking else f"push-to-talk: hold {snapshot.shortcut or 'the key'}"]
            gated = snapshot.voice_gate in (None, "on")
            sending = snapshot.sending and not muted and not waiting
            hearing = ["hearing you" if gated else "microphone streaming"] if sending else []
            parts = [PREFIX, what, *mute_note, *ptt_note, *hearing, f"session {format_age(age)}"]
            icon = "muted" if muted else ("speaking" if state.speaking else "push_to_talk" if waiting
                                          else "hearing" if sending else "connected")
            if state.speaking:
                detail = "AVA is speaking."
            elif muted:
                detail = "Your microphone is muted: AVA hears silence."
            elif waiting:
                detail = (f"Push-to-talk: hold {snapshot.shortcut or 'the shortcut'} to talk; the microphone is "
                          "closed until then.")
            elif not gated:
                detail = "AVA is listening: the microphone streams to the server all the time (voice gate off)."
            elif sending:
                detail = "AVA hears you: your voice is being sent to the server."
            else:
                detail = "AVA is listening: nothing leaves this computer until someone speaks."
            to_next_minute = 60.0 - (max(0.0, age) % 60.0)
            return TrayStatus(icon, SEP.join(parts), SEP.join(parts[1:]), detail,
                              can_restart=True, can_mute=True, next_change_in=to_next_minute)
        case Reconnecting():
            left = countdown(state.deadline, now)
            what = (f"Reconnecting in {left} s" if left > 0 else "Reconnecting now") + f" (attempt #{state.attempt})"
            parts = [PREFIX, what, cause_text(state.cause)]
            return TrayStatus("reconnecting", SEP.join(parts), SEP.join(parts[1:]), state.ending.message,
                              can_restart=True, can_mute=True,
                              next_change_in=_until_next_second(state.deadline, now))
        case WaitingForNetwork():
            parts = [PREFIX, "Waiting for the network", cause_text(state.cause)]
            return TrayStatus("offline", SEP.join(parts), SEP.join(parts[1:]),
                              "The network is down: AVA reconnects as soon as it is back.",
                              can_restart=True, can_mute=True, next_change_in=None)
        case Error():
            what = f"Error: {short_reason(state.reason)}"
            action = f"Use {state.ending.use_model}" if state.ending.use_model else None
            return TrayStatus("error", f"{PREFIX}{SEP}{what}", what, state.reason,
                              can_restart=True, can_mute=True, next_change_in=None, action=action)
        case Paused():
            what = f"Paused: {state.reason}"
            return TrayStatus("paused", f"{PREFIX}{SEP}{what}", what,
                              f"AVA is paused because {state.reason}. It goes on by itself tomorrow, or now if you "
                              "choose “Go on anyway”.",
                              can_restart=False, can_mute=False, next_change_in=None, action=GO_ON)
        case _:
            assert_never(state)


GO_ON = "Go on anyway"
"""The status action that leaves a budget pause for the rest of the day."""


def state_words(state: UiState) -> str:
    """The state in a few words for the `ava_status` tool (what the model reads)."""
    match state:
        case Connected():
            return "connected, speaking" if state.speaking else "connected"
        case Connecting():
            return "connecting"
        case Reconnecting():
            return f"reconnecting after: {state.ending.message}"
        case WaitingForNetwork():
            return "waiting for the network"
        case Error():
            return f"stopped by an error: {state.reason}"
        case Paused():
            return f"paused: {state.reason}"
        case NeedsKey():
            return "waiting for an API key"
        case Stopped():
            return "stopped"
        case _:
            assert_never(state)


@dataclass(frozen=True)
class Notice:
    """A desktop notification to show."""

    title: str
    message: str
    critical: bool = False


class NotificationPolicy:
    """Decides which state changes deserve a notification: entering Error, and a recovery after a long outage.

    Routine restarts (a session expiring, a short drop) stay quiet.
    """

    def __init__(self, outage_threshold: float = 60.0) -> None:
        self.outage_threshold = outage_threshold
        self._previous: UiState | None = None
        self._down_since: float | None = None

    def on_state(self, state: UiState, now: float) -> Notice | None:
        """Feed every state change (with monotonic `now`); returns the notification to show, if any."""
        previous, self._previous = self._previous, state
        if isinstance(state, Error):
            if self._down_since is None:
                self._down_since = now
            if isinstance(previous, Error):
                return None
            if state.ending.use_model:
                return Notice("AVA stopped reconnecting", f"{state.reason} Click here to use "
                              f"{state.ending.use_model} now.", critical=True)
            return Notice("AVA stopped reconnecting", f"{state.reason} Then choose Restart now.", critical=True)
        if isinstance(state, Connected):
            down_since, self._down_since = self._down_since, None
            if isinstance(previous, Connected) or down_since is None:
                return None
            outage = now - down_since
            if outage > self.outage_threshold:
                return Notice("AVA is back", f"Connected again after {format_outage(outage)} unavailable.")
            return None
        if isinstance(state, (Reconnecting, WaitingForNetwork, Connecting)) and isinstance(previous, Connected):
            self._down_since = now
        return None


def format_outage(seconds: float) -> str:
    """`45 s`, `3 min`, `1 h 20 min`."""
    if seconds < 60:
        return f"{round(seconds)} s"
    return format_age(seconds)
