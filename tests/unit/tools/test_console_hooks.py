"""The console's consent prompt and reminder line."""

from __future__ import annotations

import asyncio

from waits import wait_until

from ava_tray.tools.console import ConsoleConsentAsker, ConsoleNotifier


async def test_without_a_terminal_the_answer_is_no() -> None:
    lines: list[str] = []
    asker = ConsoleConsentAsker(lines.append, interactive=False)
    assert await asker.ask("open_address", "open https://example.org") is False
    assert "denied, no terminal" in lines[0]
    assert asker.offer("y\n") is False


async def test_a_yes_line_allows_and_anything_else_denies() -> None:
    lines: list[str] = []
    asker = ConsoleConsentAsker(lines.append, interactive=True)
    for answer, allowed in [("y\n", True), ("YES\n", True), ("\n", False), ("nope\n", False)]:
        question = asyncio.create_task(asker.ask("mute_microphone", "mute the microphone"))
        await wait_until(lambda: asker.waiting)
        assert lines[-1] == "AVA wants to mute the microphone (mute_microphone). Allow? [y/N] then Enter"
        assert asker.offer(answer) is True
        assert await question is allowed
    assert asker.offer("y\n") is False  # no question pending: the line is the console's


async def test_no_answer_in_time_is_a_no() -> None:
    lines: list[str] = []
    asker = ConsoleConsentAsker(lines.append, interactive=True, timeout=0.1)
    assert await asker.ask("forget", "forget “x”") is False and lines[-1] == "No answer: forget was not allowed."


def test_reminders_are_a_log_line() -> None:
    lines: list[str] = []
    ConsoleNotifier(lines.append).notify("AVA reminder", "Reminder due: tea")
    assert lines == ["⏰ Reminder due: tea"]
