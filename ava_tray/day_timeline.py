"""A day at a glance: the reconnect history as stretches of state, day by day (Qt-free).

Built from the same records as `history.availability()`, so the strip and the availability figure cannot
disagree: every outage (`history.outages()`, time never connected included) is unavailable and shows as
reconnecting, waiting for the network (the record's `offline` stretches) or error (after a fatal ending);
each ended session shows as connected for its length; a budget pause lasts until the next session or its day's
end. What the history does not cover (AVA not running) stays blank.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from ava_tray.history import ReconnectRecord, availability, outages
from ava_tray.status import format_outage

logger = logging.getLogger(__name__)

StretchKind = Literal["connected", "reconnecting", "offline", "error", "paused"]
KINDS: Final[tuple[StretchKind, ...]] = ("connected", "reconnecting", "offline", "error", "paused")
LABELS: Final[dict[StretchKind, str]] = {"connected": "Connected", "reconnecting": "Reconnecting",
                                         "offline": "Waiting for the network", "error": "Error", "paused": "Paused"}
UNAVAILABLE: Final = frozenset({"reconnecting", "offline", "error"})


@dataclass(frozen=True)
class Stretch:
    """From `begin` to `end` (wall times) AVA was in state `kind`."""

    begin: float
    end: float
    kind: StretchKind

    @property
    def seconds(self) -> float:
        return self.end - self.begin

    def describe(self) -> str:
        """`14:02–14:05 · Reconnecting · 3 min`, what hovering the stretch says."""
        begin = dt.datetime.fromtimestamp(self.begin).strftime("%H:%M")
        end = dt.datetime.fromtimestamp(self.end).strftime("%H:%M")
        return f"{begin}–{end} · {LABELS[self.kind]} · {format_outage(self.seconds)}"


@dataclass(frozen=True)
class Live:
    """What the history cannot know yet: since when AVA is connected now, or that it is paused now."""

    connected_since: float | None = None
    paused: bool = False


def _paint(timeline: list[Stretch], begin: float, end: float, kind: StretchKind) -> list[Stretch]:
    """`timeline` with [begin, end) painted as `kind` over whatever was there."""
    if end <= begin:
        return timeline
    painted: list[Stretch] = []
    for stretch in timeline:
        if stretch.end <= begin or stretch.begin >= end:
            painted.append(stretch)
            continue
        if stretch.begin < begin:
            painted.append(Stretch(stretch.begin, begin, stretch.kind))
        if stretch.end > end:
            painted.append(Stretch(end, stretch.end, stretch.kind))
    painted.append(Stretch(begin, end, kind))
    return sorted(painted, key=lambda s: s.begin)


def _end_of_day(wall: float) -> float:
    day = dt.datetime.fromtimestamp(wall).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time()).timestamp()


def timeline(records: Iterable[ReconnectRecord], now: float, *, ongoing: str | None = None,
             offline_since: float | None = None, live: Live | None = None) -> list[Stretch]:
    """Every known stretch up to `now`, oldest first, none overlapping; `ongoing` and `offline_since` as the
    history keeps them for this run."""
    ordered = sorted(records, key=lambda r: r.at)
    live = live or Live()
    stretches: list[Stretch] = []
    for record in ordered:
        if record.session_s > 0:
            stretches = _paint(stretches, record.at - record.session_s, record.at, "connected")
    for index, record in enumerate(ordered):
        if record.cause != "paused":
            continue
        later = ordered[index + 1:]
        until = min(_end_of_day(record.at), now)
        if later:
            until = min(until, later[0].at - later[0].session_s)
        elif live.paused:
            until = now
        stretches = _paint(stretches, record.at, until, "paused")
    for outage in outages(ordered, now, ongoing=ongoing):
        stretches = _paint(stretches, outage.begin, outage.end, "reconnecting")
        inside = [r for r in ordered if outage.begin <= r.at <= outage.end]
        for position, record in enumerate(inside):
            until = inside[position + 1].at if position + 1 < len(inside) else outage.end
            if record.cause == "fatal":
                stretches = _paint(stretches, record.at, until, "error")
            for begin, end in record.offline:
                stretches = _paint(stretches, max(begin, outage.begin), min(end, outage.end), "offline")
    if offline_since is not None:
        stretches = _paint(stretches, offline_since, now, "offline")
    if live.connected_since is not None:
        stretches = _paint(stretches, live.connected_since, now, "connected")
    merged: list[Stretch] = []
    for stretch in stretches:
        if stretch.end <= stretch.begin:
            continue
        if merged and merged[-1].kind == stretch.kind and stretch.begin - merged[-1].end < 1e-6:
            merged[-1] = Stretch(merged[-1].begin, stretch.end, stretch.kind)  # e.g. sessions rolled over
        else:
            merged.append(stretch)
    return merged


@dataclass(frozen=True)
class Day:
    """One local day's strip: its bounds, its stretches (clipped to it) and its availability."""

    date: dt.date
    begin: float
    end: float
    stretches: tuple[Stretch, ...]
    availability: float
    """The share of the day (until now, for today) AVA was not unavailable, as `history.availability` says."""

    @property
    def unavailable_s(self) -> float:
        return sum(s.seconds for s in self.stretches if s.kind in UNAVAILABLE)

    def at(self, wall: float) -> Stretch | None:
        """The stretch at wall time `wall`, if any."""
        for stretch in self.stretches:
            if stretch.begin <= wall < stretch.end:
                return stretch
        return None


def last_days(records: Iterable[ReconnectRecord], now: float, count: int = 7, *, ongoing: str | None = None,
              offline_since: float | None = None, live: Live | None = None) -> list[Day]:
    """The last `count` local days, oldest first, each clipped from the one timeline."""
    records = list(records)
    whole = timeline(records, now, ongoing=ongoing, offline_since=offline_since, live=live)
    today = dt.datetime.fromtimestamp(now).date()
    days = []
    for back in range(count - 1, -1, -1):
        date = today - dt.timedelta(days=back)
        begin = dt.datetime.combine(date, dt.time()).timestamp()
        end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time()).timestamp()
        clipped = tuple(Stretch(max(s.begin, begin), min(s.end, end, now), s.kind) for s in whole
                        if s.end > begin and s.begin < min(end, now))
        until = min(end, now)
        share = availability(records, until, max(1.0, until - begin), ongoing=ongoing) if until > begin else 1.0
        days.append(Day(date, begin, end, tuple(s for s in clipped if s.end > s.begin), share))
    return days
