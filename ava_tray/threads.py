"""Blocking calls off the event loop, each on a short-lived daemon thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


async def run_on_own_thread(call: Callable[[], _T], *, name: str, join: bool = False) -> _T:
    """Run `call` on a fresh daemon thread and await its result.

    Not `asyncio.to_thread`: its executor keeps idle worker threads alive and joins them at shutdown, so
    closing audio would leave threads behind and one hung tool would keep AVA from quitting. With `join`,
    the thread has ended when this returns (it is already past its last line then); a thread whose
    caller gave up (a tool's time-out) is simply abandoned.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = call(), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, result, error)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        return await future
    finally:
        if join and future.done() and not future.cancelled():
            thread.join(timeout=1.0)
