"""The transcript carried into new sessions: recent first within budget, one system item, SDK-valid."""

from __future__ import annotations

from pathlib import Path

from openai.types.realtime import RealtimeClientEvent
from pydantic import TypeAdapter

from ava_tray.conversation import Transcript


def test_replay_is_one_system_item_that_validates() -> None:
    transcript = Transcript()
    transcript.add("user", "What's the weather like?")
    transcript.add("assistant", "Sunny and warm.")
    transcript.add("tool", 'get_time({}) -> {"time": "12:00"}')
    item = transcript.replay_item()
    assert item is not None
    TypeAdapter(RealtimeClientEvent).validate_python(item)
    assert item["item"]["role"] == "system"
    text = item["item"]["content"][0]["text"]
    assert "User: What's the weather like?\nAVA: Sunny and warm.\nTool: get_time" in text
    assert "speaking aloud" in text


def test_budget_keeps_the_most_recent_part() -> None:
    transcript = Transcript(budget_chars=60)
    for index in range(20):
        transcript.add("user", f"message number {index}")
    text = transcript.replay_text()
    assert text is not None and len(text) <= 60
    assert text.endswith("message number 19") and "number 0\n" not in text


def test_disabled_or_empty_replays_nothing() -> None:
    assert Transcript().replay_item() is None
    off = Transcript(enabled=False)
    off.add("user", "hello")
    assert off.replay_item() is None


def test_kept_in_memory_unless_saving_is_on(tmp_path: Path, isolated_user_dirs: Path) -> None:
    Transcript().add("user", "secret plans")
    assert not [p for p in isolated_user_dirs.rglob("*") if p.is_file()]
    saved = Transcript(save_to=tmp_path / "t.jsonl")
    saved.add("user", "my key is sk-" "abcdefghijklmnopqrstuvwx")
    content = (tmp_path / "t.jsonl").read_text()
    assert "my key is" in content and "sk-" "abcdefghijklmnop" not in content
