"""Waiting on AVA's supervisor from tests and benchmarks: event-driven, with a time-out, never a sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ava_tray.engine import AvaEngine
from ava_tray.supervisor import SupervisorState


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
