"""The conversation log: turns in order, tool results folded in, cuts and markers, saving per day, clearing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ava_tray.conversation_log import (
    Appended,
    ConversationLog,
    Marker,
    Replaced,
    Reset,
    ToolCall,
    Turn,
    matches,
    to_json,
    to_markdown,
)
from ava_tray.realtime.ending import Cause, SessionEnding
from ava_tray.states import Connected, Connecting, Reconnecting

DAY = dt.datetime(2026, 12, 14, 9, 0, 0).timestamp()
LOST = SessionEnding(Cause.CONNECTION_LOST, "Connection lost")


class Wall:
    def __init__(self, now: float = DAY) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_turns_tools_and_cuts_in_the_order_they_happened() -> None:
    wall = Wall()
    log = ConversationLog(wall=wall)
    changes: list[object] = []
    log.subscribe(changes.append)
    log.heard("user", "  what   time is it ")
    call = log.tool_started("get_time", "{}", "call_1")
    wall.now += 1
    log.tool_finished(call, "09:00")
    log.heard("assistant", "It is nine.")
    log.barged_in(1200)
    log.heard("user", "")  # an empty transcript is no turn
    entries = log.entries
    assert [type(e).__name__ for e in entries] == ["Turn", "ToolCall", "Turn"]
    assert entries[0] == Turn("user", "what time is it", DAY)
    assert isinstance(entries[1], ToolCall) and entries[1].output == "09:00"
    assert entries[2] == Turn("assistant", "It is nine.", DAY + 1, cut_after_ms=1200)
    assert changes == [Appended(0), Appended(1), Replaced(1), Appended(2), Replaced(2)]


def test_a_cut_before_the_transcript_marks_the_next_turn_of_ava() -> None:
    log = ConversationLog(wall=Wall())
    log.heard("user", "tell me a story")
    log.barged_in(800)
    log.heard("assistant", "Once upon a time")
    last = log.entries[-1]
    assert isinstance(last, Turn) and last.cut_after_ms == 800


def test_renewal_and_reconnection_become_markers_with_the_time_away() -> None:
    wall = Wall()
    log = ConversationLog(wall=wall)
    log.on_state(Connecting(1, 0.0))
    log.on_state(Connected(1, 0.0))
    assert log.entries == []  # the first connection is no marker
    log.on_state(Connected(1, 0.0, speaking=True))
    log.on_state(Connected(1, 10.0, rollovers=1))
    log.on_state(Reconnecting(LOST, 2, 20.0, 5.0))
    wall.now += 75
    log.on_state(Connecting(2, 20.0))
    log.on_state(Connected(2, 25.0))
    assert log.entries == [Marker("renewed", "Session renewed before its limit", DAY),
                           Marker("reconnected", "Reconnected after 1 min", DAY + 75, 75.0)]


KEY_LIKE = "sk-" "abcdefghijklmnopqrstuvwx"
"""Shaped like an API key (built from two literals so no key-like string sits in the tree)."""


def test_saving_writes_each_day_apart_reads_it_back_and_clear_deletes_it(tmp_path: Path) -> None:
    wall = Wall()
    folder = tmp_path / "conversation"
    (tmp_path / "transcript.jsonl").write_text('{"role": "user", "text": "old", "at": 1.0}\n')
    log = ConversationLog(save_dir=folder, saving=True, wall=wall)
    log.heard("user", f"my key is {KEY_LIKE}")
    call = log.tool_started("calculator", '{"expression": "2+2"}')
    log.tool_finished(call, "4")
    log.heard("assistant", "Four.")
    log.barged_in(500)
    wall.now += 86_400  # the next day: yesterday leaves memory, today's file starts
    log.heard("user", "good morning")
    assert [e.text for e in log.entries if isinstance(e, Turn)] == ["good morning"]
    assert log.saved_days() == [dt.date(2026, 12, 15), dt.date(2026, 12, 14)]
    yesterday = log.load_day(dt.date(2026, 12, 14))
    assert [type(e).__name__ for e in yesterday] == ["Turn", "ToolCall", "Turn"]
    assert isinstance(yesterday[0], Turn) and KEY_LIKE not in yesterday[0].text
    assert isinstance(yesterday[1], ToolCall) and yesterday[1].output == "4"
    assert isinstance(yesterday[2], Turn) and yesterday[2].cut_after_ms == 500
    # A new start on the same day reads today's conversation back into memory.
    again = ConversationLog(save_dir=folder, saving=True, wall=wall)
    assert [e.text for e in again.entries if isinstance(e, Turn)] == ["good morning"]
    changes: list[object] = []
    again.subscribe(changes.append)
    again.clear()
    assert changes == [Reset()] and again.entries == [] and again.saved_days() == []
    assert not folder.exists() and not (tmp_path / "transcript.jsonl").exists()


def test_without_saving_nothing_is_written(tmp_path: Path) -> None:
    log = ConversationLog(save_dir=tmp_path / "conversation", saving=False, wall=Wall())
    log.heard("user", "hello")
    assert not (tmp_path / "conversation").exists() and log.saved_days() == []
    log.set_saving(True)
    log.heard("assistant", "hi")
    assert [type(e).__name__ for e in log.load_day(dt.date(2026, 12, 14))] == ["Turn"]


def test_the_old_transcript_lines_still_read(tmp_path: Path) -> None:
    folder = tmp_path / "conversation"
    folder.mkdir()
    lines = [{"role": "user", "text": "hi", "at": DAY}, {"role": "tool", "text": "get_time({}) -> 09:00", "at": DAY},
             {"role": "assistant", "text": "hello", "at": DAY}]
    (folder / "2026-12-14.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    entries = ConversationLog(save_dir=folder, wall=Wall()).load_day(dt.date(2026, 12, 14))
    assert entries[1] == ToolCall("get_time", "{}", DAY, "", "09:00")
    assert [type(e).__name__ for e in entries] == ["Turn", "ToolCall", "Turn"]


def test_search_and_both_exports() -> None:
    entries = [Turn("user", "What is the weather?", DAY), ToolCall("get_time", "{}", DAY, "", "09:00"),
               Turn("assistant", "Sunny, I think.", DAY, cut_after_ms=1500),
               Marker("reconnected", "Reconnected after 12 s", DAY, 12.0)]
    assert [matches(e, "SUNNY") for e in entries] == [False, False, True, False]
    assert [matches(e, "get_time") for e in entries] == [False, True, False, False]
    markdown = to_markdown(entries, dt.date(2026, 12, 14))
    assert markdown.startswith("# Conversation with AVA, 2026-12-14")
    assert "**You** (09:00:00): What is the weather?" in markdown
    assert "**AVA** (09:00:00): Sunny, I think. *(cut off by you after 1.5 s)*" in markdown
    assert "> Tool `get_time({})` → `09:00`" in markdown and "--- *Reconnected after 12 s (09:00:00)* ---" in markdown
    data = json.loads(to_json(entries, dt.date(2026, 12, 14)))
    assert data["day"] == "2026-12-14"
    assert [e["kind"] for e in data["entries"]] == ["turn", "tool", "turn", "marker"]
    assert data["entries"][2]["cut_after_ms"] == 1500 and data["entries"][0]["time"].startswith("2026-12-14T09:00:00")
