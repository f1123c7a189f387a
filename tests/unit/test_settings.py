"""Settings round-trip through QSettings; bad files fall back to defaults with a warning."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ava_tray.settings import Settings
from ava_tray.settings_store import SettingsStore


def test_round_trip(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.ini")
    changed = replace(Settings(), voice="cedar", instructions="Be brief.\nVery brief.", delay_other=12.5,
                      input_device="mic", start_at_login=True)
    store.save(changed)
    assert SettingsStore(tmp_path / "settings.ini").load() == changed


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "none.ini")
    assert store.load() == Settings() and store.warning is None


def test_invalid_values_are_reset_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "settings.ini"
    path.write_text("[General]\ndelay_other=soon\nvoice=robot\nrealtime_url=http://example.com\nmodel=m2\n")
    store = SettingsStore(path)
    settings = store.load()
    assert settings.delay_other == 10.0 and settings.voice == "marin"
    assert settings.realtime_url.startswith("wss://api.openai.com")
    assert store.warning and "delay_other" in store.warning


def test_binary_garbage_is_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "settings.ini"
    path.write_bytes(b"\x00\xff\xfe[[[\n=\x00\x01" * 100)
    store = SettingsStore(path)
    assert store.load() == Settings()


def test_env_overrides_the_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVA_REALTIME_URL", "ws://127.0.0.1:9/v1/realtime")
    assert SettingsStore(tmp_path / "s.ini").load().realtime_url == "ws://127.0.0.1:9/v1/realtime"


def test_save_refuses_plain_ws_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        SettingsStore(tmp_path / "s.ini").save(replace(Settings(), realtime_url="ws://example.com/x"))


def test_load_saved_ignores_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SettingsStore(tmp_path / "s.ini")
    store.save(replace(Settings(), voice="sage"))
    monkeypatch.setenv("AVA_REALTIME_URL", "ws://127.0.0.1:9/v1/realtime")
    assert store.load().realtime_url.startswith("ws://127.0.0.1")
    assert store.load_saved().realtime_url == Settings().realtime_url and store.load_saved().voice == "sage"


def test_the_voice_gate_is_on_by_default_and_its_sensitivity_is_checked(tmp_path: Path) -> None:
    assert Settings().voice_gate is True and Settings().gate_sensitivity == 0.5
    assert replace(Settings(), gate_sensitivity=1.5).problems() == [
        "The voice gate's sensitivity must be between 0 and 1."]
    store = SettingsStore(tmp_path / "settings.ini")
    store.save(replace(Settings(), voice_gate=False, gate_sensitivity=0.25))
    assert store.load().voice_gate is False and store.load().gate_sensitivity == 0.25
