"""How the conversation window copes with a whole day: time to open it over N turns, and the memory it holds.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_conversation.py [--turns 5000] [--runs 5]

(offscreen by default; under `bash scripts/with-services.sh` it opens on the Xvfb display instead). "Open" is
from constructing the window to its first paint with the view laid out and scrolled to the newest turn.
Memory: the process's resident size before and after (the window's share), and the Python objects the window
allocated (tracemalloc), beside what the log's entries themselves take.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
import tracemalloc

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")

from PySide6.QtCore import QCoreApplication, QEvent, QObject
from PySide6.QtWidgets import QApplication

from ava_tray.conversation_log import ConversationLog
from ava_tray.states import Connected
from ava_tray.ui.conversation_window import ConversationWindow

SENTENCE = ("the meeting moved to three so I need a reminder and the weather in Lyon tomorrow please tell me "
            "about the train times and whether it will rain before I leave work today")
WORDS = SENTENCE.split(" ")


def rss_mib() -> float:
    """The process's resident set size now, in MiB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def a_day(turns: int) -> ConversationLog:
    """A log with `turns` turns: short questions, longer answers, a tool call every 25 and a renewal every 500."""
    log = ConversationLog(wall=lambda: time.time())
    log.on_state(Connected(1, 0.0))
    for n in range(turns):
        if n % 2 == 0:
            log.heard("user", " ".join(WORDS[(n * 7) % 20:(n * 7) % 20 + 8 + n % 9]))
        else:
            log.heard("assistant", " ".join((WORDS * 3)[(n * 5) % 30:(n * 5) % 30 + 25 + n % 40]))
        if n % 25 == 24:
            call = log.tool_started("get_time", "{}")
            log.tool_finished(call, '{"date": "Monday 14 December 2026", "time": "09:00"}')
        if n % 500 == 499:
            log.on_state(Connected(1, 0.0, rollovers=n // 500 + 1))
    return log


class FirstPaint(QObject):
    """Notes when the list's viewport is first painted."""

    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and self.at is None:
            self.at = time.perf_counter()
        return False


def open_once(log: ConversationLog) -> tuple[float, ConversationWindow]:
    """Seconds from constructing the window to its first paint, laid out and at the newest turn."""
    painted = FirstPaint()
    began = time.perf_counter()
    window = ConversationWindow(log)
    window.view.viewport().installEventFilter(painted)
    window.show()
    deadline = time.monotonic() + 30
    while painted.at is None or window.view.verticalScrollBar().value() < window.view.verticalScrollBar().maximum():
        QCoreApplication.processEvents()
        if time.monotonic() > deadline:
            raise SystemExit("the window did not paint within 30 s")
    assert painted.at is not None
    return painted.at - began, window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    print(f"Qt platform: {QApplication.platformName()}")

    gc.collect()
    tracemalloc.start()
    before_log = tracemalloc.take_snapshot()
    log = a_day(args.turns)
    log_bytes = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before_log, "filename"))
    tracemalloc.stop()
    print(f"log: {len(log)} entries ({args.turns} turns), {log_bytes / 2**20:.1f} MiB of Python objects")

    timings = []
    for _ in range(args.runs):
        took, window = open_once(log)
        timings.append(took)
        window.close()
        window.deleteLater()
        QCoreApplication.processEvents()
    print(f"time to open with {args.turns} turns: median {statistics.median(timings) * 1000:.0f} ms, "
          f"min {min(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms ({args.runs} runs; the first "
          f"{timings[0] * 1000:.0f} ms)")

    gc.collect()
    rss_before = rss_mib()
    tracemalloc.start()
    snapshot = tracemalloc.take_snapshot()
    _, window = open_once(log)
    gc.collect()
    held_python = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snapshot, "filename"))
    tracemalloc.stop()
    rss_after = rss_mib()
    print(f"memory the open window holds: {rss_after - rss_before:.1f} MiB resident "
          f"(process {rss_before:.0f} → {rss_after:.0f} MiB), of which Python objects {held_python / 2**20:.2f} MiB")

    window.view.verticalScrollBar().setValue(0)
    began = time.perf_counter()
    log.heard("user", "one more question at the end of a long day")
    QCoreApplication.processEvents()
    print(f"a new turn with {len(log)} rows shown (scrolled away from the end): "
          f"{(time.perf_counter() - began) * 1000:.1f} ms")
    began = time.perf_counter()
    window.search_edit.setText("rain")
    QCoreApplication.processEvents()
    print(f"search over {len(log)} rows: {(time.perf_counter() - began) * 1000:.0f} ms "
          f"({window.filter.rowCount()} found)")
    window.close()
    del app


if __name__ == "__main__":
    main()
