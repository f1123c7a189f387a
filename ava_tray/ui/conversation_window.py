"""The conversation window: today's turns live (and saved days), tool calls folded, markers, search, copy, export.

A list model over the `ConversationLog`'s entries, painted by a delegate: a day of thousands of turns costs one
model, not a widget per turn. The view is a one-column `QTreeView` scrolled per item, because that view asks for
the heights of the rows it shows only (a `QListView` lays out every row on opening and on each new turn: 0.9 s
and 0.6 s over 5,000 turns, measured by tests/benchmarks/bench_conversation.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QFocusEvent,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QKeySequence,
    QPainter,
    QPalette,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
        QMessageBox,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ava_tray.conversation_log import (
    SPEAKERS,
    Appended,
    ConversationLog,
    LogChange,
    LogEntry,
    Marker,
    Replaced,
    Reset,
    ToolCall,
    Turn,
    clock_time,
    cut_text,
    entry_json,
    matches,
    plain_text,
    to_json,
    to_markdown,
)

logger = logging.getLogger(__name__)

WINDOW_TITLE = "AVA · Conversation"
TODAY = "Today"
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
EXPANDED_ROLE = Qt.ItemDataRole.UserRole + 2
PAD = 6
GAP = 4
FOLDED_OUTPUT_CHARS = 120
ModelIndex = QModelIndex | QPersistentModelIndex


class ConversationModel(QAbstractListModel):
    """Rows are the log's entries for today (following it live), or a saved day's entries."""

    def __init__(self, log: ConversationLog) -> None:
        super().__init__()
        self.log = log
        self._fixed: list[LogEntry] | None = None
        self._count = len(log)
        self.expanded: set[int] = set()
        """Rows of tool calls shown unfolded."""
        log.subscribe(self._changed)

    @property
    def live(self) -> bool:
        return self._fixed is None

    def show_today(self) -> None:
        """Follow the log (today)."""
        self.beginResetModel()
        self._fixed = None
        self._count = len(self.log)
        self.expanded.clear()
        self.endResetModel()

    def show_entries(self, entries: list[LogEntry]) -> None:
        """Show a saved day's entries (they do not change)."""
        self.beginResetModel()
        self._fixed = entries
        self._count = len(entries)
        self.expanded.clear()
        self.endResetModel()

    def entries(self) -> list[LogEntry]:
        return self.log.entries if self._fixed is None else list(self._fixed)

    def entry(self, row: int) -> LogEntry:
        return self.log.entry(row) if self._fixed is None else self._fixed[row]

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else self._count

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < self._count:
            return None
        entry = self.entry(index.row())
        if role == Qt.ItemDataRole.DisplayRole:
            return plain_text(entry)
        if role == ENTRY_ROLE:
            return entry
        if role == EXPANDED_ROLE:
            return index.row() in self.expanded
        return None

    def toggle(self, row: int) -> None:
        """Fold or unfold the tool call at `row` (other rows do not fold)."""
        if not isinstance(self.entry(row), ToolCall):
            return
        self.expanded.symmetric_difference_update({row})
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def _changed(self, change: LogChange) -> None:
        if self._fixed is not None:
            return  # a saved day is shown; today's rows are read again when it is chosen
        match change:
            case Appended(first=first):
                last = len(self.log) - 1
                if first > self._count:
                    first = self._count
                self.beginInsertRows(QModelIndex(), first, last)
                self._count = last + 1
                self.endInsertRows()
            case Replaced(index=row):
                index = self.index(row)
                self.dataChanged.emit(index, index)
            case Reset():
                self.show_today()


class SearchFilter(QSortFilterProxyModel):
    """Only the entries that contain the search text."""

    def __init__(self) -> None:
        super().__init__()
        self.query = ""

    def set_query(self, query: str) -> None:
        self.beginFilterChange()
        self.query = query
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        if not self.query.strip():
            return True
        source = self.sourceModel()
        assert isinstance(source, ConversationModel)
        return matches(source.entry(source_row), self.query)


class EntryDelegate(QStyledItemDelegate):
    """Paints one entry: a speaker line and the wrapped text; a tool call folded to one line; a marker centred."""

    def __init__(self, view: QTreeView) -> None:
        super().__init__(view)
        self.view = view
        self._heights: dict[tuple[LogEntry, int, bool], int] = {}

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont, QFont]:
        body = QFont(option.font)
        header = QFont(option.font)
        header.setBold(True)
        header.setPointSizeF(max(6.0, body.pointSizeF() * 0.9))
        small = QFont(option.font)
        small.setItalic(True)
        return header, body, small

    @staticmethod
    def texts(entry: LogEntry, expanded: bool) -> tuple[str, str]:
        """The speaker line and the body for `entry`."""
        match entry:
            case Turn():
                header = f"{SPEAKERS[entry.role]} · {clock_time(entry.at)}"
                if entry.cut_after_ms is not None:
                    header += f" · {cut_text(entry.cut_after_ms)}"
                return header, entry.text
            case ToolCall():
                header = f"Tool {entry.name} · {clock_time(entry.at)}"
                output = "running…" if entry.output is None else entry.output
                if expanded:
                    return header, f"▾ arguments: {entry.arguments or '(none)'}\nresult: {output}"
                folded = " ".join(output.split())
                if len(folded) > FOLDED_OUTPUT_CHARS:
                    folded = folded[:FOLDED_OUTPUT_CHARS] + "…"
                return header, f"▸ {folded}"
            case Marker():
                return "", f"— {entry.text} · {clock_time(entry.at)} —"

    def _text_width(self) -> int:
        return max(80, self.view.viewport().width() - 2 * PAD - 4)

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        entry = index.data(ENTRY_ROLE)
        if entry is None:
            return QSize(0, 0)
        expanded = bool(index.data(EXPANDED_ROLE))
        width = self._text_width()
        key = (entry, width, expanded)
        height = self._heights.get(key)
        if height is None:
            header_font, body_font, small_font = self._fonts(option)
            header, body = self.texts(entry, expanded)
            body_metrics = QFontMetrics(small_font if isinstance(entry, Marker) else body_font)
            height = body_metrics.boundingRect(QRect(0, 0, width, 1_000_000), int(Qt.TextFlag.TextWordWrap),
                                               body).height()
            if header:
                height += QFontMetrics(header_font).height() + 2
            height += 2 * PAD + GAP
            if len(self._heights) > 50_000:
                self._heights.clear()
            self._heights[key] = height
        return QSize(width + 2 * PAD, height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        entry = index.data(ENTRY_ROLE)
        if entry is None:
            return
        expanded = bool(index.data(EXPANDED_ROLE))
        header, body = self.texts(entry, expanded)
        header_font, body_font, small_font = self._fonts(option)
        palette = option.palette
        dark = palette.color(QPalette.ColorRole.Base).lightness() < 128
        card = QRect(option.rect.x() + 2, option.rect.y() + GAP // 2, option.rect.width() - 4,
                     option.rect.height() - GAP)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_colour = palette.color(QPalette.ColorRole.Text)
        if selected:
            painter.setBrush(palette.color(QPalette.ColorRole.Highlight))
            text_colour = palette.color(QPalette.ColorRole.HighlightedText)
        else:
            painter.setBrush(_card_colour(entry, dark))
        painter.setPen(Qt.PenStyle.NoPen)
        if not isinstance(entry, Marker) or selected:
            painter.drawRoundedRect(card, 6, 6)
        inner = card.adjusted(PAD, PAD, -PAD, -PAD)
        if isinstance(entry, Marker):
            painter.setFont(small_font)
            painter.setPen(text_colour if selected else palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(inner, int(Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap), body)
        else:
            painter.setFont(header_font)
            painter.setPen(text_colour)
            header_height = QFontMetrics(header_font).height()
            painter.drawText(QRect(inner.x(), inner.y(), inner.width(), header_height),
                             int(Qt.AlignmentFlag.AlignLeft), header)
            painter.setFont(body_font)
            painter.drawText(QRect(inner.x(), inner.y() + header_height + 2, inner.width(),
                                   inner.height() - header_height - 2), int(Qt.TextFlag.TextWordWrap), body)
        painter.restore()


def _card_colour(entry: LogEntry, dark: bool) -> QColor:
    if isinstance(entry, Turn) and entry.role == "user":
        return QColor(38, 58, 88) if dark else QColor(226, 237, 252)
    if isinstance(entry, Turn):
        return QColor(52, 52, 56) if dark else QColor(238, 238, 240)
    return QColor(48, 62, 48) if dark else QColor(232, 244, 232)


class ConversationView(QTreeView):
    """A one-column tree without branches, so it lays out only the rows it shows; wraps again on a new width."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setRootIsDecorated(False)
        self.setItemsExpandable(False)
        self.setIndentation(0)
        self.setUniformRowHeights(False)
        self.setWordWrap(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerItem)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self._laid_out_width = -1
        self.end_pending = True
        """Scroll to the newest row once laid out (scrolled before, the view would measure every row)."""

    def updateGeometries(self) -> None:
        super().updateGeometries()
        if self.end_pending and self.isVisible() and self.viewport().height() > 0:
            self.end_pending = False
            bar = self.verticalScrollBar()
            bar.setValue(bar.maximum())

    def focusInEvent(self, event: QFocusEvent) -> None:
        # With no current row Qt makes the first one current, and placing row 0 from the bottom measures every
        # row in between: start from the newest instead.
        model = self.model()
        if not self.currentIndex().isValid() and model is not None and model.rowCount() > 0:
            self.selectionModel().setCurrentIndex(model.index(model.rowCount() - 1, 0),
                                                  QItemSelectionModel.SelectionFlag.NoUpdate)
        super().focusInEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.viewport().width() != self._laid_out_width:
            self._laid_out_width = self.viewport().width()
            self.scheduleDelayedItemsLayout()  # wrapped rows change height with the width


class ConversationWindow(QWidget):
    """Shows the conversation log: today live, earlier saved days on demand."""

    def __init__(self, log: ConversationLog, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log = log
        self.setWindowTitle(WINDOW_TITLE)
        self.resize(640, 560)

        self.model = ConversationModel(log)
        self.filter = SearchFilter()
        self.filter.setSourceModel(self.model)
        self.view = ConversationView(self)
        self.view.setModel(self.filter)
        self.delegate = EntryDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.clicked.connect(self._clicked)
        copy_action = QAction("Copy", self.view)
        copy_action.setShortcut(QKeySequence.StandardKey.Copy)
        copy_action.triggered.connect(self.copy_selected)
        self.view.addAction(copy_action)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

        self.day_box = QComboBox(self)
        self.day_box.setToolTip("Earlier days are kept only when saving the conversation is on (Settings).")
        self.day_box.activated.connect(self._day_chosen)
        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search the conversation")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(self._search)
        self.found_label = QLabel(self)
        top = QHBoxLayout()
        top.addWidget(self.day_box)
        top.addWidget(self.search_edit, 1)
        top.addWidget(self.found_label)

        self.empty_label = QLabel("Nothing has been said yet today.", self)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note_label = QLabel(self)
        self.note_label.setWordWrap(True)

        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the selected turns")
        self.copy_all_button = QPushButton("Copy all", self)
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Save the day's conversation as Markdown (.md) or JSON (.json)")
        self.clear_button = QPushButton("Clear…", self)
        self.copy_button.clicked.connect(self.copy_selected)
        self.copy_all_button.clicked.connect(self.copy_all)
        self.export_button.clicked.connect(self._ask_export)
        self.clear_button.clicked.connect(self.confirm_clear)
        buttons = QHBoxLayout()
        buttons.addWidget(self.note_label, 1)
        for button in (self.copy_button, self.copy_all_button, self.export_button, self.clear_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.empty_label)
        layout.addLayout(buttons)

        self._follow_end = True
        self.filter.rowsAboutToBeInserted.connect(self._before_rows)
        self.filter.rowsInserted.connect(self._after_rows)
        self.filter.modelReset.connect(self._refresh_labels)
        self.filter.rowsRemoved.connect(self._refresh_labels)
        self.fill_days()
        self._refresh_labels()

    def showEvent(self, event: QShowEvent) -> None:
        if self._follow_end:
            self.view.end_pending = True
        super().showEvent(event)

    # -- days ------------------------------------------------------------------------------------

    def fill_days(self) -> None:
        """Today, then each saved day (newest first); keeps the day shown if it is still there."""
        shown = self.day_box.currentData()
        self.day_box.clear()
        self.day_box.addItem(TODAY, None)
        for day in self.log.saved_days():
            if day != self.log.day:
                self.day_box.addItem(day.strftime("%a %d %b %Y"), day.isoformat())
        self.day_box.setCurrentIndex(max(0, self.day_box.findData(shown)))
        if self.log.saving:
            self.note_label.setText("")
        else:
            self.note_label.setText("Only today is kept, in memory: turn on saving the conversation in Settings "
                                    "to keep earlier days.")

    @property
    def shown_day(self) -> dt.date:
        data = self.day_box.currentData()
        return self.log.day if data is None else dt.date.fromisoformat(str(data))

    def show_day(self, day: dt.date | None) -> None:
        """Show `day` (None or today: live)."""
        if day is None or day == self.log.day:
            self.day_box.setCurrentIndex(0)
            self.model.show_today()
        else:
            index = self.day_box.findData(day.isoformat())
            if index >= 0:
                self.day_box.setCurrentIndex(index)
            self.model.show_entries(self.log.load_day(day))
        self.view.end_pending = True
        self._refresh_labels()

    def _day_chosen(self, index: int) -> None:
        data = self.day_box.itemData(index)
        self.show_day(None if data is None else dt.date.fromisoformat(str(data)))

    # -- live updates ----------------------------------------------------------------------------

    def _before_rows(self, _parent: ModelIndex, _first: int, _last: int) -> None:
        bar = self.view.verticalScrollBar()
        self._follow_end = bar.value() >= bar.maximum() - 4

    def _after_rows(self, _parent: ModelIndex, _first: int, _last: int) -> None:
        if self._follow_end:
            self.view.end_pending = True
        self._refresh_labels()

    def _refresh_labels(self) -> None:
        shown = self.filter.rowCount()
        total = self.model.rowCount()
        self.empty_label.setVisible(total == 0)
        self.empty_label.setText("Nothing has been said yet today." if self.model.live else "Nothing was saved.")
        self.found_label.setText(f"{shown} of {total}" if self.filter.query.strip() else "")
        for button in (self.copy_button, self.copy_all_button, self.export_button):
            button.setEnabled(total > 0)
        self.clear_button.setEnabled(total > 0 or bool(self.log.saved_days()))

    def _search(self, text: str) -> None:
        self.filter.set_query(text)
        self.view.end_pending = True  # the newest matches first
        self._refresh_labels()

    def _clicked(self, index: QModelIndex) -> None:
        self.model.toggle(self.filter.mapToSource(index).row())

    # -- actions ---------------------------------------------------------------------------------

    def selected_entries(self) -> list[LogEntry]:
        rows = sorted(self.filter.mapToSource(i).row() for i in self.view.selectionModel().selectedIndexes())
        return [self.model.entry(row) for row in rows]

    def shown_entries(self) -> list[LogEntry]:
        """What the list shows now (the search applied)."""
        return [self.model.entry(self.filter.mapToSource(self.filter.index(row, 0)).row())
                for row in range(self.filter.rowCount())]

    def copy_selected(self) -> None:
        """Put the selected turns on the clipboard, one per line."""
        chosen = self.selected_entries()
        if chosen:
            QGuiApplication.clipboard().setText("\n".join(plain_text(e) for e in chosen) + "\n")

    def copy_all(self) -> None:
        """Put every turn the list shows on the clipboard."""
        QGuiApplication.clipboard().setText("\n".join(plain_text(e) for e in self.shown_entries()) + "\n")

    def _ask_export(self) -> None:
        default = str(Path.home() / f"ava-conversation-{self.shown_day.isoformat()}.md")
        name, chosen = QFileDialog.getSaveFileName(self, "Export the conversation", default,
                                                   "Markdown (*.md);;JSON (*.json)")
        if name:
            path = Path(name)
            if not path.suffix:
                path = path.with_suffix(".json" if "json" in chosen.lower() else ".md")
            self.export_to(path)

    def export_to(self, path: Path) -> bool:
        """Write the day shown to `path`: JSON for `.json`, else Markdown; a failure is shown, never raised."""
        entries = self.model.entries()
        text = to_json(entries, self.shown_day) if path.suffix.lower() == ".json" else to_markdown(
            entries, self.shown_day)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            QMessageBox.warning(self, WINDOW_TITLE, f"Could not write {path}: {exc.strerror or exc}.")
            return False
        logger.info("exported the conversation (%d entries) to %s", len(entries), path)
        return True

    def confirm_clear(self) -> None:
        """Ask, then forget today's conversation and delete every saved day."""
        answer = QMessageBox.question(
            self, WINDOW_TITLE, "Clear today's conversation and delete every saved day? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.log.clear()
            self.fill_days()
            self.show_day(None)

    # -- test-only introspection -----------------------------------------------------------------

    def debug_state(self, last: int = 40) -> dict[str, Any]:
        """The rows shown (the last `last` of them), for end-to-end tests that watch from outside."""
        shown = self.shown_entries()
        button = self.export_button
        corner = button.mapToGlobal(button.rect().topLeft())
        return {"rows": len(shown), "day": self.shown_day.isoformat(),
                "entries": [entry_json(e) for e in shown[-last:]],
                "export_button": [corner.x(), corner.y(), button.width(), button.height()]}
