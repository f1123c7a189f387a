"""The Settings dialog as the tests open it: fixed device lists, filled before the test looks."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from ava_tray.settings import Settings
from ava_tray.ui.settings_dialog import SettingsDialog

DEVICES = (["Built-in Microphone", "USB Headset"], ["Speakers", "USB Headset"])


def make_dialog(qtbot: QtBot, settings: Settings, saved: list[Settings], **kwargs: object) -> SettingsDialog:
    dialog = SettingsDialog(settings, on_save=saved.append, list_devices=lambda: DEVICES, **kwargs)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.devices_listed, timeout=5000)
    return dialog
