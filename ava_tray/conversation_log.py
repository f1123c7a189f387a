"""The conversation as the user reads it: turns, tool calls with their results, and markers (Qt-free).

The engine feeds it (finished transcripts, tool calls, barge-ins, state changes) and it tells its listeners
what changed; the conversation window renders it. Today's entries are kept in memory; with saving on (the
settings' `save_transcript`) every finished entry is also appended to one JSON Lines file per day, which is
how earlier days can be read back, and `clear()` deletes them all. Saved text is redacted like the logs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ava_tray.redact import redact
from ava_tray.states import Connected, SupervisorState
from ava_tray.status import format_outage

if TYPE_CHECKING:
    from ava_tray.realtime.events import ToolSpec
    from ava_tray.session import ToolHost

logger = logging.getLogger(__name__)

LEGACY_FILE = "transcript.jsonl"
"""Where earlier versions appended the transcript when saving was on (deleted by `clear()` too)."""
SPEAKERS = {"user": "You", "assistant": "AVA"}
MarkerKind = Literal["renewed", "reconnected"]


@dataclass(frozen=True, slots=True)
class Turn:
    """What the user or AVA said, once its transcript was complete."""

    role: str
    """"user" or "assistant"."""
    text: str
    at: float
    """Wall time."""
    cut_after_ms: int | None = None
    """AVA's turn was cut by the user speaking (barge-in) after this much of it was heard."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool AVA ran; `output` is None while it runs."""

    name: str
    arguments: str
    at: float
    call_id: str = ""
    output: str | None = None


@dataclass(frozen=True, slots=True)
class Marker:
    """A moment between turns: the session was renewed, or AVA reconnected (after `seconds` away)."""

    kind: MarkerKind
    text: str
    at: float
    seconds: float | None = None


LogEntry = Turn | ToolCall | Marker


@dataclass(frozen=True)
class Appended:
    """Entries from `first` on are new (at the end)."""

    first: int


@dataclass(frozen=True)
class Replaced:
    """The entry at `index` changed (a tool's result came, a turn was cut)."""

    index: int


@dataclass(frozen=True)
class Reset:
    """Everything changed (cleared, or a new day began)."""


LogChange = Appended | Replaced | Reset
LogListener = Callable[[LogChange], None]


def local_day(wall: float) -> dt.date:
    """The local calendar day of wall time `wall`."""
    return dt.datetime.fromtimestamp(wall).date()


class ConversationLog:
    """Today's conversation in memory (and on disk per day when saving is on); listeners hear every change."""

    def __init__(self, *, save_dir: Path | None = None, saving: bool = False,
                 wall: Callable[[], float] | None = None) -> None:
        self.save_dir = save_dir
        """The folder of saved days (`YYYY-MM-DD.jsonl`); its parent holds the legacy transcript file."""
        self._saving = saving
        self._wall = wall or time.time
        self._entries: list[LogEntry] = []
        self._listeners: list[LogListener] = []
        self._day = local_day(self._wall())
        self._pending_cut: int | None = None
        self._last_connected: Connected | None = None
        self._down_since: float | None = None
        if saving:
            self._entries = self.load_day(self._day)

    # -- reading -------------------------------------------------------------------------------

    @property
    def entries(self) -> list[LogEntry]:
        """Today's entries, oldest first (a copy)."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, index: int) -> LogEntry:
        return self._entries[index]

    @property
    def day(self) -> dt.date:
        """The day the entries in memory belong to."""
        return self._day

    @property
    def saving(self) -> bool:
        return self._saving and self.save_dir is not None

    def set_saving(self, saving: bool) -> None:
        """Turn saving on or off (Settings); from now on finished entries are written, or no longer."""
        self._saving = saving

    def subscribe(self, listener: LogListener) -> Callable[[], None]:
        """Call `listener(change)` after every change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def saved_days(self) -> list[dt.date]:
        """Days with a saved conversation, newest first (empty when saving was never on)."""
        if self.save_dir is None or not self.save_dir.is_dir():
            return []
        days = []
        for path in self.save_dir.glob("*.jsonl"):
            try:
                days.append(dt.date.fromisoformat(path.stem))
            except ValueError:
                continue
        return sorted(days, reverse=True)

    def load_day(self, day: dt.date) -> list[LogEntry]:
        """The saved entries of `day` (empty if none); unreadable lines are skipped."""
        if self.save_dir is None:
            return []
        path = self.save_dir / f"{day.isoformat()}.jsonl"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            logger.warning("could not read the saved conversation %s: %s", path, exc)
            return []
        entries: list[LogEntry] = []
        for line in lines:
            try:
                _fold(json.loads(line), entries)
            except (ValueError, KeyError, TypeError):
                logger.debug("skipped an unreadable line of %s", path)
        return entries

    # -- what happens --------------------------------------------------------------------------

    def heard(self, role: str, text: str) -> None:
        """A finished transcript: the user's (`user`) or AVA's (`assistant`)."""
        text = " ".join(text.split())
        if not text or role not in SPEAKERS:
            return
        turn = Turn(role, text, self._now())
        if role == "assistant" and self._pending_cut is not None:
            turn = replace(turn, cut_after_ms=self._pending_cut)
            self._pending_cut = None
        self._append(turn)

    def tool_started(self, name: str, arguments: str, call_id: str = "") -> ToolCall:
        """A tool call began; returns its entry for `tool_finished`."""
        call = ToolCall(name, arguments, self._now(), call_id)
        self._append(call, save=False)
        return call

    def tool_finished(self, call: ToolCall, output: str) -> None:
        """`call` returned `output`, folded into the same entry (gone after a clear: nothing to do)."""
        for index in range(len(self._entries) - 1, -1, -1):
            if self._entries[index] is call:
                done = replace(call, output=output)
                self._entries[index] = done
                self._save(done)
                self._changed(Replaced(index))
                return

    def barged_in(self, played_ms: int) -> None:
        """The user spoke over AVA: its current turn was cut after `played_ms`.

        AVA's transcript usually arrives before its audio has played out, so the last AVA turn since the
        user's is the one cut; if none has arrived yet, the next one is marked when it does.
        """
        for index in range(len(self._entries) - 1, -1, -1):
            entry = self._entries[index]
            if isinstance(entry, Turn) and entry.role == "user":
                break
            if isinstance(entry, Turn) and entry.role == "assistant":
                if entry.cut_after_ms is None:
                    cut = replace(entry, cut_after_ms=played_ms)
                    self._entries[index] = cut
                    self._save({"kind": "cut", "at": entry.at, "cut_after_ms": played_ms})
                    self._changed(Replaced(index))
                return
        self._pending_cut = played_ms

    def on_state(self, state: SupervisorState) -> None:
        """Every supervisor state: a renewal or a reconnection after a time away becomes a marker."""
        if not isinstance(state, Connected):
            if self._last_connected is not None and self._down_since is None:
                self._down_since = self._now()
            return
        last, self._last_connected = self._last_connected, state
        if last is None:
            self._down_since = None
            return
        if state.attempt == last.attempt:
            if state.rollovers > last.rollovers:
                self._append(Marker("renewed", "Session renewed before its limit", self._now()))
            return
        if self._down_since is not None:
            away = max(0.0, self._now() - self._down_since)
            self._down_since = None
            self._append(Marker("reconnected", f"Reconnected after {format_outage(away)}", self._now(), away))

    def clear(self) -> None:
        """Forget today's entries and delete every saved day (and the legacy transcript file)."""
        self._entries.clear()
        self._pending_cut = None
        if self.save_dir is not None:
            try:
                if self.save_dir.exists():
                    shutil.rmtree(self.save_dir)
                (self.save_dir.parent / LEGACY_FILE).unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("could not delete the saved conversation: %s", exc)
        logger.info("the conversation was cleared")
        self._changed(Reset())

    # -- internals -----------------------------------------------------------------------------

    def _now(self) -> float:
        return self._wall()

    def _append(self, entry: LogEntry, *, save: bool = True) -> None:
        day = local_day(entry.at)
        if day != self._day:  # a new day: yesterday's entries leave memory (saved ones stay on disk)
            self._day = day
            self._entries.clear()
            self._changed(Reset())
        self._entries.append(entry)
        if save:
            self._save(entry)
        self._changed(Appended(len(self._entries) - 1))

    def _save(self, item: LogEntry | dict[str, Any]) -> None:
        if not self.saving:
            return
        assert self.save_dir is not None
        data = item if isinstance(item, dict) else entry_json(item, redacted=True)
        path = self.save_dir / f"{local_day(float(data['at'])).isoformat()}.jsonl"
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
        except OSError as exc:
            logger.warning("could not save the conversation to %s: %s", path, exc)

    def _changed(self, change: LogChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                logger.exception("a conversation listener failed")


class LoggedTools:
    """A `ToolHost` that notes each call and its result in the conversation log, then answers as `inner` does."""

    def __init__(self, inner: ToolHost, log: ConversationLog) -> None:
        self.inner = inner
        self.log = log

    def specs(self) -> tuple[ToolSpec, ...]:
        return self.inner.specs()

    def instructions_suffix(self) -> str:
        return self.inner.instructions_suffix()

    @property
    def version(self) -> int:
        return self.inner.version

    async def call(self, name: str, arguments: str, call_id: str) -> str:
        entry = self.log.tool_started(name, arguments, call_id)
        try:
            output = await self.inner.call(name, arguments, call_id)
        except asyncio.CancelledError:
            self.log.tool_finished(entry, "(cancelled: the session ended)")
            raise
        self.log.tool_finished(entry, output)
        return output


# -- as text and data ------------------------------------------------------------------------------


def entry_json(entry: LogEntry, *, redacted: bool = False) -> dict[str, Any]:
    """One entry as JSON data (what is saved and exported)."""
    clean = redact if redacted else (lambda text: text)
    match entry:
        case Turn():
            data: dict[str, Any] = {"kind": "turn", "role": entry.role, "text": clean(entry.text), "at": entry.at}
            if entry.cut_after_ms is not None:
                data["cut_after_ms"] = entry.cut_after_ms
            return data
        case ToolCall():
            return {"kind": "tool", "name": entry.name, "arguments": clean(entry.arguments),
                    "output": None if entry.output is None else clean(entry.output), "at": entry.at,
                    "call_id": entry.call_id}
        case Marker():
            return {"kind": "marker", "marker": entry.kind, "text": entry.text, "at": entry.at,
                    "seconds": entry.seconds}


_LEGACY_TOOL = re.compile(r"^(?P<name>[\w.-]+)\((?P<arguments>.*)\) -> (?P<output>.*)$", re.DOTALL)


def _fold(data: Any, entries: list[LogEntry]) -> None:
    """Add one saved line to `entries` (a cut marks the turn it names)."""
    if not isinstance(data, dict):
        raise ValueError("not an object")
    kind = data.get("kind")
    at = float(data["at"])
    if kind == "turn" or (kind is None and data.get("role") in SPEAKERS):  # kind-less: the old transcript lines
        cut = data.get("cut_after_ms")
        entries.append(Turn(str(data["role"]), str(data["text"]), at, None if cut is None else int(cut)))
    elif kind == "tool":
        output = data.get("output")
        entries.append(ToolCall(str(data["name"]), str(data.get("arguments", "")), at, str(data.get("call_id", "")),
                                None if output is None else str(output)))
    elif kind is None and data.get("role") == "tool":
        match = _LEGACY_TOOL.match(str(data["text"]))
        name, arguments, output = match.group("name", "arguments", "output") if match else ("tool", "",
                                                                                              str(data["text"]))
        entries.append(ToolCall(name, arguments, at, "", output))
    elif kind == "marker":
        marker = str(data["marker"])
        if marker not in ("renewed", "reconnected"):
            raise ValueError(f"unknown marker {marker!r}")
        kind_of: MarkerKind = "renewed" if marker == "renewed" else "reconnected"
        seconds = data.get("seconds")
        entries.append(Marker(kind_of, str(data["text"]), at, None if seconds is None else float(seconds)))
    elif kind == "cut":
        for index in range(len(entries) - 1, -1, -1):
            entry = entries[index]
            if isinstance(entry, Turn) and entry.at == at:
                entries[index] = replace(entry, cut_after_ms=int(data["cut_after_ms"]))
                break
    else:
        raise ValueError(f"unknown kind {kind!r}")


def clock_time(wall: float) -> str:
    """`14:02:05` in local time."""
    return dt.datetime.fromtimestamp(wall).strftime("%H:%M:%S")


def cut_text(cut_after_ms: int) -> str:
    """`cut off by you after 1.2 s`."""
    return f"cut off by you after {cut_after_ms / 1000:.1f} s"


def plain_text(entry: LogEntry) -> str:
    """One entry as a line of text (Copy, search)."""
    match entry:
        case Turn():
            line = f"{SPEAKERS[entry.role]} ({clock_time(entry.at)}): {entry.text}"
            return line + (f" [{cut_text(entry.cut_after_ms)}]" if entry.cut_after_ms is not None else "")
        case ToolCall():
            result = "running…" if entry.output is None else entry.output
            return f"Tool {entry.name}({entry.arguments}) ({clock_time(entry.at)}) → {result}"
        case Marker():
            return f"— {entry.text} ({clock_time(entry.at)}) —"


def matches(entry: LogEntry, query: str) -> bool:
    """True when `query` (case-insensitive) occurs in what the entry says."""
    needle = query.strip().casefold()
    if not needle:
        return True
    match entry:
        case Turn():
            haystack = entry.text
        case ToolCall():
            haystack = f"{entry.name} {entry.arguments} {entry.output or ''}"
        case Marker():
            haystack = entry.text
    return needle in haystack.casefold()


def to_markdown(entries: Iterable[LogEntry], day: dt.date) -> str:
    """The conversation as Markdown: one paragraph per turn, tool calls as quotes, markers as rules."""
    lines = [f"# Conversation with AVA, {day.isoformat()}", ""]
    for entry in entries:
        match entry:
            case Turn():
                text = entry.text
                if entry.cut_after_ms is not None:
                    text += f" *({cut_text(entry.cut_after_ms)})*"
                lines += [f"**{SPEAKERS[entry.role]}** ({clock_time(entry.at)}): {text}", ""]
            case ToolCall():
                result = "*(running)*" if entry.output is None else f"`{_one_line(entry.output)}`"
                lines += [f"> Tool `{entry.name}({_one_line(entry.arguments)})` → {result}", ""]
            case Marker():
                lines += [f"--- *{entry.text} ({clock_time(entry.at)})* ---", ""]
    return "\n".join(lines)


def to_json(entries: Iterable[LogEntry], day: dt.date) -> str:
    """The conversation as JSON: the day and its entries, each with an ISO local time."""
    items = []
    for entry in entries:
        data = entry_json(entry)
        data["time"] = dt.datetime.fromtimestamp(entry.at).astimezone().isoformat(timespec="seconds")
        items.append(data)
    return json.dumps({"day": day.isoformat(), "entries": items}, ensure_ascii=False, indent=2) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")
