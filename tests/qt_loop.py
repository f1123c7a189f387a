"""Qt tests run offscreen on the qasync loop (one QApplication; asyncio and Qt on one thread).

The Qt test folders' conftest.py import the hook from here."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import pytest
import qasync
from PySide6.QtWidgets import QApplication


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    return {"qasync": lambda: qasync.QEventLoop(QApplication.instance() or QApplication([]))}
