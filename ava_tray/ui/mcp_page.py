"""The MCP servers page for Settings: each server of mcp.json with its state and tools, and a button that
opens the file (a render of `McpStatus`; the page never reaches into the host)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QColor, QDesktopServices, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ava_tray.tools.mcp.status import McpStatus, ServerState, ServerStatus

logger = logging.getLogger(__name__)

TEMPLATE = '{\n  "mcpServers": {\n  }\n}\n'
"""What "Open mcp.json" writes when there is no file yet."""
HINT = ("Servers are configured in mcp.json, in the format Claude Desktop and Cursor use "
        '({"mcpServers": {"name": {"command": …, "args": […], "env": {…}}}}, or "url" and "headers" for a remote '
        'server; "autoApprove": [tool names] runs those without asking; "keyring:ENTRY" reads a value from the '
        "OS keyring). Changes apply within a few seconds, without restarting AVA.")
EMPTY = "No MCP servers are configured."
STATE_COLOURS = {ServerState.READY: "#2e7d32", ServerState.FAILED: "#c62828", ServerState.RESTARTING: "#ef6c00"}

FileOpener = Callable[[Path], bool]


def open_in_editor(path: Path) -> bool:
    """Open `path` with the desktop's default application for it."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class McpPage(QWidget):
    """Lists the MCP servers (name, state, transport) and, under each, its tools as declared to the model.

    Feed it with `show_status(status)` (e.g. subscribed to `McpHost.subscribe`); with `refresh`, it also
    asks for the status once a second while shown, so "trying again in N s" counts down.
    """

    def __init__(self, config_path: Path, *, refresh: Callable[[], McpStatus] | None = None,
                 open_file: FileOpener = open_in_editor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config_path = config_path
        self._refresh = refresh
        self._open_file = open_file
        self.status: McpStatus = McpStatus(config_path)

        self.hint = QLabel(HINT, self)
        self.hint.setWordWrap(True)
        self.path_label = QLabel(str(config_path), self)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open mcp.json", self)
        self.open_button.clicked.connect(self.open_config)
        self.problem = QLabel(self)
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #c62828")
        self.problem.hide()
        self.summary = QLabel(EMPTY, self)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Server / tool", "State", "Kind"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)

        file_row = QHBoxLayout()
        file_row.addWidget(self.path_label, 1)
        file_row.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.hint)
        layout.addLayout(file_row)
        layout.addWidget(self.problem)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)

    # -- rendering -----------------------------------------------------------------------------------

    def show_status(self, status: McpStatus) -> None:
        """Render `status`; the servers' rows keep whether they were expanded."""
        self.status = status
        rows = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        expanded = {row.text(0) for row in rows if row is not None and row.isExpanded()}
        self.problem.setText(status.config_problem or "")
        self.problem.setVisible(bool(status.config_problem))
        lines = status.lines()
        self.summary.setText(lines[0] if lines and status.servers else EMPTY)
        self.tree.clear()
        for server in status.servers:
            row = self._server_row(server)
            self.tree.addTopLevelItem(row)
            row.setExpanded(server.name in expanded)
        for column in range(self.tree.columnCount()):
            self.tree.resizeColumnToContents(column)

    def _server_row(self, server: ServerStatus) -> QTreeWidgetItem:
        kind = "local (stdio)" if server.transport == "stdio" else "remote (HTTP)"
        row = QTreeWidgetItem([server.name, server.summary(), kind])
        row.setToolTip(1, server.summary())
        if server.line:
            row.setToolTip(0, f"mcp.json line {server.line}")
        colour = STATE_COLOURS.get(server.state)
        if colour:
            row.setForeground(1, QColor(colour))
        for tool in server.tools:
            if tool.function is None:
                state = "not declared (too many tools)"
            else:
                state = "asks first" if tool.asks_first else "runs without asking"
            child = QTreeWidgetItem([tool.name, state, tool.function or ""])
            child.setToolTip(0, tool.description)
            row.addChild(child)
        return row

    # -- actions -------------------------------------------------------------------------------------

    def open_config(self) -> bool:
        """Open mcp.json in the desktop's editor, creating it (with no servers) if there is none."""
        path = self.config_path
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(TEMPLATE, encoding="utf-8")
        except OSError as exc:
            logger.warning("cannot create %s: %s", path, exc)
            self._say(f"{path} cannot be created: {exc.strerror or exc}.")
            return False
        if not self._open_file(path):
            self._say(f"No application opened {path}; open it in a text editor.")
            return False
        return True

    def _say(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.show()

    def _tick(self) -> None:
        if self._refresh is not None and self.isVisible():
            self.show_status(self._refresh())

    def showEvent(self, event: QShowEvent) -> None:
        if self._refresh is not None:
            self.show_status(self._refresh())
            self._timer.start()
        super().showEvent(event)
