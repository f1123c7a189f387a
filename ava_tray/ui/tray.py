"""The tray icon and its menu as a render of the state, plus the windows they open.

`TrayUI.render()` asks `describe()` for the whole picture and applies only what changed. A single-shot
timer is armed for the moment the texts next change (a countdown second, a session minute) and
stopped when nothing counts.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from ava_tray.clock import Clock
from ava_tray.day_timeline import Live
from ava_tray.history import ReconnectHistory
from ava_tray.status import Notice, NotificationPolicy, Snapshot, TrayStatus, describe
from ava_tray.supervisor import Connected, Error, Paused
from ava_tray.ui import autostart
from ava_tray.ui.history_window import HistoryWindow
from ava_tray.ui.icons import StateIcons, app_icon, prefers_dark
from ava_tray.ui.status_window import StatusWindow

logger = logging.getLogger(__name__)
TRAY_RECHECK_MS = 2000

DEBUG_STATE_ENV = "AVA_TRAY_DEBUG_STATE"
NOTICE_MS = 10_000


class TrayHost(Protocol):
    """What the tray needs from the application: the history to show and the commands to run."""

    @property
    def history(self) -> ReconnectHistory: ...

    def session_cost(self, start: float, end: float) -> float:
        """What the responses between two wall times cost (0 when nothing is known)."""
        ...

    def restart_now(self) -> None: ...

    def take_status_action(self) -> None: ...

    def set_muted(self, muted: bool) -> None: ...

    def show_settings(self) -> None: ...

    def show_memory(self) -> None: ...

    def show_conversation(self) -> None: ...

    def set_start_at_login(self, enabled: bool) -> None: ...

    def quit(self) -> None: ...


class TrayUI(QObject):
    """The tray icon, its menu, the status and history windows, and notifications."""

    def __init__(self, host: TrayHost, clock: Clock, *, icons: StateIcons | None = None,
                 tray_available: bool = True) -> None:
        super().__init__()
        self.host = host
        self.clock = clock
        self.icons = icons or StateIcons()
        self.tray_available = tray_available
        self.policy = NotificationPolicy()
        self.status: TrayStatus | None = None
        self.snapshot = Snapshot()
        """The status handed to the tray last; what it renders."""
        self._rendered_state = ""
        self.notices: list[Notice] = []
        self.status_window_opened = 0
        self._icon_key: tuple[str, bool] | None = None
        self._tooltip = ""
        self.history_window: HistoryWindow | None = None
        self.extra_windows: dict[str, QWidget] = {}
        self.extra_state: dict[str, Any] = {}
        """More for the debug state (e.g. how the global shortcut stands)."""

        self.tray = QSystemTrayIcon(self)
        self.menu = QMenu()
        self.status_action = self.menu.addAction("AVA")
        self.status_action.setEnabled(False)
        self.menu.addSeparator()
        self.status_step = self._action("", host.take_status_action)
        """The one step out of the current state (`TrayStatus.action`): hidden when there is none."""
        self.status_step.setVisible(False)
        self.restart_action = self._action("Restart now", host.restart_now)
        self.mute_action = QAction("Mute microphone", self.menu)
        self.mute_action.setCheckable(True)
        self.mute_action.toggled.connect(self._on_mute_toggled)
        self.menu.addAction(self.mute_action)
        self.menu.addSeparator()
        self.status_window_action = self._action("Status…", self.show_status_window)
        self.conversation_action = self._action("Conversation…", host.show_conversation)
        self.history_action = self._action("Reconnect history…", self.show_history)
        self.memory_action = self._action("Memory…", host.show_memory)
        self.settings_action = self._action("Settings…", host.show_settings)
        self.menu.addSeparator()
        self.login_action = QAction("Start at login", self.menu)
        self.login_action.setCheckable(True)
        self.login_action.setChecked(autostart.is_enabled())
        self.login_action.toggled.connect(host.set_start_at_login)
        self.menu.addAction(self.login_action)
        self.menu.addSeparator()
        self.quit_action = self._action("Quit", host.quit)
        self.tray.setContextMenu(self.menu)
        self.tray.activated.connect(self._on_activated)
        self.tray.messageClicked.connect(self._on_message_clicked)

        self.status_window = StatusWindow(restart=host.restart_now, step=host.take_status_action,
                                          settings=host.show_settings,
                                          history=self.show_history, conversation=host.show_conversation,
                                          set_muted=host.set_muted,
                                          quit_app=host.quit, standalone=not tray_available)
        self.status_window.setWindowIcon(app_icon())

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.render)
        # A tray host may start after AVA (start at login races the panel): look for it until it comes.
        self.tray_watch = QTimer(self)
        self.tray_watch.setInterval(TRAY_RECHECK_MS)
        self.tray_watch.timeout.connect(self._check_for_tray)

        self._debug_path = Path(os.environ[DEBUG_STATE_ENV]) if os.environ.get(DEBUG_STATE_ENV) else None
        self._debug_written = ""
        self._debug_timer: QTimer | None = None
        if self._debug_path is not None:
            # Test-only introspection: the tray geometry appears some time after show().
            self._debug_timer = QTimer(self)
            self._debug_timer.setInterval(250)
            self._debug_timer.timeout.connect(self.write_debug_state)
            self._debug_timer.start()

    def _action(self, text: str, slot: Any) -> QAction:
        action = QAction(text, self.menu)
        action.triggered.connect(lambda _checked=False: slot())
        self.menu.addAction(action)
        return action

    # -- showing -------------------------------------------------------------------------------

    def show(self) -> None:
        """Put the icon in the tray (or, with no tray, show the status window instead)."""
        self.render()
        if self.tray_available:
            self.tray.show()
        else:
            self.show_status_window()
            self.tray_watch.start()

    def _check_for_tray(self) -> None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        logger.info("a system tray appeared: moving the status there")
        self.tray_watch.stop()
        self.tray_available = True
        self.status_window.set_standalone(False)
        self.tray.show()
        self.render()

    def hide(self) -> None:
        self.timer.stop()
        self.tray_watch.stop()
        if self._debug_timer is not None:
            self._debug_timer.stop()
        self.tray.hide()
        for window in (self.status_window, self.history_window, *self.extra_windows.values()):
            if window is not None:
                window.close() if window is not self.status_window else window.hide()

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """The engine (or the app) published a new status: render it, then notify if its state deserves it."""
        previous, self.snapshot = self.snapshot, snapshot
        notice = None
        if snapshot.state != previous.state or self.status is None:
            notice = self.policy.on_state(snapshot.state, self.clock.monotonic())
        self.render()
        if self.history_window is not None:
            self.history_window.show_sent_today(snapshot.sent_today)
        if notice is not None:
            self.notify(notice)

    def render(self) -> None:
        """Apply `describe()` for the snapshot and the time now; arm the timer for the next change."""
        now = self.clock.monotonic()
        snapshot = self.snapshot
        state, muted = snapshot.state, snapshot.muted
        status = describe(snapshot, now)
        self.status = status
        self._rendered_state = type(state).__name__
        key = (status.icon_name, prefers_dark())
        if key != self._icon_key:
            self._icon_key = key
            icon = self.icons.icon(*key)
            self.tray.setIcon(icon)
            self.status_window.setWindowIcon(icon)
        if status.tooltip != self._tooltip:
            self._tooltip = status.tooltip
            self.tray.setToolTip(status.tooltip)
        self.status_action.setText(status.status_line)
        self.status_step.setVisible(status.action is not None)
        self.status_step.setText(status.action or "")
        self.restart_action.setEnabled(status.can_restart)
        self.mute_action.setEnabled(status.can_mute)
        if self.mute_action.isChecked() != muted:
            self.mute_action.blockSignals(True)
            self.mute_action.setChecked(muted)
            self.mute_action.blockSignals(False)
        self.status_window.show_status(status, snapshot, now)
        if status.next_change_in is None:
            self.timer.stop()
        else:
            self.timer.start(max(1, int(status.next_change_in * 1000) + 5))
        self.write_debug_state()

    @property
    def tooltip(self) -> str:
        return self._tooltip

    # -- actions -------------------------------------------------------------------------------

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_status_window()

    def _on_message_clicked(self) -> None:
        """A click on a notification: take the step it offers (use another model), else show the status."""
        if self.status is not None and self.status.action is not None and isinstance(self.snapshot.state, Error):
            self.host.take_status_action()
        else:
            self.show_status_window()

    def _on_mute_toggled(self, checked: bool) -> None:
        self.host.set_muted(checked)  # the engine publishes the new snapshot and the tray renders it
        self.render()  # a change nobody made (no engine yet) shows as it is

    def show_status_window(self) -> None:
        """Open (or raise) the status window."""
        self.status_window_opened += 1
        self.render()
        self.status_window.show()
        self.status_window.raise_()
        self.status_window.activateWindow()
        self.write_debug_state()

    def show_history(self) -> None:
        """Open (or raise) the reconnect history window."""
        if self.history_window is None:
            self.history_window = HistoryWindow(self.host.history, self.clock, cost_of=self.host.session_cost,
                                                live=self._live_for_history,
                                                sent_today=self.snapshot.sent_today)
            self.history_window.setWindowIcon(app_icon())
        self.history_window.show()
        self.history_window.raise_()
        self.history_window.activateWindow()
        self.write_debug_state()

    def _live_for_history(self) -> Live:
        """What the day strip cannot read from the history: since when AVA is connected, or that it is paused."""
        state = self.snapshot.state
        if isinstance(state, Connected):
            return Live(connected_since=self.clock.wall() - (self.clock.monotonic() - state.since))
        return Live(paused=isinstance(state, Paused))

    def set_login_checked(self, enabled: bool) -> None:
        """Show whether start at login is on (after the app changed or failed to change it)."""
        self.login_action.blockSignals(True)
        self.login_action.setChecked(enabled)
        self.login_action.blockSignals(False)

    def notify(self, notice: Notice) -> None:
        """Show a desktop notification (a balloon where the desktop has no notification service)."""
        self.notices.append(notice)
        logger.info("notification: %s: %s", notice.title, notice.message)
        if self.tray_available and self.tray.isVisible() and QSystemTrayIcon.supportsMessages():
            kind = (QSystemTrayIcon.MessageIcon.Critical if notice.critical
                    else QSystemTrayIcon.MessageIcon.Information)
            self.tray.showMessage(notice.title, notice.message, kind, NOTICE_MS)
        self.write_debug_state()

    # -- test-only introspection ---------------------------------------------------------------

    def debug_snapshot(self) -> dict[str, Any]:
        """What an end-to-end test needs to find and check the tray from outside."""
        geometry = self.tray.geometry()
        windows = {"status": self.status_window.isVisible(),
                   "history": self.history_window is not None and self.history_window.isVisible()}
        windows.update({name: w.isVisible() for name, w in self.extra_windows.items()})
        history_rows = self.history_window.table.rowCount() if self.history_window is not None else 0
        shown = {name: w.debug_state() for name, w in self.extra_windows.items() if hasattr(w, "debug_state")}
        return {
            **shown,
            **self.extra_state,
            "pid": os.getpid(),
            "state": self._rendered_state,  # what the icon shows, not a state not yet rendered
            "icon": self.status.icon_name if self.status else None,
            "tooltip": self._tooltip,
            "status_line": self.status.status_line if self.status else "",
            "tray_available": self.tray_available,
            "tray_visible": self.tray.isVisible(),
            "geometry": [geometry.x(), geometry.y(), geometry.width(), geometry.height()],
            "windows": windows,
            "menu_visible": self.menu.isVisible(),
            "status_window_opened": self.status_window_opened,
            "history_rows": history_rows,
            "records": len(self.host.history.records),
            "muted": self.snapshot.muted,
            "push_to_talk": self.snapshot.push_to_talk,
            "talking": self.snapshot.talking,
            "sending": self.snapshot.sending,
            "notifications": [{"title": n.title, "message": n.message} for n in self.notices],
        }

    def write_debug_state(self) -> None:
        """With AVA_TRAY_DEBUG_STATE=path, keep `path` up to date as JSON (written atomically)."""
        if self._debug_path is None:
            return
        text = json.dumps(self.debug_snapshot(), sort_keys=True)
        if text == self._debug_written:
            return
        temporary = self._debug_path.with_name(self._debug_path.name + ".tmp")
        try:
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, self._debug_path)
            self._debug_written = text
        except OSError as exc:
            logger.warning("could not write the debug state to %s: %s", self._debug_path, exc)
