"""Helpers for the tools' tests."""

from __future__ import annotations

import os

from waits import wait_until  # noqa: F401  (the tools' tests import it from here)

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # Qt tests (clipboard, dialogs) without a display
