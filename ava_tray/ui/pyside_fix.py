"""A guard against a PySide6 reference-count bug that would crash a long-running tray app.

With PySide6 6.12 on CPython 3.11, every call of a Qt method that returns nothing (`setText`,
`QTimer.start`, a signal's `emit`, which qasync does for every callback) drops one reference to `None`
that it never took. Python 3.12+ makes `None`, `True` and `False` immortal, so the bug is invisible
there; on 3.11 `None`'s count reaches zero after a few minutes of audio and the interpreter aborts
("none_dealloc: deallocating None"). The fix here detects the leak with a few calls and, only if it is
present, gives those three singletons a reference count no leak can exhaust, as 3.12 does.
"""

from __future__ import annotations

import ctypes
import logging
import sys

from PySide6.QtCore import QObject

logger = logging.getLogger(__name__)

PROBE_CALLS = 64
BALLAST = 1 << 40
_applied = False


def void_calls_leak_none() -> bool:
    """True if calling a void Qt method loses references to None (the PySide6 bug)."""
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(PROBE_CALLS):
        probe.setObjectName("ava-probe")
    return sys.getrefcount(None) <= before - PROBE_CALLS // 2


def guard_singletons() -> bool:
    """Apply the guard once if this Python and PySide6 need it; True if it was (or had been) applied."""
    global _applied
    if _applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if not void_calls_leak_none():
        return False
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += BALLAST
    _applied = True
    logger.info("PySide6 drops references to None on void calls: pinned None/True/False (see pyside_fix.py)")
    return True
