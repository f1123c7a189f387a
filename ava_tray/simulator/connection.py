"""One accepted WebSocket on the simulator: pumps its messages into a `SessionModel` and carries out what it says.

All the meaning lives in the model; this layer only reads, writes in order, keeps one timer (audio pacing and
the session limit) and drains a half-open socket. Every exit takes `_finish`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import assert_never

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ava_tray.simulator.faults import Fault
from ava_tray.simulator.model import (
    INTERNAL_ERROR,
    SHUTDOWN,
    Abort,
    Action,
    Close,
    FunctionCall,
    GoSilent,
    Send,
    SendText,
    SessionModel,
    SessionState,
    SimulatedSession,
)

logger = logging.getLogger(__name__)

SILENT_POLL_SECONDS = 0.1

__all__ = ["SimulatedConnection", "SimulatedSession"]


class SimulatedConnection:
    """Runs one session's model on one WebSocket until the socket closes.

    `open()` starts the session; `run()` serves it. `on_change` is called whenever the session may have
    changed (the server wakes its waiters).
    """

    def __init__(self, websocket: ServerConnection, model: SessionModel, *, on_change: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self._ws = websocket
        self._on_change = on_change
        self._clock = clock
        self._outbox: asyncio.Queue[Action | None] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.done = asyncio.Event()

    @property
    def session(self) -> SimulatedSession:
        return self.model.record

    @property
    def ready(self) -> bool:
        return self.model.ready

    @property
    def idle(self) -> bool:
        return self.model.idle

    # -- what the server asks -----------------------------------------------------------------

    def open(self) -> bool:
        """Send `session.created`, or refuse the session (wrong key, beta header); True when admitted."""
        headers = self._ws.request.headers if self._ws.request is not None else None
        self._carry_out(self.model.start(self._clock(), beta_header=headers is not None and "OpenAI-Beta" in headers))
        return self.model.ready

    def apply_fault(self, fault: Fault, count: int = 1) -> None:
        self._carry_out(self.model.apply_fault(fault, count))

    def start_function_call(self, call: FunctionCall) -> bool:
        """Make `call` now if the session is idle; False if it is not."""
        if not self.model.idle:
            return False
        self._carry_out(self.model.reply_with_function_call(call))
        return True

    def start_audio_reply(self, seconds: float) -> bool:
        """Start an unsolicited synthetic-voice reply of `seconds` now if the session is idle; False if not."""
        if not self.model.idle:
            return False
        self._carry_out(self.model.reply_with_audio(seconds, self._clock()))
        return True

    def shut_down(self) -> None:
        """End the session from outside (simulator stop): 1001 "server shutting down"."""
        self._carry_out(self.model.end(SHUTDOWN))

    # -- the pump -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session until the socket closes (after `open`)."""
        writer = asyncio.get_running_loop().create_task(self._write())
        try:
            if self.model.ready:
                await self._read()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("simulated session %s failed", self.session.id)
            self._carry_out(self.model.end(INTERNAL_ERROR))
        finally:
            if self.model.state is SessionState.SILENT:
                await self._ws.wait_closed()  # until the peer leaves or the simulator stops
            await self._finish(writer)

    async def _read(self) -> None:
        async for message in self._ws:
            if self.model.state is SessionState.SILENT:
                self._ws.transport.pause_reading()  # taking a message may have resumed it
                break
            self._carry_out(self.model.receive_text(message, self._clock()))

    def _carry_out(self, actions: list[Action]) -> None:
        """Queue the model's actions for the writer (in order), re-arm the timer, wake the server's waiters."""
        for action in actions:
            self._outbox.put_nowait(action)
        self._arm_timer()
        self._on_change()

    async def _write(self) -> None:
        """Carry out the queued actions one by one until `_finish` says stop."""
        while (action := await self._outbox.get()) is not None:
            try:
                await self._perform(action)
            except ConnectionClosed:
                pass  # the rest fails as fast; `_finish` ends the loop
            except Exception:
                logger.exception("simulated session %s: %s failed", self.session.id, type(action).__name__)

    async def _perform(self, action: Action) -> None:
        match action:
            case Send(event):
                await self._ws.send(json.dumps(event, separators=(",", ":")))
            case SendText(text):
                await self._ws.send(text)
            case Close(code, reason):
                await self._ws.close(code, reason)
            case Abort():
                self._ws.transport.abort()
            case GoSilent():
                self._ws.transport.pause_reading()
                self._watcher = asyncio.get_running_loop().create_task(self._watch_silent_peer())
            case _:
                assert_never(action)

    def _arm_timer(self) -> None:
        deadline = self.model.next_deadline
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_deadline = deadline
        self._timer = None if deadline is None else asyncio.get_running_loop().call_later(
            max(0.0, deadline - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_deadline = None, None
        try:
            self._carry_out(self.model.advance(self._clock()))
        except Exception:
            logger.exception("simulated session %s failed", self.session.id)
            self._carry_out(self.model.end(INTERNAL_ERROR))

    async def _watch_silent_peer(self) -> None:
        """Drain the socket below the WebSocket layer (so no ping is answered) until the peer hangs up."""
        raw = self._ws.transport.get_extra_info("socket")
        if raw is None:
            return
        peer = socket.fromfd(raw.fileno(), raw.family, raw.type)
        try:
            peer.setblocking(False)
            while True:
                try:
                    data = peer.recv(65536)
                except BlockingIOError:
                    await asyncio.sleep(SILENT_POLL_SECONDS)
                    continue
                except OSError:
                    break
                if not data:
                    break
        finally:
            peer.close()
        logger.info("simulated session %s: the peer left the half-open socket", self.session.id)
        self._carry_out(self.model.peer_left())

    async def _finish(self, writer: asyncio.Task[None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_deadline = None, None
        self._outbox.put_nowait(None)
        await writer  # the rest of the queue: a close handshake under way, or sends that fail at once
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        code = self._ws.close_code if self._ws.close_code is not None else 1006
        self.model.connection_closed(self._clock(), code, self._ws.close_reason or "")
        logger.info("simulated session %s closed (%s %s)", self.session.id, self.session.close_code,
                    self.session.close_reason or "-")
        self.done.set()
        self._on_change()
