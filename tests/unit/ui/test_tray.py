"""The tray as a render of the state: icon, tooltip, countdown timer, menu enablement, clicks, notifications."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from PySide6.QtWidgets import QSystemTrayIcon
from pytestqt.qtbot import QtBot

from ava_tray.clock import ManualClock
from ava_tray.history import ReconnectHistory
from ava_tray.ledger import Uplink
from ava_tray.realtime.ending import Cause, SessionEnding
from ava_tray.status import ICON_NAMES, Snapshot, UiState
from ava_tray.supervisor import Connected, Connecting, Error, Paused, Reconnecting, Stopped
from ava_tray.ui.tray import TrayUI

EXPIRED = SessionEnding(Cause.SESSION_EXPIRED, "Session expired (60-minute limit reached)", 1001)
BAD_KEY = SessionEnding(Cause.FATAL, "The API key was rejected. Replace it in Settings.", 3000)
ICON_NAMES_BY_STATE = {"Connecting": "connecting", "Error": "error"}


@dataclass
class FakeHost:
    """Stands in for the app: a settable state, a log of the commands the tray ran, and (like the engine) a new
    snapshot for the tray when mute changes."""

    state: UiState = field(default_factory=lambda: Connecting(attempt=1, since=0.0))
    history: ReconnectHistory = field(default_factory=lambda: ReconnectHistory(None))
    muted: bool = False
    calls: list[str] = field(default_factory=list)
    ui: TrayUI | None = None

    def restart_now(self) -> None:
        self.calls.append("restart")

    def take_status_action(self) -> None:
        self.calls.append("step")

    def session_cost(self, start: float, end: float) -> float:
        return 0.0

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        self.calls.append(f"mute={muted}")
        if self.ui is not None:
            self.ui.show_snapshot(replace(self.ui.snapshot, muted=muted))

    def show_settings(self) -> None:
        self.calls.append("settings")

    def show_memory(self) -> None:
        self.calls.append("memory")

    def show_conversation(self) -> None:
        self.calls.append("conversation")

    def set_start_at_login(self, enabled: bool) -> None:
        self.calls.append(f"login={enabled}")

    def quit(self) -> None:
        self.calls.append("quit")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1000.0)


@pytest.fixture
def ui(qtbot: QtBot, clock: ManualClock) -> TrayUI:
    host = FakeHost(state=Connecting(attempt=1, since=clock.monotonic()))
    tray = TrayUI(host, clock)
    host.ui = tray
    tray.show()
    yield tray
    tray.hide()


def set_state(ui: TrayUI, state: UiState) -> None:
    ui.host.state = state  # type: ignore[attr-defined]
    ui.show_snapshot(Snapshot(state, muted=ui.host.muted))  # type: ignore[attr-defined]


def test_every_state_renders_its_own_icon_and_tooltip(ui: TrayUI, clock: ManualClock) -> None:
    now = clock.monotonic()
    seen: dict[str, tuple[int, str]] = {}
    for state in (Connecting(1, now), Connected(1, now), Connected(1, now, speaking=True),
                  Reconnecting(EXPIRED, 2, now + 3, 3.0), Error(BAD_KEY, 2), Paused("today's budget is spent"),
                  Stopped()):
        set_state(ui, state)
        assert ui.status is not None
        seen[ui.status.icon_name] = (ui.tray.icon().cacheKey(), ui.tray.toolTip())
        assert not ui.tray.icon().isNull()
        assert ui.tray.toolTip() == ui.status.tooltip
        assert ui.status_action.text() == ui.status.status_line
    ui.show_snapshot(replace(ui.snapshot, state=Connected(1, now), sending=True, voice_gate="on"))
    seen["hearing"] = (ui.tray.icon().cacheKey(), ui.tray.toolTip())
    ui.host.muted = True  # type: ignore[attr-defined]
    set_state(ui, Connected(1, now))
    seen["muted"] = (ui.tray.icon().cacheKey(), ui.tray.toolTip())
    ui.host.muted = False  # type: ignore[attr-defined]
    ui.show_snapshot(Snapshot(Connected(1, now), push_to_talk=True, shortcut="Ctrl+Alt+A"))
    seen["push_to_talk"] = (ui.tray.icon().cacheKey(), ui.tray.toolTip())
    assert set(seen) == set(ICON_NAMES) - {"offline"}
    assert len({key for key, _ in seen.values()}) == len(seen)
    assert len({tip for _, tip in seen.values()}) == len(seen)


def test_countdown_reads_3_2_1_and_its_timer_runs_only_while_counting(ui: TrayUI, clock: ManualClock) -> None:
    set_state(ui, Connecting(attempt=1, since=clock.monotonic()))
    assert not ui.timer.isActive()
    tooltips = []
    original = ui.tray.setToolTip

    def spy(text: str) -> None:
        tooltips.append(text)
        original(text)

    ui.tray.setToolTip = spy  # type: ignore[method-assign]
    set_state(ui, Reconnecting(EXPIRED, 2, clock.monotonic() + 3, 3.0))
    assert ui.timer.isActive() and 990 <= ui.timer.interval() <= 1010
    ui.timer.timeout.emit()  # a tick with no time passed: same text, not set again
    for _ in range(2):
        clock.advance(1)
        ui.timer.timeout.emit()
    assert [t.split(" (")[0] for t in tooltips] == [
        "AVA · Reconnecting in 3 s", "AVA · Reconnecting in 2 s", "AVA · Reconnecting in 1 s"]
    set_state(ui, Connecting(attempt=2, since=clock.monotonic()))
    assert not ui.timer.isActive()
    set_state(ui, Connected(attempt=2, since=clock.monotonic()))
    assert ui.timer.isActive() and ui.timer.interval() >= 59_000  # session age: once a minute
    set_state(ui, Stopped())
    assert not ui.timer.isActive()


def test_menu_items_are_enabled_only_where_they_make_sense(ui: TrayUI, clock: ManualClock) -> None:
    always = (ui.status_window_action, ui.history_action, ui.settings_action, ui.login_action, ui.quit_action)
    set_state(ui, Connected(1, clock.monotonic()))
    assert ui.restart_action.isEnabled() and ui.mute_action.isEnabled()
    assert not ui.status_action.isEnabled()
    set_state(ui, Error(BAD_KEY, 1))
    assert ui.restart_action.isEnabled()
    set_state(ui, Stopped())
    assert not ui.restart_action.isEnabled() and not ui.mute_action.isEnabled()
    assert not ui.status_window.restart_button.isEnabled()
    assert all(action.isEnabled() for action in always)
    texts = [a.text() for a in ui.menu.actions() if not a.isSeparator() and a.isVisible()]
    assert texts[1:] == ["Restart now", "Mute microphone", "Status…", "Conversation…", "Reconnect history…",
                         "Memory…", "Settings…", "Start at login", "Quit"]


def test_menu_actions_run_the_commands(ui: TrayUI, clock: ManualClock) -> None:
    set_state(ui, Connected(1, clock.monotonic()))
    ui.restart_action.trigger()
    ui.mute_action.trigger()
    assert ui.host.muted and ui.status is not None and ui.status.icon_name == "muted"
    ui.memory_action.trigger()
    ui.conversation_action.trigger()
    ui.status_window.conversation_button.click()
    ui.settings_action.trigger()
    ui.quit_action.trigger()
    assert ui.host.calls == ["restart", "mute=True", "memory", "conversation", "conversation", "settings",  # type: ignore[attr-defined]
                             "quit"]


def test_a_click_on_the_icon_opens_the_status_window(ui: TrayUI, qtbot: QtBot, clock: ManualClock) -> None:
    set_state(ui, Connected(1, clock.monotonic() - 125))
    ui.tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    qtbot.waitUntil(ui.status_window.isVisible)
    assert ui.status_window.headline.text() == "Connected · session 2 min"
    assert ui.status_window.session_age.text() == "2 min"
    ui.status_window.history_button.click()
    assert ui.history_window is not None and ui.history_window.isVisible()
    ui.status_window.restart_button.click()
    assert "restart" in ui.host.calls  # type: ignore[attr-defined]


def test_the_status_window_and_the_history_show_what_the_microphone_sends(ui: TrayUI, clock: ManualClock) -> None:
    connected = Connected(1, clock.monotonic() - 125)
    ui.show_snapshot(Snapshot(connected, voice_gate="on", sent_today=Uplink(48_000 * 12, 3)))
    window = ui.status_window
    assert window.microphone.text() == "silent: nothing is sent (voice gate on)"
    assert window.sent_today.text() == "576 kB (12 s of audio, 3 times)"
    ui.show_snapshot(replace(ui.snapshot, sending=True))
    assert window.microphone.text() == "sending now (voice gate on)"
    assert ui.tray.toolTip() == "AVA · Connected · hearing you · session 2 min"
    ui.show_history()
    assert ui.history_window is not None
    assert ui.history_window.totals_label.text().endswith("sent today: 576 kB (12 s of audio, 3 times)")
    ui.show_snapshot(replace(ui.snapshot, sending=False, sent_today=Uplink(48_000 * 30, 4)))
    assert ui.history_window.totals_label.text().endswith("sent today: 1.4 MB (30 s of audio, 4 times)")


def test_entering_error_notifies_once(ui: TrayUI, clock: ManualClock) -> None:
    set_state(ui, Connected(1, clock.monotonic()))
    set_state(ui, Reconnecting(EXPIRED, 2, clock.monotonic() + 3, 3.0))
    assert ui.notices == []
    set_state(ui, Error(BAD_KEY, 2))
    set_state(ui, Error(BAD_KEY, 2))
    assert len(ui.notices) == 1 and "API key was rejected" in ui.notices[0].message


def test_the_error_icon_is_up_before_its_notification(ui: TrayUI, clock: ManualClock,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The notification follows the icon, and no outside view (the debug state) ever pairs a new state with the
    old icon: the X11 tests read that file while the app runs."""
    seen: list[tuple[str, str | None, int]] = []
    shown = ui.notify

    def notify(notice: object) -> None:
        seen.append(("notify", ui.status.icon_name if ui.status else None, 0))
        shown(notice)  # type: ignore[arg-type]

    monkeypatch.setattr(ui, "notify", notify)
    monkeypatch.setattr(ui, "write_debug_state", lambda: seen.append(
        (ui.debug_snapshot()["state"], ui.debug_snapshot()["icon"], len(ui.notices))))
    set_state(ui, Connecting(1, clock.monotonic()))
    set_state(ui, Error(BAD_KEY, 2))
    assert ("notify", "error", 0) in seen
    assert seen.index(("notify", "error", 0)) > seen.index(("Error", "error", 0))
    assert all(icon == ICON_NAMES_BY_STATE[state] for state, icon, _ in seen if state in ICON_NAMES_BY_STATE)


def test_a_refused_model_and_a_budget_pause_offer_their_one_step(ui: TrayUI, clock: ManualClock) -> None:
    refused = SessionEnding(Cause.FATAL, "The server refused the model gpt-realtime (HTTP 404 at the handshake). "
                            "Use gpt-realtime-2.1 instead.", error_code="model_refused", use_model="gpt-realtime-2.1")
    set_state(ui, Error(refused, 1))
    assert ui.status_step.isVisible() and ui.status_step.text() == "Use gpt-realtime-2.1"
    assert ui.status_window.step_button.text() == "Use gpt-realtime-2.1"
    assert "Click here to use gpt-realtime-2.1" in ui.notices[-1].message
    ui.tray.messageClicked.emit()  # a click on the notification takes the step
    ui.status_step.trigger()
    assert ui.host.calls == ["step", "step"]  # type: ignore[attr-defined]
    set_state(ui, Paused("today's budget of $2.00 is spent"))
    assert ui.status is not None and ui.status.icon_name == "paused"
    assert ui.status_step.text() == "Go on anyway" and not ui.restart_action.isEnabled()
    assert ui.tray.toolTip() == "AVA · Paused: today's budget of $2.00 is spent"
    set_state(ui, Connected(1, clock.monotonic()))
    assert not ui.status_step.isVisible()
