"""Waiting in tests and benchmarks: for a condition, with a time-out and a message, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ava_tray.engine import AvaEngine
    from ava_tray.supervisor import SupervisorState


def poll_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` (blocking) until it returns something true, and return that; fail naming `what`
    after `timeout` seconds. For tests that watch another process."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "the condition",
                     poll: float = 0.01) -> None:
    """Return once `predicate()` is true, letting the event loop run; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(poll)


async def wait_state(engine: AvaEngine, predicate: Callable[[SupervisorState], bool], patience: float = 10.0) -> float:
    """Wait until the supervisor's state satisfies `predicate`; return the monotonic time it did."""
    changed = asyncio.Event()
    unsubscribe = engine.supervisor.subscribe(lambda _: changed.set())
    try:
        async with asyncio.timeout(patience):
            while not predicate(engine.supervisor.state):
                changed.clear()
                await changed.wait()
        return time.monotonic()
    except TimeoutError:
        raise AssertionError(f"state never matched within {patience:g} s; last was {engine.supervisor.state}") \
            from None
    finally:
        unsubscribe()
