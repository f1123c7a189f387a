"""Settings: round-trip through the dialog and QSettings, keyring errors as sentences, a corrupt file's warning,
the device pickers, Test connection (the key in a real Secret Service: tests/e2e/test_settings_keyring.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from PySide6.QtGui import QKeySequence
from pytestqt.qtbot import QtBot
from ui_helpers import eventually

from ava_tray.settings import Settings
from ava_tray.settings_store import SettingsStore
from ava_tray.simulator import RealtimeSimulator
from ava_tray.ui.settings_dialog import SYSTEM_DEFAULT, SettingsDialog


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    yield
    keyring.set_keyring(previous)


from settings_dialog_rig import DEVICES, make_dialog  # noqa: E402  (tests/settings_dialog_rig.py)


def test_the_device_pickers_fill_off_the_gui_thread(qtbot: QtBot, no_keyring: None) -> None:
    """Listing devices can take seconds (a helper process while audio is open): the dialog opens at once,
    shows the saved choice meanwhile, and fills the pickers when the listing is done."""
    release = threading.Event()
    listed_on: list[threading.Thread] = []

    def slow_listing() -> tuple[list[str], list[str]]:
        listed_on.append(threading.current_thread())
        release.wait(10)
        return DEVICES

    dialog = SettingsDialog(replace(Settings(), input_device="USB Headset"), on_save=lambda s: None,
                            list_devices=slow_listing)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: bool(listed_on), timeout=5000)
    assert listed_on[0] is not threading.main_thread()
    assert not dialog.devices_listed and dialog.input_box.currentText() == "USB Headset"
    assert dialog.edited_settings().input_device == "USB Headset"
    release.set()
    qtbot.waitUntil(lambda: dialog.devices_listed, timeout=5000)
    assert [dialog.input_box.itemText(i) for i in range(dialog.input_box.count())] == [
        SYSTEM_DEFAULT, "Built-in Microphone", "USB Headset"]
    assert dialog.input_box.currentText() == "USB Headset"


def test_settings_round_trip_through_the_dialog(qtbot: QtBot, tmp_path: Path, no_keyring: None) -> None:
    store = SettingsStore(tmp_path / "settings.ini")
    saved: list[Settings] = []

    def on_save(settings: Settings) -> None:
        store.save(settings)
        saved.append(settings)

    dialog = SettingsDialog(store.load(), on_save=on_save, list_devices=lambda: DEVICES)
    qtbot.waitUntil(lambda: dialog.devices_listed, timeout=5000)
    qtbot.addWidget(dialog)
    assert dialog.input_box.itemText(0) == SYSTEM_DEFAULT
    assert [dialog.output_box.itemText(i) for i in range(dialog.output_box.count())] == [
        SYSTEM_DEFAULT, "Speakers", "USB Headset"]
    dialog.model_box.setCurrentText("gpt-realtime-mini")
    dialog.voice_box.setCurrentText("cedar")
    dialog.instructions_edit.setPlainText("Answer in one sentence.")
    dialog.url_edit.setText("ws://127.0.0.1:8765/v1/realtime")
    dialog.input_box.setCurrentIndex(dialog.input_box.findData("USB Headset"))
    dialog.delay_expired.setValue(2.5)
    dialog.delay_lost.setValue(7)
    dialog.delay_other.setValue(20)
    assert dialog.save()
    expected = replace(Settings(), model="gpt-realtime-mini", voice="cedar", instructions="Answer in one sentence.",
                       realtime_url="ws://127.0.0.1:8765/v1/realtime", input_device="USB Headset",
                       delay_session_expired=2.5, delay_connection_lost=7.0, delay_other=20.0)
    assert saved == [expected]
    assert SettingsStore(tmp_path / "settings.ini").load() == expected
    again = make_dialog(qtbot, expected, [])
    assert again.edited_settings() == expected
    assert again.input_box.currentText() == "USB Headset"


def test_invalid_values_are_refused_with_a_sentence(qtbot: QtBot, no_keyring: None) -> None:
    saved: list[Settings] = []
    dialog = make_dialog(qtbot, Settings(), saved)
    dialog.url_edit.setText("ws://example.com/realtime")
    assert not dialog.save()
    assert saved == [] and "unencrypted" in dialog.error_label.text()


def test_the_audio_mode_is_chosen_in_one_box_and_saved(qtbot: QtBot, tmp_path: Path, no_keyring: None) -> None:
    store = SettingsStore(tmp_path / "settings.ini")
    dialog = SettingsDialog(store.load(), on_save=store.save, list_devices=lambda: DEVICES)
    qtbot.waitUntil(lambda: dialog.devices_listed, timeout=5000)
    qtbot.addWidget(dialog)
    box = dialog.audio_mode_box
    assert [box.itemData(i) for i in range(box.count())] == ["automatic", "speakers", "headphones"]
    assert box.currentData() == "automatic"
    box.setCurrentIndex(box.findData("speakers"))
    assert dialog.save()
    assert store.load().audio_mode == "speakers"
    again = make_dialog(qtbot, store.load(), [])
    assert again.audio_mode_box.currentText() == "Speakers (echo cancellation)"


def test_the_shortcut_its_mode_and_saving_the_conversation_are_saved(qtbot: QtBot, tmp_path: Path,
                                                                     no_keyring: None) -> None:
    store = SettingsStore(tmp_path / "settings.ini")
    dialog = SettingsDialog(store.load(), on_save=store.save, list_devices=lambda: DEVICES,
                            shortcut_state="Ctrl+Alt+A (X11): mutes and unmutes")
    qtbot.addWidget(dialog)
    assert dialog.shortcut_edit.keySequence().toString() == "Ctrl+Alt+A"
    assert dialog.shortcut_state_label.text() == "Ctrl+Alt+A (X11): mutes and unmutes"
    dialog.shortcut_edit.setKeySequence(QKeySequence("Ctrl+Shift+F9"))
    dialog.shortcut_mode_box.setCurrentIndex(dialog.shortcut_mode_box.findData("push_to_talk"))
    dialog.save_conversation_box.setChecked(True)
    assert dialog.save()
    saved = store.load()
    assert (saved.shortcut, saved.shortcut_mode, saved.save_transcript) == ("Ctrl+Shift+F9", "push_to_talk", True)
    again = make_dialog(qtbot, saved, [])
    again.shortcut_edit.setKeySequence(QKeySequence("Shift+B"))  # would take a key one types with
    assert not again.save() and "add Ctrl, Alt or Meta" in again.error_label.text()
    again.shortcut_edit.clear()  # no shortcut at all is fine
    assert again.save() and again.settings.shortcut == ""


def test_the_voice_gate_and_its_sensitivity_are_set_under_audio_and_saved(
        qtbot: QtBot, tmp_path: Path, no_keyring: None) -> None:
    store = SettingsStore(tmp_path / "settings.ini")
    saved: list[Settings] = []
    dialog = make_dialog(qtbot, store.load(), saved)
    assert dialog.gate_box.currentData() is True and dialog.sensitivity_slider.value() == 50
    audio = dialog.tabs.widget([dialog.tabs.tabText(i) for i in range(dialog.tabs.count())].index("Audio"))
    assert audio.isAncestorOf(dialog.gate_box) and audio.isAncestorOf(dialog.sensitivity_slider)
    dialog.sensitivity_slider.setValue(80)
    dialog.gate_box.setCurrentIndex(dialog.gate_box.findData(False))
    assert not dialog.sensitivity_slider.isEnabled(), "a sensitivity for a gate that is off"
    assert dialog.save()
    store.save(saved[-1])
    loaded = store.load()
    assert loaded.voice_gate is False and loaded.gate_sensitivity == pytest.approx(0.8)
    again = make_dialog(qtbot, loaded, [])
    assert again.gate_box.currentText() == "Always (stream continuously)" and again.sensitivity_slider.value() == 80


def test_a_missing_device_stays_selected_and_says_so(qtbot: QtBot, no_keyring: None) -> None:
    dialog = make_dialog(qtbot, replace(Settings(), output_device="Old DAC"), [])
    assert dialog.output_box.currentText() == "Old DAC (not found)"
    assert dialog.edited_settings().output_device == "Old DAC"


def test_a_corrupt_settings_file_falls_back_with_a_warning(qtbot: QtBot, tmp_path: Path, no_keyring: None) -> None:
    path = tmp_path / "settings.ini"
    path.write_bytes(b"[General]\nvoice=nonsense\ndelay_other=abc\n")
    store = SettingsStore(path)
    settings = store.load()
    assert settings == Settings() and store.warning
    dialog = make_dialog(qtbot, settings, [], warning=store.warning)
    assert dialog.warning_label.isVisibleTo(dialog) and "reset to their defaults" in dialog.warning_label.text()


def test_a_missing_keyring_shows_its_sentence_not_a_traceback(qtbot: QtBot, no_keyring: None) -> None:
    saved: list[Settings] = []
    dialog = make_dialog(qtbot, Settings(), saved)
    assert "no OS keyring is available" in dialog.key_location.text()
    dialog.key_edit.setText("sk-" "test-not-saved")
    assert not dialog.save()
    assert "no OS keyring is available" in dialog.error_label.text() and saved == []
    assert "Traceback" not in dialog.error_label.text()


async def test_test_connection_reports_success_and_a_rejected_key(qtbot: QtBot, no_keyring: None) -> None:
    async with RealtimeSimulator(api_key="sk-" "good-key-123456") as simulator:
        dialog = make_dialog(qtbot, replace(Settings(), realtime_url=simulator.url), [])
        dialog.key_edit.setText("sk-" "good-key-123456")
        dialog.test_button.click()
        await eventually(lambda: dialog.test_result.text().startswith(("✔", "✘")))
        assert dialog.test_result.text().startswith("✔ Connected")
        dialog.key_edit.setText("sk-" "wrong-key-000000")
        dialog.test_button.click()
        await eventually(lambda: dialog.test_result.text().startswith("✘"))
        assert "API key was rejected" in dialog.test_result.text()
    dialog.test_button.click()
    await eventually(lambda: dialog.test_result.text().startswith("✘ Connection lost"))
