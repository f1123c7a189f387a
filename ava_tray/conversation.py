"""The local transcript that carries a conversation into every new session, within a budget.

Replayed as one system message (not many assistant text items, which can tip the model into
answering in text), so the model keeps talking. Kept in memory unless the user turns saving on.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ava_tray.realtime import events
from ava_tray.redact import redact

logger = logging.getLogger(__name__)

ROLES = {"user": "User", "assistant": "AVA", "tool": "Tool"}


@dataclass(frozen=True)
class TranscriptEntry:
    role: str
    text: str
    at: float


class Transcript:
    """What was said (user and assistant transcripts, tool calls and their outputs), most recent last."""

    def __init__(self, *, enabled: bool = True, budget_chars: int = 6000, save_to: Path | None = None,
                 max_entries: int = 500) -> None:
        self.enabled = enabled
        self.budget_chars = budget_chars
        self.save_to = save_to
        self._entries: deque[TranscriptEntry] = deque(maxlen=max_entries)

    @property
    def entries(self) -> list[TranscriptEntry]:
        return list(self._entries)

    def add(self, role: str, text: str) -> None:
        text = " ".join(text.split())
        if not text or role not in ROLES:
            return
        entry = TranscriptEntry(role, text, time.time())
        self._entries.append(entry)
        if self.save_to is not None:
            try:
                self.save_to.parent.mkdir(parents=True, exist_ok=True)
                with self.save_to.open("a", encoding="utf-8") as file:
                    file.write(json.dumps({"role": role, "text": redact(text), "at": entry.at}) + "\n")
            except OSError as exc:
                logger.warning("could not save the transcript: %s", exc)

    def replay_text(self) -> str | None:
        """The most recent part of the conversation that fits the budget, as one block of text."""
        if not self.enabled or not self._entries:
            return None
        lines: list[str] = []
        used = 0
        for entry in reversed(self._entries):
            line = f"{ROLES[entry.role]}: {entry.text}"
            if used + len(line) + 1 > self.budget_chars:
                if not lines:
                    lines.append(line[-self.budget_chars:])
                break
            lines.append(line)
            used += len(line) + 1
        lines.reverse()
        return "\n".join(lines)

    def replay_item(self) -> dict[str, Any] | None:
        """A `conversation.item.create` that carries the conversation so far, or None when empty."""
        text = self.replay_text()
        if text is None:
            return None
        preamble = ("The conversation so far, carried over from the previous session (the connection was "
                    "renewed; do not mention it). Continue it naturally, speaking aloud as before.\n")
        return events.system_message(preamble + text)
