"""The console front end's consent question (a y/N prompt) and notifications (a session-log line)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

CONSENT_ANSWER_TIMEOUT = 60.0


class ConsoleConsentAsker:
    """Asks "Allow? [y/N]" on the terminal; denies at once when there is no terminal to ask on.

    The console owns standard input (Enter also restarts AVA after an error), so it hands each line
    to `offer()` first: a line that answers a pending question is consumed here.
    """

    def __init__(self, write: Callable[[str], None], *, interactive: bool,
                 timeout: float = CONSENT_ANSWER_TIMEOUT) -> None:
        self._write = write
        self.interactive = interactive
        self.timeout = timeout
        self._answer: asyncio.Future[bool] | None = None
        self._one_at_a_time = asyncio.Lock()

    async def ask(self, tool: str, summary: str) -> bool:
        if not self.interactive:
            self._write(f"AVA wanted to {summary} ({tool}): denied, no terminal to ask on.")
            return False
        async with self._one_at_a_time:
            self._answer = asyncio.get_running_loop().create_future()
            self._write(f"AVA wants to {summary} ({tool}). Allow? [y/N] then Enter")
            try:
                async with asyncio.timeout(self.timeout):
                    allowed = await self._answer
            except TimeoutError:
                self._write(f"No answer: {tool} was not allowed.")
                allowed = False
            finally:
                self._answer = None
        return allowed

    @property
    def waiting(self) -> bool:
        return self._answer is not None and not self._answer.done()

    def offer(self, line: str) -> bool:
        """Take `line` as the answer if a question is pending; True if it was consumed."""
        if not self.waiting:
            return False
        assert self._answer is not None
        self._answer.set_result(line.strip().lower() in ("y", "yes"))
        return True


class ConsoleNotifier:
    """Reminders and other notices as a line in the session log."""

    def __init__(self, line: Callable[[str], None]) -> None:
        self._line = line

    def notify(self, title: str, text: str) -> None:
        self._line(f"⏰ {text}" if "reminder" in title.lower() else f"{title}: {text}")
