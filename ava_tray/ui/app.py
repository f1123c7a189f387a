"""The tray app: one QApplication, qasync running the same AvaEngine as the console, the tray as its view."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any

from PySide6.QtCore import QSocketNotifier
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from ava_tray import keystore, paths
from ava_tray.bootstrap import api_key_for, build_engine, launch_options
from ava_tray.clock import Clock, SystemClock
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.hotkey import NO_DISPLAY, GlobalShortcut, ShortcutBackend, backend_for_desktop
from ava_tray.settings import Settings
from ava_tray.settings_store import SettingsStore
from ava_tray.status import NeedsKey, Notice, Snapshot, UiState
from ava_tray.supervisor import Error
from ava_tray.ui import autostart
from ava_tray.ui.consent import TrayConsentAsker
from ava_tray.ui.conversation_window import ConversationWindow
from ava_tray.ui.icons import app_icon
from ava_tray.ui.memory_window import MemoryWindow
from ava_tray.ui.network import watch_network
from ava_tray.ui.pyside_fix import guard_singletons
from ava_tray.ui.settings_dialog import SettingsDialog
from ava_tray.ui.single_instance import InstanceLock, hand_over
from ava_tray.ui.tray import TrayUI

logger = logging.getLogger(__name__)

NO_TRAY_MESSAGE = ("No system tray is available on this desktop: AVA shows its status window instead "
                   "(closing it quits AVA).")
ALREADY_RUNNING = "AVA Tray is already running: its status window is now shown."
STOP_TIMEOUT = 5.0

EngineFactory = Callable[[Settings, str | None, LaunchOptions, ReconnectHistory], AvaEngine]


class AvaTrayApp:
    """Owns the engine's lifecycle and implements the tray's commands (`TrayHost`)."""

    def __init__(self, launch: LaunchOptions, *, store: SettingsStore | None = None, clock: Clock | None = None,
                 history: ReconnectHistory | None = None, engine_factory: EngineFactory | None = None,
                 tray_available: bool | None = None) -> None:
        guard_singletons()
        qt_app = QApplication.instance()
        if isinstance(qt_app, QApplication):
            qt_app.setQuitOnLastWindowClosed(False)  # a tray app lives on with no window open
        self.launch = launch
        self.clock = clock or SystemClock()
        self.store = store or SettingsStore()
        self.settings = self.store.load()
        self._history = history if history is not None else ReconnectHistory(paths.data_dir() / "history.jsonl")
        self._engine_factory = engine_factory or self._build_engine
        self.engine: AvaEngine | None = None
        self.engine_task: asyncio.Task[None] | None = None
        self._api_key: str | None = None
        self._quit: asyncio.Event | None = None
        self._quitting = False
        self.first_run = False
        self.key_problem: str | None = None
        if tray_available is None:
            tray_available = QSystemTrayIcon.isSystemTrayAvailable()
        self.ui = TrayUI(self, self.clock, tray_available=tray_available)
        self.settings_dialog: SettingsDialog | None = None
        self.shortcut = GlobalShortcut(self, shortcut_backend)
        """The global shortcut (mute, or hold to talk), bound when the app runs and after Settings change."""
        self._shortcut_task: asyncio.Future[None] | None = None

    # -- TrayHost ----------------------------------------------------------------------------------

    def _build_engine(self, settings: Settings, api_key: str | None, launch: LaunchOptions,
                      history: ReconnectHistory) -> AvaEngine:
        return build_engine(settings, api_key, launch, history=history, settings_file=self.store, clock=self.clock)

    @property
    def snapshot(self) -> Snapshot:
        """The engine's status now (no engine yet: waiting for a key)."""
        return self.engine.snapshot if self.engine is not None else Snapshot(state=NeedsKey())

    @property
    def state(self) -> UiState:
        return self.snapshot.state

    @property
    def history(self) -> ReconnectHistory:
        return self._history

    @property
    def muted(self) -> bool:
        return self.snapshot.muted

    def set_muted(self, muted: bool) -> None:
        """The tray's Mute item (or the status window's): the engine owns mute and publishes the change."""
        if self.engine is not None:
            self.engine.set_muted(muted)

    def hold_to_talk(self, held: bool) -> None:
        """The push-to-talk shortcut went down or up."""
        if self.engine is not None:
            self.engine.hold_to_talk(held)

    async def apply_shortcut(self) -> None:
        """Bind the global shortcut the settings name, and say so if it cannot work."""
        settings = self.settings
        state = await self.shortcut.apply(settings.shortcut, settings.shortcut_mode)
        self._shortcut_mode_to_engine()
        self.ui.extra_state["shortcut"] = state.text
        if self.settings_dialog is not None:
            self.settings_dialog.show_shortcut_state(state.text)
        if state.problem:
            self.ui.notify(Notice("AVA's global shortcut", f"Global shortcut: {state.text}."))
        self.ui.write_debug_state()

    def _shortcut_mode_to_engine(self) -> None:
        if self.engine is not None:
            push = self.shortcut.state.active and self.shortcut.mode == "push_to_talk"
            self.engine.set_push_to_talk(push, self.settings.shortcut if push else "")

    def _rebind_shortcut(self) -> None:
        if self._shortcut_task is not None and not self._shortcut_task.done():
            self._shortcut_task.cancel()
        self._shortcut_task = asyncio.ensure_future(self.apply_shortcut())

    def restart_now(self) -> None:
        """Skip the countdown or leave Error; a key changed meanwhile (e.g. `--set-key`) is picked up."""
        if self.engine is None:
            self.show_settings()
            return
        if not self.engine.launch.demo:
            try:
                key = api_key_for(self.engine.launch, self.engine.settings)
            except keystore.KeyStoreError as exc:
                logger.warning("restart: %s", exc)
            else:
                if key != self._api_key:
                    self._api_key = key
                    self.engine.replace_settings(self.engine.settings, key)
        self.engine.restart_now()

    def session_cost(self, start: float, end: float) -> float:
        """What the responses between two wall times cost, from the engine's spend ledger."""
        return self.engine.ledger.cost_between(start, end) if self.engine is not None else 0.0

    def take_status_action(self) -> None:
        """The step the status offers: use the model offered for a refused one, or go on past the budget."""
        if self.engine is not None:
            self.engine.take_status_action()

    def show_settings(self) -> None:
        """Open (or raise) the Settings dialog."""
        if self.settings_dialog is not None and self.settings_dialog.isVisible():
            self.settings_dialog.raise_()
            self.settings_dialog.activateWindow()
            return
        warning = " ".join(w for w in (self.store.warning, self.key_problem) if w) or None
        dialog = SettingsDialog(self.settings, on_save=self.save_settings,
                                on_demo=self.start_demo if self.engine is None else None,
                                warning=warning, first_run=self.first_run and self.engine is None,
                                mcp=self.engine.toolbox.mcp if self.engine is not None else None,
                                shortcut_state=self.shortcut.state.text)
        dialog.setWindowIcon(app_icon())
        self.settings_dialog = dialog
        self.ui.extra_windows["settings"] = dialog
        dialog.finished.connect(lambda _result: self.ui.write_debug_state())
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        self.ui.write_debug_state()

    def set_start_at_login(self, enabled: bool) -> None:
        try:
            autostart.set_enabled(enabled)
        except autostart.AutostartError as exc:
            self.ui.notify(Notice("AVA", str(exc), critical=True))
        on = autostart.is_enabled()
        self.ui.set_login_checked(on)
        with contextlib.suppress(OSError, ValueError):
            self.settings = replace(self.settings, start_at_login=on)
            self.store.save(self.settings)

    def quit(self) -> None:
        """Leave through the one cleanup path: `main()` wakes, stops the engine and returns."""
        logger.info("quit requested")
        self._quitting = True
        if self._quit is not None:
            self._quit.set()

    # -- settings and engines ----------------------------------------------------------------------

    def save_settings(self, settings: Settings) -> None:
        """Settings → Save: persist, then use the new settings (and key) from the next session on."""
        self.store.save(settings)
        self.store.warning = None
        previous, self.settings = self.settings, settings
        if (previous.shortcut, previous.shortcut_mode) != (settings.shortcut, settings.shortcut_mode):
            self._rebind_shortcut()
        key: str | None = None
        if self.engine is None or not self.engine.launch.demo:
            try:
                key = api_key_for(replace(self.launch, demo=False), settings)
            except keystore.MissingKeyError:
                key = None
            except keystore.KeyStoreError as exc:
                raise ValueError(str(exc)) from None
        if self.engine is None:
            if key is not None:
                self.key_problem = None
                self._api_key = key
                self.start_engine(self._engine_factory(settings, key, self.launch, self._history))
            return
        if self.engine.launch.demo:
            key = self._api_key
        self._api_key = key
        self.engine.replace_settings(settings, key)
        if isinstance(self.engine.snapshot.state, Error):
            self.engine.restart_now()

    def start_demo(self) -> None:
        """Settings → Try the demo: run AVA on the embedded simulator."""
        if self.engine is not None:
            return
        demo = replace(self.launch, demo=True)
        self.start_engine(self._engine_factory(self.settings, None, demo, self._history))

    def show_memory(self) -> None:
        """Open the Memory window (what AVA remembers across sessions)."""
        if self.engine is None:
            self.ui.notify(Notice("AVA", "AVA is not running yet: save an API key or try the demo first."))
            return
        window = self.ui.extra_windows.get("memory")
        if not isinstance(window, MemoryWindow):
            window = MemoryWindow(self.engine.toolbox.memory)
            window.setWindowIcon(app_icon())
            self.ui.extra_windows["memory"] = window
        window.show()
        window.raise_()
        window.activateWindow()

    def show_conversation(self) -> None:
        """Open (or raise) the Conversation window (today's turns, live; saved days)."""
        if self.engine is None:
            self.ui.notify(Notice("AVA", "AVA is not running yet: save an API key or try the demo first."))
            return
        window = self.ui.extra_windows.get("conversation")
        if not isinstance(window, ConversationWindow):
            window = ConversationWindow(self.engine.conversation_log)
            window.setWindowIcon(app_icon())
            self.ui.extra_windows["conversation"] = window
        else:
            window.fill_days()
        window.show()
        window.raise_()
        window.activateWindow()
        self.ui.write_debug_state()

    def start_engine(self, engine: AvaEngine) -> None:
        """Run `engine` on the loop and render every snapshot it publishes."""
        self.engine = engine
        engine.toolbox.registry.consent = TrayConsentAsker()
        engine.notifier = _TrayNotifier(self.ui)
        watch_network(engine.network_changed)
        engine.subscribe(self.ui.show_snapshot)
        self._shortcut_mode_to_engine()
        self.engine_task = asyncio.ensure_future(engine.run())
        self.engine_task.add_done_callback(self._engine_ended)
        self.ui.show_snapshot(engine.snapshot)

    def _engine_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("the engine failed", exc_info=task.exception())
            if not self._quitting:
                self.ui.notify(Notice("AVA stopped", f"AVA stopped after an internal error: {task.exception()}",
                                      critical=True))
        self.ui.render()

    async def stop_engine(self) -> None:
        """engine.stop(), then wait for its task: sessions, streams and sockets closed, no reconnect."""
        if self.engine is None or self.engine_task is None:
            return
        self.engine.stop()
        try:
            await asyncio.wait_for(asyncio.shield(self.engine_task), STOP_TIMEOUT)
        except TimeoutError:
            logger.error("the engine did not stop within %.0f s; cancelling it", STOP_TIMEOUT)
            self.engine_task.cancel()
            await asyncio.gather(self.engine_task, return_exceptions=True)
        except Exception:
            logger.exception("the engine ended with an error")

    def resolve_start_key(self) -> str | None:
        """The key to start with; None (and a reason to show) if AVA must wait for one."""
        try:
            return api_key_for(self.launch, self.settings)
        except keystore.MissingKeyError:
            self.first_run = True
            self.key_problem = None
        except keystore.KeyStoreError as exc:
            self.key_problem = str(exc)
        return None

    # -- running -----------------------------------------------------------------------------------

    async def main(self) -> int:
        """Run until Quit (menu, SIGINT/SIGTERM); return the exit code."""
        self._quit = asyncio.Event()
        if self._quitting:
            self._quit.set()
        lock = InstanceLock(on_show=self.ui.show_status_window)
        lock.listen()
        restore_signals = install_quit_signals(self.quit)
        try:
            if not self.ui.tray_available:
                logger.warning("%s", NO_TRAY_MESSAGE)
                print(NO_TRAY_MESSAGE, file=sys.stderr)
            self.ui.show()
            for warning in (self.store.warning, self._history.warning):
                if warning:
                    self.ui.notify(Notice("AVA", warning))
            key = self.resolve_start_key()
            if self.launch.demo or key is not None:
                self._api_key = key
                self.start_engine(self._engine_factory(self.settings, key, self.launch, self._history))
            else:
                self.ui.show_snapshot(Snapshot(state=NeedsKey()))
                self.show_settings()
            self._rebind_shortcut()
            await self._quit.wait()
            await self.stop_engine()
        finally:
            if self._shortcut_task is not None:
                self._shortcut_task.cancel()
            await self.shortcut.close()
            restore_signals()
            self.ui.hide()
            lock.close()
        logger.info("AVA Tray quit")
        return 0


def shortcut_backend() -> ShortcutBackend | str:
    """The desktop's shortcut backend; none on Qt's headless platforms (no desktop to take keys from)."""
    if QApplication.platformName() in ("offscreen", "minimal"):
        return NO_DISPLAY
    return backend_for_desktop()


class _TrayNotifier:
    """Reminders and other tool notices as tray notifications."""

    def __init__(self, ui: TrayUI) -> None:
        self._ui = ui

    def notify(self, title: str, text: str) -> None:
        self._ui.notify(Notice(title, text))


def install_quit_signals(on_quit: Callable[[], None]) -> Callable[[], None]:
    """SIGINT/SIGTERM call `on_quit` on the loop; the wakeup socket makes Qt's loop notice at once."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    try:
        previous_fd = signal.set_wakeup_fd(writer.fileno())
    except ValueError:  # not the main thread (tests): no signal handling
        reader.close()
        writer.close()
        return lambda: None
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)

    def drain() -> None:
        with contextlib.suppress(OSError):
            while reader.recv(64):
                pass

    notifier.activated.connect(drain)

    def handler(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: quitting", signal.Signals(signum).name)
        on_quit()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)
        signal.set_wakeup_fd(previous_fd)
        notifier.setEnabled(False)
        reader.close()
        writer.close()

    return restore


def run_tray(args: argparse.Namespace) -> int:
    """`ava-tray` with no flags: start the tray app, or hand over to the one already running."""
    import qasync

    guard_singletons()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("AVA Tray")
    app.setDesktopFileName("ava-tray")
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(app_icon())
    if hand_over():
        print(ALREADY_RUNNING, file=sys.stderr)
        return 0
    tray_app = AvaTrayApp(launch_options(args))
    result: int = qasync.run(tray_app.main())
    return result
