"""The tray app on the qasync loop: the same engine as the console, Quit's cleanup, first start without a key,
a rejected key (Error, one notification, no retries) fixed by a new key and Restart now."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from ui_helpers import SilentVoiceIO, eventually

from ava_tray import keystore
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.settings import Settings
from ava_tray.settings_store import SettingsStore
from ava_tray.simulator import RealtimeSimulator
from ava_tray.status import NeedsKey
from ava_tray.supervisor import Connected, Error, Stopped
from ava_tray.tools.fakes import FakeConsent
from ava_tray.ui.app import AvaTrayApp

GOOD_KEY = "sk-" "test-good-key-0123456789"
BAD_KEY = "sk-" "test-bad-key-9876543210"


def silent_engine(settings: Settings, api_key: str | None, launch: LaunchOptions,
                  history: ReconnectHistory) -> AvaEngine:
    return AvaEngine(settings, api_key, launch=launch, history=history, voice_io_factory=SilentVoiceIO)


def make_app(tmp_path: Path, launch: LaunchOptions) -> AvaTrayApp:
    return AvaTrayApp(launch, store=SettingsStore(tmp_path / "settings.ini"), history=ReconnectHistory(None),
                      engine_factory=silent_engine, tray_available=True)


def connected(app: AvaTrayApp, attempt: int = 1) -> Callable[[], bool]:
    return lambda: isinstance(app.state, Connected) and app.state.attempt >= attempt


async def test_demo_runs_the_engine_and_quit_cleans_up_within_2_s(qtbot: QtBot, tmp_path: Path) -> None:
    app = make_app(tmp_path, LaunchOptions(demo=True))
    main = asyncio.ensure_future(app.main())
    await eventually(connected(app), what="the first demo session")
    assert app.ui.tooltip.startswith("AVA · Connected · session")
    assert app.ui.status is not None and app.ui.status.icon_name == "connected"
    engine = app.engine
    assert engine is not None and engine.launch.demo

    app.ui.mute_action.trigger()
    assert engine.muted and app.ui.status.icon_name == "muted"
    app.ui.mute_action.trigger()
    assert not engine.muted
    engine.toolbox.registry.consent = FakeConsent(answer=True)
    await engine.toolbox.registry.call("mute_microphone", '{"muted": true}', "call_mute")  # "AVA, mute yourself"
    await eventually(lambda: app.ui.status is not None and app.ui.status.icon_name == "muted",
                     what="the tray to show the mute the tool made")
    assert app.muted and app.ui.mute_action.isChecked()
    app.ui.mute_action.trigger()
    assert not engine.muted and app.ui.status.icon_name == "connected"

    app.ui.restart_action.trigger()
    await eventually(connected(app, attempt=2), what="a fresh session after Restart now")

    started = time.monotonic()
    app.ui.quit_action.trigger()
    assert await asyncio.wait_for(main, 2.0) == 0
    assert time.monotonic() - started < 2.0
    assert isinstance(engine.supervisor.state, Stopped)
    assert app.engine_task is not None and app.engine_task.done()
    simulator = engine.simulator
    assert simulator is not None and simulator.open_sessions == []
    assert not app.ui.tray.isVisible()


async def test_first_start_without_a_key_opens_settings_with_try_the_demo(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_key(*_: object) -> str:
        raise keystore.MissingKeyError("No API key is set.")

    monkeypatch.setattr(keystore, "resolve_key", no_key)
    app = make_app(tmp_path, LaunchOptions())
    main = asyncio.ensure_future(app.main())
    await eventually(lambda: app.settings_dialog is not None and app.settings_dialog.isVisible())
    assert isinstance(app.state, NeedsKey) and app.engine is None
    assert app.ui.tooltip == "AVA · Needs an API key" and not app.ui.restart_action.isEnabled()
    dialog = app.settings_dialog
    assert dialog is not None and dialog.demo_button.isVisibleTo(dialog)
    dialog.demo_button.click()
    await eventually(connected(app), what="the demo after Try the demo")
    assert not dialog.isVisible()
    app.quit()
    assert await asyncio.wait_for(main, 2.0) == 0


async def test_a_rejected_key_is_an_error_without_retries_until_a_new_key_and_restart(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [BAD_KEY]
    monkeypatch.setattr(keystore, "resolve_key", lambda *_: keys[-1])
    async with RealtimeSimulator(api_key=GOOD_KEY) as simulator:
        store = SettingsStore(tmp_path / "settings.ini")
        store.save(Settings(realtime_url=simulator.url, delay_other=0.5, delay_connection_lost=0.5))
        app = make_app(tmp_path, LaunchOptions())
        main = asyncio.ensure_future(app.main())
        await eventually(lambda: isinstance(app.state, Error), what="the Error state")
        assert app.ui.status is not None and app.ui.status.icon_name == "error"
        assert app.ui.tooltip == "AVA · Error: the API key was rejected"
        assert [n.title for n in app.ui.notices] == ["AVA stopped reconnecting"]
        # No retries: watch for longer than the reconnect delays would take.
        with pytest.raises(AssertionError):
            await eventually(lambda: len(simulator.sessions) > 1, timeout=2.0)
        assert len(simulator.sessions) == 1

        keys.append(GOOD_KEY)  # as after `ava-tray --set-key` or Settings → Save
        app.ui.restart_action.trigger()
        await eventually(connected(app), what="a session with the new key")
        assert len(simulator.sessions) == 2
        app.quit()
        assert await asyncio.wait_for(main, 2.0) == 0


async def test_saving_settings_in_error_uses_the_new_key_at_once(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [BAD_KEY]
    monkeypatch.setattr(keystore, "resolve_key", lambda *_: keys[-1])
    monkeypatch.setattr(keystore, "save_key", lambda key, *_: keys.append(key))
    async with RealtimeSimulator(api_key=GOOD_KEY) as simulator:
        SettingsStore(tmp_path / "settings.ini").save(Settings(realtime_url=simulator.url))
        app = make_app(tmp_path, LaunchOptions())
        main = asyncio.ensure_future(app.main())
        await eventually(lambda: isinstance(app.state, Error), what="the Error state")
        app.ui.settings_action.trigger()
        dialog = app.settings_dialog
        assert dialog is not None and dialog.isVisible()
        dialog.key_edit.setText(GOOD_KEY)
        dialog.voice_box.setCurrentText("cedar")
        assert dialog.save()
        await eventually(connected(app), what="a session after Save")
        assert SettingsStore(tmp_path / "settings.ini").load().voice == "cedar"
        app.quit()
        assert await asyncio.wait_for(main, 2.0) == 0


async def test_a_corrupt_settings_file_is_reported(qtbot: QtBot, tmp_path: Path) -> None:
    (tmp_path / "settings.ini").write_bytes(b"[General]\ndelay_other=not-a-number\n")
    app = make_app(tmp_path, LaunchOptions(demo=True))
    main = asyncio.ensure_future(app.main())
    await eventually(lambda: app.ui.notices, what="a notification")
    assert "reset to their defaults" in app.ui.notices[0].message
    app.quit()
    assert await asyncio.wait_for(main, 2.0) == 0


def test_the_tray_honours_the_command_line(qtbot: QtBot, tmp_path: Path) -> None:
    """`--audio-mode` and `--no-rollover` reach the tray's engine (the tray used to ignore `--audio-mode`)."""
    from ava_tray.__main__ import build_parser
    from ava_tray.bootstrap import launch_options

    args = build_parser().parse_args(["--demo", "--audio-mode", "headphones", "--no-rollover"])
    app = AvaTrayApp(launch_options(args), store=SettingsStore(tmp_path / "settings.ini"),
                     history=ReconnectHistory(None), tray_available=True)
    engine = app._engine_factory(app.settings, None, app.launch, app.history)
    assert engine.effective_settings.audio_mode == "headphones"
    assert not engine.session.options.rollover.enabled
    assert app.settings.audio_mode == "automatic", "an override is never saved"
