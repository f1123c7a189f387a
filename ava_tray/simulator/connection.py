"""One accepted WebSocket on the simulator: pumps its messages into a `SessionModel` and carries out what it says.

All the meaning lives in the model; this layer only reads, writes in order, wakes the model at its deadlines
(audio pacing, the session limit) and drains a half-open socket. Every exit takes `_finish`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import deque
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

__all__ = ["SimulatedConnection", "SimulatedSession"]  # SimulatedSession: still importable from here


class SimulatedConnection:
    """Runs one session's model on one WebSocket until the socket closes.

    `open()` starts the session; `run()` serves it. `on_change` is called whenever the session may have
    changed (the server wakes its waiters). Actions go out in the order the model returned them: they wait in
    one outbox that a single flush at a time empties.
    """

    def __init__(self, websocket: ServerConnection, model: SessionModel, *, on_change: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self._ws = websocket
        self._on_change = on_change
        self._clock = clock
        self._outbox: deque[Action] = deque()
        self._sending = asyncio.Lock()
        self._flushes: set[asyncio.Task[None]] = set()
        self._deadline_changed = asyncio.Event()
        self._deadline = model.next_deadline
        self._finishing = False
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
        self._queue(self.model.start(beta_header=headers is not None and "OpenAI-Beta" in headers))
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
        pacer = asyncio.get_running_loop().create_task(self._pace())
        try:
            await self._flush()
            if self.model.ready:
                await self._read()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("simulated session %s failed", self.session.id)
            self._queue(self.model.end(INTERNAL_ERROR))
        finally:
            if self.model.state is SessionState.SILENT:
                await self._ws.wait_closed()  # until the peer leaves or the simulator stops
            await self._finish(pacer)

    async def _read(self) -> None:
        async for message in self._ws:
            if self.model.state is SessionState.SILENT:
                self._ws.transport.pause_reading()  # taking a message may have resumed it
                break
            self._queue(self.model.receive_text(message, self._clock()))
            await self._flush()

    async def _pace(self) -> None:
        """Call the model's `advance` at each of its deadlines (audio chunks, the session limit)."""
        while not self._finishing:
            self._deadline_changed.clear()
            deadline = self._deadline
            try:
                async with asyncio.timeout(None if deadline is None else max(0.0, deadline - self._clock())):
                    await self._deadline_changed.wait()
                continue  # a new deadline, or finishing
            except TimeoutError:
                pass
            try:
                self._queue(self.model.advance(self._clock()))
            except Exception:
                logger.exception("simulated session %s failed", self.session.id)
                self._queue(self.model.end(INTERNAL_ERROR))
            await self._flush()

    def _queue(self, actions: list[Action]) -> None:
        """Put the model's actions in the outbox, follow its next deadline, wake the server's waiters."""
        self._outbox.extend(actions)
        if self.model.next_deadline != self._deadline:
            self._deadline = self.model.next_deadline
            self._deadline_changed.set()
        self._on_change()

    def _carry_out(self, actions: list[Action]) -> None:
        """`_queue` for calls from outside the pump: the outbox is flushed by a task of its own."""
        self._queue(actions)
        if actions:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        """Carry out the outbox in order; a flush already under way makes this one wait its turn."""
        if not self._outbox:
            return  # nothing to wait for (the reader keeps reading while a close handshake is under way)
        async with self._sending:
            while self._outbox:
                action = self._outbox.popleft()
                try:
                    await self._perform(action)
                except ConnectionClosed:
                    pass  # the rest fails as fast
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

    async def _finish(self, pacer: asyncio.Task[None]) -> None:
        """Let what is under way end (a close handshake, say), then record how the session closed."""
        self._finishing = True
        self._deadline_changed.set()
        await pacer
        await self._flush()
        await asyncio.gather(*self._flushes, return_exceptions=True)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        code = self._ws.close_code if self._ws.close_code is not None else 1006
        self.model.connection_closed(self._clock(), code, self._ws.close_reason or "")
        logger.info("simulated session %s closed (%s %s)", self.session.id, self.session.close_code,
                    self.session.close_reason or "-")
        self.done.set()
        self._on_change()
