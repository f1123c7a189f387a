"""The Memory window: what AVA remembers, searchable; delete facts, export them all as JSON."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ava_tray.memory import Fact, MemoryStore

logger = logging.getLogger(__name__)


class MemoryWindow(QWidget):
    """Lists remembered facts (newest first); the search box filters them as the user types."""

    def __init__(self, store: MemoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.setWindowTitle("AVA – Memory")
        self.resize(560, 420)
        self.search_box = QLineEdit(placeholderText="Search memories…")
        self.search_box.setClearButtonEnabled(True)
        self.facts = QListWidget()
        self.facts.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.summary = QLabel()
        self.delete_button = QPushButton("Delete")
        self.export_button = QPushButton("Export…")
        self.refresh_button = QPushButton("Refresh")
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        for button in (self.refresh_button, self.export_button, self.delete_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search_box)
        layout.addWidget(self.facts, 1)
        layout.addLayout(buttons)
        self.search_box.textChanged.connect(self.refresh)
        self.facts.itemSelectionChanged.connect(self._selection_changed)
        self.delete_button.clicked.connect(self.delete_selected)
        self.export_button.clicked.connect(self.export)
        self.refresh_button.clicked.connect(self.refresh)
        self.confirm_delete = True
        """Ask before deleting (tests turn it off)."""
        self.refresh()

    def refresh(self) -> None:
        """Reload the list for the current search."""
        query = self.search_box.text().strip()
        shown = self.store.search(query, limit=500) if query else self.store.list_facts(500)
        self.facts.clear()
        for fact in shown:
            item = QListWidgetItem(f"{_day(fact)}  {fact.text}")
            item.setData(Qt.ItemDataRole.UserRole, fact.id)
            item.setToolTip(f"Learned {time.strftime('%Y-%m-%d %H:%M', time.localtime(fact.learned_at))}")
            self.facts.addItem(item)
        total = self.store.count()
        self.summary.setText(f"{len(shown)} of {total} shown" if query else f"{total} remembered")
        self._selection_changed()

    def selected_ids(self) -> list[int]:
        return [int(item.data(Qt.ItemDataRole.UserRole)) for item in self.facts.selectedItems()]

    def delete_selected(self) -> None:
        """Forget the selected facts (after a confirmation)."""
        ids = self.selected_ids()
        if not ids:
            return
        if self.confirm_delete:
            answer = QMessageBox.question(self, "Delete memories", f"Forget {len(ids)} selected "
                                          f"{'memory' if len(ids) == 1 else 'memories'} for good?",
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return
        for fact_id in ids:
            self.store.forget(fact_id)
        self.refresh()

    def export(self, path: Path | None = None) -> Path | None:
        """Save every fact as JSON (asks where unless `path` is given); returns the file written."""
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Export memories", str(Path.home() / "ava-memory.json"),
                                                    "JSON (*.json)")
            if not chosen:
                return None
            path = Path(chosen)
        try:
            count = self.store.export_to(path)
        except OSError as exc:
            QMessageBox.warning(self, "Export failed", f"The memories could not be written to {path}: {exc.strerror}.")
            return None
        self.summary.setText(f"Exported {count} memories to {path.name}")
        return path

    def _selection_changed(self) -> None:
        self.delete_button.setEnabled(bool(self.facts.selectedItems()))


def _day(fact: Fact) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(fact.learned_at))
