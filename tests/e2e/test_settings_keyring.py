"""The key typed into Settings goes to a real Secret Service (gnome-keyring, started by with-services.sh) and
never into the settings file; replaced and removed from the dialog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from pytestqt.qtbot import QtBot
from settings_dialog_rig import DEVICES, make_dialog

from ava_tray import keystore
from ava_tray.settings import Settings
from ava_tray.settings_store import SettingsStore
from ava_tray.ui.settings_dialog import SettingsDialog


@pytest.fixture
def clean_keyring() -> Iterator[None]:
    if isinstance(keyring.get_keyring(), keyring.backends.fail.Keyring):
        pytest.skip("no OS keyring (Secret Service) in this session: run under `bash scripts/with-services.sh`")
    keystore.forget_key()
    yield
    keystore.forget_key()


def test_the_key_goes_to_the_secret_service_and_never_into_the_settings_file(
        qtbot: QtBot, tmp_path: Path, clean_keyring: None) -> None:
    store = SettingsStore(tmp_path / "settings.ini")
    key = "sk-" "test-tray-0123456789abcdef"
    dialog = SettingsDialog(Settings(), on_save=store.save, list_devices=lambda: DEVICES, first_run=True,
                            on_demo=lambda: None)
    qtbot.addWidget(dialog)
    assert "No key is stored" in dialog.key_location.text()
    assert dialog.demo_button.isVisibleTo(dialog)
    dialog.key_edit.setText(key)
    assert dialog.save()
    assert keystore.stored_key() == key
    assert key not in (tmp_path / "settings.ini").read_text()
    reopened = make_dialog(qtbot, store.load(), [])
    assert "A key is stored in the OS keyring" in reopened.key_location.text()
    assert key not in reopened.key_location.text() and reopened.key_edit.text() == ""
    assert not reopened.key_edit.isVisibleTo(reopened)
    reopened.replace_key_button.click()
    assert reopened.key_edit.isVisibleTo(reopened)
    reopened.key_edit.setText("sk-" "test-replaced-key-000")
    assert reopened.save()
    assert keystore.stored_key() == "sk-" "test-replaced-key-000"
    last = make_dialog(qtbot, store.load(), [])
    last.remove_key_button.click()
    assert keystore.stored_key() is None and "No key is stored" in last.key_location.text()
