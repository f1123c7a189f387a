"""The key in the real Secret Service (gnome-keyring under dbus), and clear sentences when there is none."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import keyring
import keyring.backends.fail
import pytest

from ava_tray import keystore

KEY = "sk-test-keystore-" + "Zq9x" * 8


def secret_service_available() -> bool:
    return not isinstance(keyring.get_keyring(), keyring.backends.fail.Keyring)


needs_keyring = pytest.mark.skipif(not secret_service_available(),
                                   reason="no Secret Service: run through `bash scripts/with-services.sh`")


@pytest.fixture
def clean_keyring() -> Iterator[None]:
    keystore.forget_key()
    yield
    keystore.forget_key()


@needs_keyring
def test_round_trip_in_the_real_secret_service(clean_keyring: None) -> None:
    assert "SecretService" in keystore.backend_name()
    assert keystore.stored_key() is None
    keystore.save_key(KEY + "\n")
    assert keystore.stored_key() == KEY
    assert keystore.resolve_key() == KEY
    assert keystore.forget_key() is True
    assert keystore.forget_key() is False


@needs_keyring
def test_env_key_wins_over_the_keyring(clean_keyring: None, monkeypatch: pytest.MonkeyPatch) -> None:
    keystore.save_key(KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-" + "x" * 20)
    assert keystore.resolve_key().startswith("sk-from-env-")


@needs_keyring
def test_missing_key_is_one_sentence(clean_keyring: None) -> None:
    with pytest.raises(keystore.MissingKeyError, match="ava-tray --set-key"):
        keystore.resolve_key()


@needs_keyring
def test_cli_set_and_forget_key_never_echo_it(clean_keyring: None) -> None:
    done = subprocess.run([sys.executable, "-m", "ava_tray", "--set-key"], input=KEY + "\n", text=True,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stdout + done.stderr
    assert "keyring" in done.stdout
    assert keystore.stored_key() == KEY
    done = subprocess.run([sys.executable, "-m", "ava_tray", "--forget-key"], text=True, capture_output=True,
                          timeout=30)
    assert done.returncode == 0 and "removed" in done.stdout
    assert keystore.stored_key() is None


def test_no_keyring_at_all_is_a_clear_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        with pytest.raises(keystore.KeyStoreError, match="no OS keyring is available") as caught:
            keystore.save_key(KEY)
        assert KEY not in str(caught.value)
        assert caught.value.__cause__ is None
        with pytest.raises(keystore.KeyStoreError, match="OPENAI_API_KEY"):
            keystore.resolve_key()
    finally:
        keyring.set_keyring(previous)


def test_cli_without_a_keyring_prints_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    done = subprocess.run([sys.executable, "-m", "ava_tray", "--set-key"], input=KEY + "\n", text=True,
                          capture_output=True, timeout=30)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and KEY not in done.stderr
    assert "no OS keyring is available" in done.stderr
    done = subprocess.run([sys.executable, "-m", "ava_tray", "--console"], text=True, capture_output=True,
                          timeout=30)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "keyring" in done.stderr
