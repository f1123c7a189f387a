"""Each built-in tool through the registry, as the model calls it."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from ava_tray.clock import ManualClock
from ava_tray.memory import MemoryStore
from ava_tray.settings import Settings
from ava_tray.settings_store import SettingsStore
from ava_tray.tools import ToolRegistry, builtin, wiring
from ava_tray.tools.fakes import FakeConsent, FakeMicMute, FakeStatusSource
from ava_tray.tools.hooks import StatusReport
from ava_tray.tools.reminders import ReminderScheduler
from ava_tray.tools.wiring import SavedVoice

CONSENT_TOOLS = {"forget", "write_clipboard", "open_address", "mute_microphone", "change_voice"}


@dataclass
class Rig:
    registry: ToolRegistry
    consent: FakeConsent
    memory: MemoryStore
    reminders: ReminderScheduler
    clock: ManualClock
    mic: FakeMicMute
    opened: list[str]
    applied: list[Settings] = field(default_factory=list)
    calls: int = 0

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        self.calls += 1
        decoded = json.loads(await self.registry.call(name, json.dumps(arguments), f"call-{self.calls}"))
        assert isinstance(decoded, dict)
        return decoded


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock()
    memory = MemoryStore(tmp_path / "memory.sqlite3", clock=clock)
    reminders = ReminderScheduler(memory, clock=clock)
    opened: list[str] = []
    applied: list[Settings] = []

    async def opener(url: str) -> bool:
        opened.append(url)
        return True

    mic = FakeMicMute()
    status = FakeStatusSource(StatusReport("connected", 3723.0, 2, "session_expired",
                                           "Session expired after 60 minutes", clock.wall() - 90))
    voice = SavedVoice(lambda: Settings(), applied.append, SettingsStore(tmp_path / "settings.ini"))
    consent = FakeConsent(answer=True)
    registry = ToolRegistry(builtin.builtin_tools(memory=memory, reminders=reminders, status=status, mic=mic,
                                                  voice=voice, open_url=opener, clock=clock), consent=consent)
    yield Rig(registry, consent, memory, reminders, clock, mic, opened, applied)
    memory.close()


def test_the_built_in_set_and_which_ask_first(rig: Rig) -> None:
    names = set(rig.registry.names)
    assert names == {"get_time", "set_reminder", "list_reminders", "cancel_reminder", "remember", "recall", "forget",
                     "calculate", "read_clipboard", "write_clipboard", "open_address", "ava_status",
                     "mute_microphone", "change_voice"}
    asking = {name for name in names if (item := rig.registry.get(name)) and item.changes_something}
    assert asking == CONSENT_TOOLS
    for spec in rig.registry.specs():
        assert spec.description and spec.parameters["type"] == "object"


async def test_time_here_and_in_a_time_zone(rig: Rig) -> None:
    here = await rig.call("get_time")
    tokyo = await rig.call("get_time", time_zone="Asia/Tokyo")
    assert tokyo["time_zone"] == "Asia/Tokyo" and tokyo["iso"].endswith("+09:00")
    assert here["iso"] and here["date"]
    assert "not a time zone I know" in (await rig.call("get_time", time_zone="Mars/Olympus"))["error"]


async def test_reminders(rig: Rig) -> None:
    set_ = await rig.call("set_reminder", text="stretch", delay_seconds=300)
    assert set_["in_seconds"] == 300 and set_["text"] == "stretch"
    day = datetime.datetime.fromtimestamp(rig.clock.wall() + 2 * 86400).strftime("%Y-%m-%d")
    at = await rig.call("set_reminder", text="call mum", at=f"{day}T09:30")
    assert at["due"] == f"{day} 09:30:00"
    assert "one year ahead" in (await rig.call("set_reminder", text="x", at="2099-01-01T09:30"))["error"]
    assert "in the past" in (await rig.call("set_reminder", text="x", at="2001-01-01T09:30"))["error"]
    assert "Give either" in (await rig.call("set_reminder", text="x"))["error"]
    assert "Give either" in (await rig.call("set_reminder", text="x", delay_seconds=5, at="10:00"))["error"]
    assert "between 1 second" in (await rig.call("set_reminder", text="x", delay_seconds=-5))["error"]
    assert "not a time I can read" in (await rig.call("set_reminder", text="x", at="teatime"))["error"]
    next_time = await rig.call("set_reminder", text="tea", at="10:00")
    assert 0 < next_time["in_seconds"] <= 24 * 3600
    listed = await rig.call("list_reminders")
    assert [r["text"] for r in listed["reminders"]] == ["stretch", "tea", "call mum"]
    assert (await rig.call("cancel_reminder", reminder_id=set_["id"]))["cancelled"]["text"] == "stretch"
    assert "no pending reminder" in (await rig.call("cancel_reminder", reminder_id=set_["id"]))["error"]


async def test_remember_recall_forget(rig: Rig) -> None:
    fact = (await rig.call("remember", fact="The user's bike is a green Brompton."))["remembered"]
    found = await rig.call("recall", query="what bike do I have")
    assert found["count"] == 1 and found["facts"][0]["id"] == fact["id"]
    rig.consent.answer = False
    refused = await rig.call("forget", fact_id=fact["id"])
    assert refused["declined"] and "nothing was done" in refused["error"]
    assert rig.consent.questions[-1] == ("forget", "forget “The user's bike is a green Brompton.”")
    assert rig.memory.get(fact["id"]) is not None
    rig.consent.answer = True
    assert (await rig.call("forget", fact_id=fact["id"]))["forgotten"]["id"] == fact["id"]
    assert (await rig.call("recall", query="bike"))["count"] == 0
    assert "no remembered fact" in (await rig.call("forget", fact_id=999))["error"]


async def test_calculate(rig: Rig) -> None:
    assert (await rig.call("calculate", expression="(17 + 3) * 2.5"))["result"] == 50
    assert "Only numbers" in (await rig.call("calculate", expression="__import__('os')"))["error"]


async def test_clipboard_in_console_mode(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin, "_qt_gui_running", lambda: False)
    assert (await rig.call("read_clipboard"))["error"] == "The clipboard is not available in console mode."
    assert (await rig.call("write_clipboard", text="x"))["error"] == "The clipboard is not available in console mode."


async def test_clipboard_with_qt(rig: Rig, qapp: Any) -> None:
    written = await rig.call("write_clipboard", text="hello from AVA")
    assert written == {"copied_characters": 14}
    assert (await rig.call("read_clipboard"))["text"] == "hello from AVA"
    assert qapp.clipboard().text() == "hello from AVA"


async def test_clipboard_is_not_written_without_consent(rig: Rig, qapp: Any) -> None:
    qapp.clipboard().setText("before")
    rig.consent.answer = False
    assert (await rig.call("write_clipboard", text="after"))["declined"]
    assert qapp.clipboard().text() == "before"


async def test_open_address(rig: Rig, tmp_path: Path) -> None:
    document = tmp_path / "notes.txt"
    document.write_text("hi")
    script = tmp_path / "run.sh"
    script.write_text("echo no")
    os.chmod(script, 0o755)
    assert (await rig.call("open_address", address="https://example.org/a?b=1"))["opened"] == \
        "https://example.org/a?b=1"
    assert (await rig.call("open_address", address=str(document)))["opened"] == document.resolve().as_uri()
    assert (await rig.call("open_address", address=document.as_uri()))["opened"] == document.resolve().as_uri()
    assert (await rig.call("open_address", address="example.org"))["opened"] == "https://example.org"
    for address, problem in [("javascript:alert(1)", "Only web"), ("ftp://example.org/x", "Only web"),
                             ("smb://server/share", "Only web"), (str(script), "does not run programs"),
                             (str(tmp_path / "missing.pdf"), "no file or folder"), ("https://", "not a complete")]:
        assert problem in (await rig.call("open_address", address=address))["error"], address
    assert len(rig.opened) == 4
    rig.consent.answer = False
    assert (await rig.call("open_address", address="https://example.org"))["declined"]
    assert len(rig.opened) == 4


async def test_status(rig: Rig) -> None:
    status = await rig.call("ava_status")
    assert status["uptime"] == "1 h 2 min" and status["reconnects_today"] == 2
    assert status["last_interruption"]["cause"] == "session_expired"
    assert status["explanation"] == "AVA last went quiet 1 min ago: Session expired after 60 minutes"


async def test_mute(rig: Rig) -> None:
    rig.consent.answer = False
    assert (await rig.call("mute_microphone"))["declined"] and rig.mic.muted is False
    rig.consent.answer = True
    assert (await rig.call("mute_microphone"))["muted"] is True and rig.mic.muted is True
    assert (await rig.call("mute_microphone", muted=False))["muted"] is False and rig.mic.muted is False


async def test_change_voice_is_saved_and_applied(rig: Rig, tmp_path: Path) -> None:
    changed = await rig.call("change_voice", voice="cedar")
    assert changed["voice"] == "cedar" and "next session" in changed["note"]
    assert [s.voice for s in rig.applied] == ["cedar"]
    assert SettingsStore(tmp_path / "settings.ini").load() == replace(Settings(), voice="cedar")
    assert "must be one of" in (await rig.call("change_voice", voice="robot"))["error"]
    rig.consent.answer = False
    assert (await rig.call("change_voice", voice="ash"))["declined"] and len(rig.applied) == 1


def test_an_unusable_memory_file_falls_back_to_memory_for_this_run(tmp_path: Path) -> None:
    folder = tmp_path / "memory.sqlite3"
    folder.mkdir()
    box = wiring.build_toolbox(settings=Settings, apply_settings=lambda s: None, clock=ManualClock(),
                               memory_path=folder, load_plugins=False)
    box.memory.remember("still works")
    assert box.memory.count() == 1 and "still works" in box.registry.instructions_suffix()


def test_ava_status_says_what_today_cost_against_the_budget() -> None:
    from ava_tray.tools.builtin import status_report

    report = StatusReport("connected", 60.0, 0, spend_today_usd=0.4234, spend_month_usd=12.5, daily_budget_usd=2.0)
    result = status_report(FakeStatusSource(report), ManualClock())
    assert (result["spend_today_usd"], result["spend_this_month_usd"], result["daily_budget_usd"]) == (0.42, 12.5, 2.0)
