"""The tray's widgets and windows: offscreen, on the qasync loop (tests/qt_loop.py)."""

from qt_loop import pytest_asyncio_loop_factories  # noqa: F401  (the hook, for this folder)
