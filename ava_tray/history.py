"""Reconnect history: one record per session ending, kept as a bounded JSON Lines file.

Each record is appended and flushed as one line, so a crash loses at most the line being written.
How long AVA was unavailable is only known once the next session is up; it follows as a small
`unavailable` line that the loader folds into its record. Until then the record's outage is ongoing
(`ReconnectHistory.ongoing`, this run only). A corrupt file is set aside (its good records salvaged
into a fresh one), never fatal.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ava_tray.redact import redact

logger = logging.getLogger(__name__)

DAY = 24 * 3600.0


@dataclass(frozen=True)
class ReconnectRecord:
    """One session ending and the reconnect that followed it."""

    at: float
    cause: str
    message: str
    attempt: int
    close_code: int | None = None
    close_reason: str = ""
    error_code: str | None = None
    delay_s: float | None = None
    session_s: float = 0.0
    unavailable_s: float | None = None
    """How long the outage this ending belongs to lasted, from `unavailable_since` until AVA was connected."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    unavailable_since: float | None = None
    """Wall time that outage began: the first ending since AVA was last connected, or AVA's start if it
    had not connected since. None in files written before this was kept: the outage is then taken to
    begin at `at`."""
    offline: tuple[tuple[float, float], ...] = ()
    """Stretches (wall times) after this ending that AVA waited for the network rather than counted down."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReconnectRecord:
        """Build a record from its JSON form; raise ValueError if a field is missing or mistyped."""
        try:
            return cls(
                at=float(data["at"]),
                cause=str(data["cause"]),
                message=str(data.get("message", "")),
                attempt=int(data.get("attempt", 0)),
                close_code=None if data.get("close_code") is None else int(data["close_code"]),
                close_reason=str(data.get("close_reason") or ""),
                error_code=None if data.get("error_code") is None else str(data["error_code"]),
                delay_s=None if data.get("delay_s") is None else float(data["delay_s"]),
                session_s=float(data.get("session_s") or 0.0),
                unavailable_s=None if data.get("unavailable_s") is None else float(data["unavailable_s"]),
                id=str(data["id"]),
                unavailable_since=None if data.get("unavailable_since") is None else float(data["unavailable_since"]),
                offline=tuple((float(begin), float(end)) for begin, end in data.get("offline") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a reconnect record: {exc}") from exc


HistoryListener = Callable[[], None]


class ReconnectHistory:
    """The records in memory, mirrored to `path` (JSON Lines), bounded to `max_records`."""

    def __init__(self, path: Path | None, *, max_records: int = 2000) -> None:
        self.path = path
        self.max_records = max_records
        self._records: list[ReconnectRecord] = []
        self._lines_on_disk = 0
        self._listeners: list[HistoryListener] = []
        self.warning: str | None = None
        self.ongoing: str | None = None
        """The id of the record whose outage still lasts (AVA has not connected since), in this run only."""
        self.offline_since: float | None = None
        """Wall time AVA began waiting for the network, while it still waits (this run only)."""
        if path is not None:
            self._load(path)

    # -- reading -------------------------------------------------------------------------------

    @property
    def records(self) -> list[ReconnectRecord]:
        return list(self._records)

    def subscribe(self, listener: HistoryListener) -> Callable[[], None]:
        """Call `listener()` after every change (append, update, clear)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- writing -------------------------------------------------------------------------------

    def append(self, record: ReconnectRecord, *, ongoing: bool = False) -> None:
        """Add a record and persist it at once; `ongoing`: AVA is unavailable from it on, until
        `set_unavailable` or `outage_over` says otherwise."""
        record = replace(record, message=redact(record.message), close_reason=redact(record.close_reason))
        self._records.append(record)
        self.ongoing = record.id if ongoing else None
        self._write_line({"kind": "record", **asdict(record)})
        self._trim()
        self._changed()

    def set_unavailable(self, record_id: str, seconds: float) -> None:
        """Complete a record with how long AVA was unavailable after it."""
        for index, record in enumerate(self._records):
            if record.id == record_id:
                self._records[index] = replace(record, unavailable_s=seconds)
                if self.ongoing == record_id:
                    self.ongoing = None
                self._write_line({"kind": "unavailable", "id": record_id, "unavailable_s": seconds})
                self._changed()
                return

    def waiting_for_network(self, since: float | None) -> None:
        """AVA began waiting for the network at wall time `since` (None: it no longer waits)."""
        self.offline_since = since
        self._changed()

    def note_offline(self, begin: float, end: float) -> None:
        """AVA waited for the network from `begin` to `end`: kept with the last ending before `begin`.

        Written as that record again (the loader keeps the last line of a record; older versions ignore the
        field), so the file stays readable by every version.
        """
        for index in range(len(self._records) - 1, -1, -1):
            record = self._records[index]
            if record.at <= begin + 1e-6:
                updated = replace(record, offline=(*record.offline, (begin, end)))
                self._records[index] = updated
                self._write_line({"kind": "record", **asdict(updated)})
                self._trim()
                self._changed()
                return

    def outage_over(self, record_id: str) -> None:
        """AVA stopped while unavailable after `record_id`: its outage no longer lasts (its length stays unknown)."""
        if self.ongoing == record_id:
            self.ongoing = None
            self._changed()

    def clear(self) -> None:
        """Forget every record (the user confirmed it)."""
        self._records.clear()
        self.ongoing = None
        if self.path is not None:
            self._rewrite([])
        self._changed()

    def _changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                logger.exception("a history listener failed")

    def _write_line(self, data: dict[str, Any]) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(data, separators=(",", ":")) + "\n")
                file.flush()
                os.fsync(file.fileno())
            self._lines_on_disk += 1
        except OSError as exc:
            logger.warning("could not write the reconnect history to %s: %s", self.path, exc)

    def _trim(self) -> None:
        if len(self._records) > self.max_records:
            del self._records[: len(self._records) - self.max_records]
        if self.path is not None and self._lines_on_disk > 2 * self.max_records:
            self._rewrite(self._records)

    def _rewrite(self, records: Iterable[ReconnectRecord]) -> None:
        """Replace the file atomically with exactly `records`."""
        assert self.path is not None
        temporary = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as file:
                count = 0
                for record in records:
                    file.write(json.dumps({"kind": "record", **asdict(record)}, separators=(",", ":")) + "\n")
                    count += 1
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
            self._lines_on_disk = count
        except OSError as exc:
            logger.warning("could not rewrite the reconnect history %s: %s", self.path, exc)

    # -- loading -------------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self.warning = f"The reconnect history {path} could not be read ({exc.strerror}); starting afresh."
            logger.warning("%s", self.warning)
            return
        lines = raw.split(b"\n")
        torn_tail = lines[-1] != b""  # a crash while writing the last line
        if not torn_tail:
            lines.pop()
        records: dict[str, ReconnectRecord] = {}
        bad = 0
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                self._fold(json.loads(line), records)
            except ValueError:
                if torn_tail and number == len(lines) - 1:
                    logger.info("dropped a half-written last line of %s", path)
                    continue
                bad += 1
        self._records = sorted(records.values(), key=lambda r: r.at)[-self.max_records:]
        self._lines_on_disk = len(lines)
        if bad:
            aside = path.with_name(f"{path.stem}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
            try:
                os.replace(path, aside)
            except OSError as exc:
                logger.warning("could not set the corrupt history aside: %s", exc)
            self.warning = (f"The reconnect history was damaged ({bad} unreadable lines). It was set aside as "
                            f"{aside.name}; {len(self._records)} records were kept.")
            logger.warning("%s", self.warning)
            self._rewrite(self._records)
        elif torn_tail:
            self._rewrite(self._records)

    @staticmethod
    def _fold(data: Any, records: dict[str, ReconnectRecord]) -> None:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        kind = data.get("kind", "record")
        if kind == "record":
            fields = {k: v for k, v in data.items() if k != "kind"}
            record = ReconnectRecord.from_json(fields)
            records[record.id] = record
        elif kind == "unavailable":
            record_id = str(data.get("id"))
            if record_id in records:
                records[record_id] = replace(records[record_id], unavailable_s=float(data["unavailable_s"]))
        else:
            raise ValueError(f"unknown kind {kind!r}")


# -- summaries ---------------------------------------------------------------------------------

COUNTED_CAUSES = frozenset({"session_expired", "connection_lost", "other", "fatal"})


def reconnects_since(records: Iterable[ReconnectRecord], since: float) -> int:
    """How many sessions ended on their own (not by the user) since the wall time `since`."""
    return sum(1 for r in records if r.at >= since and r.cause in COUNTED_CAUSES)


def start_of_today(now: float) -> float:
    """Local midnight before the wall time `now`."""
    local = time.localtime(now)
    return time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))


@dataclass(frozen=True)
class Outage:
    """A span of wall time AVA was unavailable, after the ending `record_id`; `ongoing` if it lasts until now."""

    begin: float
    end: float
    record_id: str
    ongoing: bool = False


def outages(records: Iterable[ReconnectRecord], now: float, *, ongoing: str | None = None) -> list[Outage]:
    """When AVA was unavailable, oldest first: each completed outage, and the `ongoing` record's until `now`.

    An outage begins at the record's `unavailable_since` (the time since AVA's start counts when it
    never connected); records written before that was kept begin at `at`.
    """
    spans = []
    for record in records:
        begin = record.at if record.unavailable_since is None else record.unavailable_since
        if record.unavailable_s is not None:
            spans.append(Outage(begin, begin + record.unavailable_s, record.id))
        elif record.id == ongoing:
            spans.append(Outage(begin, max(begin, now), record.id, ongoing=True))
    return sorted(spans, key=lambda outage: outage.begin)


def availability(records: Iterable[ReconnectRecord], now: float, window: float = DAY, *,
                 ongoing: str | None = None) -> float:
    """The share of the last `window` seconds that AVA was not unavailable, from 0.0 to 1.0."""
    start = now - window
    down = sum(max(0.0, min(outage.end, now) - max(outage.begin, start))
               for outage in outages(records, now, ongoing=ongoing))
    return max(0.0, 1.0 - down / window)


def last_cause(records: list[ReconnectRecord]) -> ReconnectRecord | None:
    """The most recent ending that was not asked for by the user."""
    for record in reversed(records):
        if record.cause in COUNTED_CAUSES:
            return record
    return None
