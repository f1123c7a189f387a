"""The guard against PySide6 dropping references to None on void calls (fatal on Python 3.11)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject

from ava_tray.ui.pyside_fix import guard_singletons


def test_many_void_calls_cannot_exhaust_none() -> None:
    guard_singletons()
    probe = QObject()
    for _ in range(200_000):  # far more than None's references in a fresh interpreter
        probe.setObjectName("x")
    assert sys.getrefcount(None) > 1_000
