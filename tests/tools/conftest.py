"""Helpers for the tools' tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # Qt tests (clipboard, dialogs) without a display


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "the condition") -> None:
    """Return once `predicate()` is true; fail after `timeout` seconds (a condition wait, not a fixed sleep)."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None
