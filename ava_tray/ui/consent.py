"""The tray's consent question: a non-modal Yes/No box, awaited on the qasync loop without blocking it."""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtWidgets import QMessageBox, QWidget

logger = logging.getLogger(__name__)


class TrayConsentAsker:
    """`ConsentAsker` for the tray: "AVA wants to … Allow?" with No as the default button.

    One question at a time; a question left unanswered past the registry's time-out is closed and
    counts as No.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        self._parent = parent
        self._one_at_a_time = asyncio.Lock()
        self.box: QMessageBox | None = None
        """The open question, if any (tests answer it)."""

    async def ask(self, tool: str, summary: str) -> bool:
        async with self._one_at_a_time:
            box = QMessageBox(QMessageBox.Icon.Question, "AVA asks first",
                              f"AVA wants to {summary}.\n\nAllow it this time?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self._parent)
            box.setDefaultButton(QMessageBox.StandardButton.No)
            box.setInformativeText(f"Tool: {tool}. To stop being asked, add it to the allowed tools in Settings.")
            answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

            def finished(_: int) -> None:
                if not answer.done():
                    answer.set_result(box.clickedButton() is box.button(QMessageBox.StandardButton.Yes))

            box.finished.connect(finished)
            self.box = box
            box.open()
            try:
                return await answer
            finally:
                self.box = None
                box.finished.disconnect(finished)
                box.close()
                box.deleteLater()
