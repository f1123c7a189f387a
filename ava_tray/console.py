"""The console front end: the seed's session log, on the same supervisor as the tray."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from typing import TextIO

from ava_tray.engine import AvaEngine
from ava_tray.realtime.ending import Cause
from ava_tray.redact import redact
from ava_tray.status import NeedsKey, Snapshot, describe
from ava_tray.supervisor import (
    Connected,
    Connecting,
    Error,
    Paused,
    Reconnecting,
    Stopped,
    SupervisorState,
    WaitingForNetwork,
)
from ava_tray.tools.console import ConsoleConsentAsker, ConsoleNotifier

logger = logging.getLogger(__name__)

BANNER = "AVA STANDALONE - REALTIME VOICE MODE"


class SessionLog:
    """Prints one timestamped line per event a user of the original AVA script would recognise."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._was_speaking = False
        self._rollovers = 0
        self._shown: Snapshot | None = None

    def on_snapshot(self, snapshot: Snapshot, now: float) -> None:
        """A new status from the engine: a line for a new state, and one for a mute change."""
        shown, self._shown = self._shown, snapshot
        state = snapshot.state
        if (shown is None or state != shown.state) and not isinstance(state, NeedsKey):
            self.on_state(state, snapshot, now)
        if shown is not None and snapshot.muted != shown.muted:
            self.line(("🔇 " if snapshot.muted else "🎙️ ") + describe(snapshot, now).status_line)

    @property
    def shown_state(self) -> SupervisorState | None:
        """The state of the last snapshot shown (None before the first)."""
        state = self._shown.state if self._shown is not None else None
        return None if isinstance(state, NeedsKey) else state

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._out.write(f"[{stamp}] {redact(text)}\n")
        self._out.flush()

    def banner(self) -> None:
        rule = "=" * 50
        self._out.write(f"{rule}\n{BANNER}\n{rule}\n")
        self._out.flush()

    def on_state(self, state: SupervisorState, snapshot: Snapshot | None = None, now: float = 0.0) -> None:
        """The seed's lines for the seed's events; AVA's own (network, error) in the status's words."""
        status = describe(snapshot if snapshot is not None else Snapshot(state=state), now)
        if isinstance(state, Connecting):
            if state.attempt == 1:
                self.line("Connecting to Realtime API...")
            else:
                self.line(f"🔄 Reconnecting to AVA (attempt #{state.attempt})...")
        elif isinstance(state, Connected):
            if state.rollovers > self._rollovers:
                self.line("🔁 Session renewed before its limit (no gap, conversation kept)")
            elif not state.speaking and not self._was_speaking:
                self.line("✅ Connected to Realtime API")
            self._rollovers = state.rollovers
            self._was_speaking = state.speaking
        elif isinstance(state, Reconnecting):
            self._was_speaking = False
            self._rollovers = 0
            ending = state.ending
            if ending.cause is Cause.SESSION_EXPIRED:
                self.line(f"⏰ {ending.message}")
            elif ending.cause is Cause.CONNECTION_LOST:
                self.line(f"⚠️ {ending.message}")
            else:
                text = ending.message.removeprefix("Unexpected error: ")
                self.line(f"❌ Unexpected error: {text}")
            self.line(f"🔄 Auto-restarting AVA in {round(state.delay, 1):g} seconds...")  # backed off: jitter
        elif isinstance(state, WaitingForNetwork):
            self.line(f"📡 {status.status_line}: {status.detail}")
        elif isinstance(state, Error):
            self._was_speaking = False
            self.line(f"❌ {status.detail}")
            if status.action:
                self.line(f"Type “use” and Enter to {status.action[0].lower()}{status.action[1:]} and reconnect.")
        elif isinstance(state, Paused):
            self._was_speaking = False
            self.line(f"⏸️ {status.detail}")
            self.line("Type “go on” and Enter to go on anyway today.")
        elif isinstance(state, Stopped):
            self.line("👋 AVA stopped")

    def on_transcript(self, role: str, text: str) -> None:
        if text:
            self.line(f"{'You' if role == 'user' else 'AVA'}: {text}")


async def run_console(engine: AvaEngine, out: TextIO = sys.stdout) -> int:
    """Run AVA headless until Ctrl+C or SIGTERM (exit 0) or a fatal error with no way to retry (exit 2)."""
    log = SessionLog(out)
    log.banner()
    exit_code = 0
    loop = asyncio.get_running_loop()
    interactive = sys.stdin is not None and sys.stdin.isatty()
    consent = ConsoleConsentAsker(log.line, interactive=interactive)
    engine.toolbox.registry.consent = consent
    engine.notifier = ConsoleNotifier(log.line)

    def on_snapshot(snapshot: Snapshot) -> None:
        nonlocal exit_code
        entered_error = isinstance(snapshot.state, Error) and not isinstance(log.shown_state, Error)
        log.on_snapshot(snapshot, engine.clock.monotonic())
        if entered_error:
            if interactive:
                log.line("Press Enter to try again, or Ctrl+C to quit.")
            else:
                exit_code = 2
                engine.stop()

    engine.subscribe(on_snapshot)
    engine.supervisor.subscribe_transcript(log.on_transcript)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, engine.stop)
    if interactive:
        loop.add_reader(sys.stdin.fileno(), _on_enter, engine, consent)
    try:
        await engine.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if interactive:
            loop.remove_reader(sys.stdin.fileno())
    return exit_code


def _on_enter(engine: AvaEngine, consent: ConsoleConsentAsker) -> None:
    line = sys.stdin.readline()
    if consent.offer(line):
        return
    state = engine.snapshot.state
    words = line.strip().lower()
    if words in ("use", "go on") and describe(engine.snapshot, engine.clock.monotonic()).action:
        engine.take_status_action()
    elif isinstance(state, Error):
        engine.restart_now()
