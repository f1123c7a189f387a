"""The tray's consent box and the Memory window (offscreen Qt)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox
from waits import wait_until

from ava_tray.memory import MemoryStore
from ava_tray.ui.consent import TrayConsentAsker
from ava_tray.ui.memory_window import MemoryWindow


@pytest.mark.parametrize(("button", "allowed"), [(QMessageBox.StandardButton.Yes, True),
                                                 (QMessageBox.StandardButton.No, False)])
async def test_the_consent_box_answers_without_blocking_the_loop(qapp: Any, button: QMessageBox.StandardButton,
                                                                allowed: bool) -> None:
    asker = TrayConsentAsker()
    question = asyncio.create_task(asker.ask("open_address", "open https://example.org"))
    await wait_until(lambda: asker.box is not None)
    assert asker.box is not None and "AVA wants to open https://example.org." in asker.box.text()
    assert asker.box.defaultButton() is asker.box.button(QMessageBox.StandardButton.No)
    asker.box.button(button).click()
    assert await question is allowed and asker.box is None


async def test_an_unanswered_box_is_closed_when_the_question_is_abandoned(qapp: Any) -> None:
    asker = TrayConsentAsker()
    question = asyncio.create_task(asker.ask("forget", "forget “x”"))
    await wait_until(lambda: asker.box is not None)
    box = asker.box
    assert box is not None
    question.cancel()
    await asyncio.gather(question, return_exceptions=True)
    assert asker.box is None and not box.isVisible()


def test_memory_window_lists_searches_deletes_and_exports(qtbot: Any, tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    store.remember("The user's dog is called Pixel.")
    store.remember("The user works from home on Fridays.")
    window = MemoryWindow(store)
    qtbot.addWidget(window)
    assert window.facts.count() == 2 and window.summary.text() == "2 remembered"
    window.search_box.setText("dog")
    assert window.facts.count() == 1 and "Pixel" in window.facts.item(0).text()
    assert window.summary.text() == "1 of 2 shown"
    assert not window.delete_button.isEnabled()
    window.facts.item(0).setSelected(True)
    assert window.delete_button.isEnabled()
    window.confirm_delete = False
    window.delete_button.click()
    assert store.count() == 1 and window.facts.count() == 0
    window.search_box.clear()
    exported = window.export(tmp_path / "memory.json")
    assert exported is not None
    assert [f["text"] for f in json.loads(exported.read_text())["facts"]] == ["The user works from home on Fridays."]
    store.close()
