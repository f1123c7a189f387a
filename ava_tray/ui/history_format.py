"""The reconnect history as table rows, tab-separated text and CSV (Qt-free)."""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ava_tray.history import ReconnectRecord, availability, reconnects_since, start_of_today
from ava_tray.ledger import Uplink
from ava_tray.realtime.ending import Cause
from ava_tray.status import cause_text, format_outage, uplink_text

logger = logging.getLogger(__name__)

COLUMNS = ("Time", "Cause", "Close reason", "Delay", "Unavailable for", "Session length")
ONGOING = "ongoing"
"""The "Unavailable for" of the ending AVA has not reconnected since."""


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s" if value < 10 and value != int(value) else f"{value:.0f} s"
    return format_outage(value)


def _cause(record: ReconnectRecord) -> str:
    try:
        return cause_text(Cause(record.cause))
    except ValueError:
        return record.cause.replace("_", " ")


def _close(record: ReconnectRecord) -> str:
    parts = []
    if record.close_code is not None:
        parts.append(str(record.close_code))
    if record.close_reason:
        parts.append(record.close_reason)
    elif record.error_code:
        parts.append(record.error_code)
    return " ".join(parts) if parts else "—"


def row(record: ReconnectRecord, *, ongoing: bool = False) -> list[str]:
    """One record as the table shows it; `ongoing`: AVA has been unavailable ever since."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.at))
    delay = "waits for you" if record.delay_s is None and record.cause == Cause.FATAL.value else _seconds(
        record.delay_s)
    unavailable = ONGOING if ongoing and record.unavailable_s is None else _seconds(record.unavailable_s)
    return [stamp, _cause(record), _close(record), delay, unavailable, _seconds(record.session_s)]


COST_COLUMN = "Session cost"
SessionCost = Callable[[float, float], float]
"""What the responses between two wall times cost (the spend ledger)."""


def rows(records: Iterable[ReconnectRecord], *, ongoing: str | None = None,
         cost_of: SessionCost | None = None) -> list[list[str]]:
    """Newest first; `ongoing` is the id of the record whose outage still lasts; with `cost_of`, a last column
    says what the session that ended there cost."""
    ordered = sorted(records, key=lambda r: r.at, reverse=True)
    if cost_of is None:
        return [row(r, ongoing=r.id == ongoing) for r in ordered]
    return [[*row(r, ongoing=r.id == ongoing), session_cost(r, cost_of)] for r in ordered]


def session_cost(record: ReconnectRecord, cost_of: SessionCost) -> str:
    """`$0.42` for the session that ended at `record`; `—` when it had no time or cost nothing."""
    if record.session_s <= 0:
        return "—"
    cost = cost_of(record.at - record.session_s, record.at)
    return f"${cost:.2f}" if cost >= 0.005 else "—"


def to_tsv(records: Iterable[ReconnectRecord], *, ongoing: str | None = None) -> str:
    """Tab-separated, with a header line: pastes into a spreadsheet."""
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(cell.replace("\t", " ") for cell in r) for r in rows(records, ongoing=ongoing)]
    return "\n".join(lines) + "\n"


def csv_text(records: Iterable[ReconnectRecord]) -> str:
    """Machine-readable CSV: ISO times and plain seconds, plus the message."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "cause", "message", "close_code", "close_reason", "error_code", "delay_s",
                     "unavailable_s", "session_s", "attempt"])
    for r in sorted(records, key=lambda r: r.at):
        writer.writerow([time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(r.at)), r.cause, r.message,
                         "" if r.close_code is None else r.close_code, r.close_reason, r.error_code or "",
                         "" if r.delay_s is None else r.delay_s,
                         "" if r.unavailable_s is None else r.unavailable_s, r.session_s, r.attempt])
    return out.getvalue()


def export_csv(records: Iterable[ReconnectRecord], path: Path) -> None:
    """Write the records to `path` as CSV."""
    path.write_text(csv_text(records), encoding="utf-8", newline="")
    logger.info("exported the reconnect history to %s", path)


def totals(records: list[ReconnectRecord], now: float, *, ongoing: str | None = None,
           sent_today: Uplink | None = None) -> str:
    """`Reconnects today: 3 · Availability (last 24 h): 99.7 % · Microphone audio sent today: 1.4 MB (...)` for
    wall time `now`; `ongoing` is the id of the record whose outage still lasts (it counts until `now`)."""
    today = reconnects_since(records, start_of_today(now))
    share = availability(records, now, ongoing=ongoing) * 100
    line = f"Reconnects today: {today} · Availability (last 24 h): {format_share(share)} %"
    if sent_today is not None:
        line += f" · Microphone audio sent today: {uplink_text(sent_today)}"
    return line


def format_share(percent: float) -> str:
    """99.7, or 99.997 rather than a misleading 100.0 when AVA was away for a few seconds."""
    if percent >= 100.0:
        return "100"
    text = f"{percent:.1f}"
    decimals = 1
    while text.startswith("100") and decimals < 4:
        decimals += 1
        text = f"{percent:.{decimals}f}"
    return f"{min(percent, 99.9999):.{decimals}f}" if text.startswith("100") else text
