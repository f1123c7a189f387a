"""The small status window a click on the tray icon opens: state, session age, reconnects, last cause."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ava_tray.status import Snapshot, TrayStatus, format_age, spend_text, uplink_text
from ava_tray.supervisor import Connected

logger = logging.getLogger(__name__)

WINDOW_TITLE = "AVA · Status"
NO_TRAY_NOTE = ("No system tray was found on this desktop, so AVA shows this window instead. "
                "Closing it quits AVA.")


class StatusWindow(QWidget):
    """Renders a snapshot (with its `TrayStatus` words); its buttons call the given actions."""

    def __init__(self, *, restart: Callable[[], None], step: Callable[[], None], settings: Callable[[], None],
                 history: Callable[[], None], set_muted: Callable[[bool], None], quit_app: Callable[[], None],
                 conversation: Callable[[], None] | None = None,
                 standalone: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.standalone = standalone
        self._quit_app = quit_app
        self.setWindowTitle(WINDOW_TITLE)
        self.setMinimumWidth(380)

        self.headline = QLabel(self)
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.headline.setFont(font)
        self.headline.setWordWrap(True)
        self.detail = QLabel(self)
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.session_age = QLabel(self)
        self.reconnects_today = QLabel(self)
        self.last_cause = QLabel(self)
        self.last_cause.setWordWrap(True)
        self.echo_state = QLabel("—", self)
        self.microphone = QLabel("—", self)
        """Whether audio is leaving the machine now, and what the voice gate is doing."""
        self.sent_today = QLabel("—", self)
        self.spend = QLabel("—", self)
        self.tools = QLabel(self)
        """The MCP servers, a line each (hidden when none is configured)."""
        self.tools.setWordWrap(True)
        self.tools.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        facts = QFormLayout()
        facts.addRow("Session:", self.session_age)
        facts.addRow("Reconnects today:", self.reconnects_today)
        facts.addRow("Last cause:", self.last_cause)
        facts.addRow("Echo cancellation:", self.echo_state)
        facts.addRow("Microphone:", self.microphone)
        facts.addRow("Sent today:", self.sent_today)
        facts.addRow("Spend (estimate):", self.spend)

        self.step_button = QPushButton(self)
        """The one step out of the current state ("Use gpt-realtime-2.1", "Go on anyway"); hidden when none."""
        self.step_button.clicked.connect(step)
        self.step_button.setVisible(False)
        self.restart_button = QPushButton("Restart now", self)
        self.settings_button = QPushButton("Settings…", self)
        self.history_button = QPushButton("History…", self)
        self.restart_button.clicked.connect(restart)
        self.settings_button.clicked.connect(settings)
        self.history_button.clicked.connect(history)
        self.conversation_button = QPushButton("Conversation…", self)
        if conversation is not None:
            self.conversation_button.clicked.connect(conversation)
        self.conversation_button.setVisible(conversation is not None)
        buttons = QHBoxLayout()
        for button in (self.step_button, self.restart_button, self.settings_button, self.history_button,
                       self.conversation_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        self.note = QLabel(NO_TRAY_NOTE, self)
        self.note.setWordWrap(True)
        self.note.setVisible(standalone)
        layout.addWidget(self.note)
        layout.addWidget(self.headline)
        layout.addWidget(self.detail)
        layout.addLayout(facts)
        layout.addWidget(self.tools)
        layout.addLayout(buttons)

        # Without a tray these are the only way to reach the menu's other actions.
        self.mute_box = QCheckBox("Mute microphone", self)
        self.mute_box.toggled.connect(set_muted)
        self.quit_button = QPushButton("Quit", self)
        self.quit_button.clicked.connect(quit_app)
        extra = QHBoxLayout()
        extra.addWidget(self.mute_box, 1)
        extra.addWidget(self.quit_button)
        layout.addLayout(extra)
        self.mute_box.setVisible(standalone)
        self.quit_button.setVisible(standalone)

    def set_standalone(self, standalone: bool) -> None:
        """With no tray this window stands in for it (mute, quit; closing quits); a tray that appears
        later takes that role back."""
        self.standalone = standalone
        for widget in (self.note, self.mute_box, self.quit_button):
            widget.setVisible(standalone)

    def show_status(self, status: TrayStatus, snapshot: Snapshot, now: float) -> None:
        """Show `status` (from `describe`) and the snapshot's facts."""
        state, muted = snapshot.state, snapshot.muted
        self.headline.setText(status.status_line)
        self.detail.setText(status.detail)
        self.session_age.setText(format_age(now - state.since) if isinstance(state, Connected) else "—")
        self.reconnects_today.setText(str(snapshot.reconnects_today))
        last = snapshot.last_interruption
        if last is None:
            self.last_cause.setText("—")
        else:
            stamp = time.strftime("%H:%M", time.localtime(last.at))
            self.last_cause.setText(f"{last.message} ({stamp})")
        # on / off (headphones) / unavailable: half-duplex, as the last opened audio devices decided.
        self.echo_state.setText(snapshot.echo or "— (decided when the audio devices open)")
        self.microphone.setText(microphone_text(snapshot))
        self.sent_today.setText(uplink_text(snapshot.sent_today))
        spend = f"today {spend_text(snapshot.spend_today)}"
        if snapshot.budget_usd > 0:
            spend += f" of {spend_text(snapshot.budget_usd)}"
        self.spend.setText(f"{spend} · this month {spend_text(snapshot.spend_month)}")
        self.tools.setText("\n".join(snapshot.tool_lines))
        self.tools.setVisible(bool(snapshot.tool_lines))
        self.step_button.setText(status.action or "")
        self.step_button.setVisible(status.action is not None)
        self.restart_button.setEnabled(status.can_restart)
        self.mute_box.setEnabled(status.can_mute)
        if self.mute_box.isChecked() != muted:
            self.mute_box.blockSignals(True)
            self.mute_box.setChecked(muted)
            self.mute_box.blockSignals(False)

    def closeEvent(self, event: QCloseEvent) -> None:
        super().closeEvent(event)
        if self.standalone:
            self._quit_app()


def microphone_text(snapshot: Snapshot) -> str:
    """`sending now (voice gate on)`, `silent: nothing is sent (voice gate on)`, `muted`..."""
    gate = f"voice gate {snapshot.voice_gate}" if snapshot.voice_gate else "voice gate not started"
    if snapshot.muted:
        return f"muted ({gate})"
    if not isinstance(snapshot.state, Connected):
        return f"not connected: nothing is sent ({gate})"
    return f"sending now ({gate})" if snapshot.sending else f"silent: nothing is sent ({gate})"
