"""One AVA per user: a second launch hands over; a stale lock left by a crash does not block the next start."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from pathlib import Path

import pytest
from PySide6.QtNetwork import QLocalServer
from pytestqt.qtbot import QtBot

from ava_tray.ui.single_instance import InstanceLock, hand_over, server_name


def test_a_second_launch_hands_over_to_the_running_one(qtbot: QtBot) -> None:
    name = f"ava-test-{uuid.uuid4().hex[:8]}"
    shown = []
    lock = InstanceLock(lambda: shown.append(True), name)
    assert lock.listen()
    try:
        assert hand_over(name)
        qtbot.waitUntil(lambda: shown == [True])
    finally:
        lock.close()
    assert not hand_over(name)


def test_a_stale_lock_after_a_crash_does_not_block(qtbot: QtBot) -> None:
    name = f"ava-test-{uuid.uuid4().hex[:8]}"
    # What a crashed instance leaves behind: a socket file nobody listens on.
    path = Path(tempfile.gettempdir()) / name
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.exists()
    assert not hand_over(name)
    lock = InstanceLock(lambda: None, name)
    try:
        assert lock.listen()
        assert hand_over(name)
    finally:
        lock.close()
        QLocalServer.removeServer(name)


def test_the_name_depends_on_the_config_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    first = server_name()
    monkeypatch.setenv("XDG_CONFIG_HOME", os.environ["XDG_CONFIG_HOME"] + "-other")
    assert server_name() != first
