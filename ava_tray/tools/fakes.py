"""Test doubles for the tools' hooks (named as such; never used by the app itself)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ava_tray.tools.hooks import StatusReport

logger = logging.getLogger(__name__)


@dataclass
class FakeConsent:
    """Answers every consent question with `answer` and records the questions."""

    answer: bool = False
    questions: list[tuple[str, str]] = field(default_factory=list)

    async def ask(self, tool: str, summary: str) -> bool:
        self.questions.append((tool, summary))
        return self.answer


@dataclass
class FakeNotifier:
    """Records notifications."""

    shown: list[tuple[str, str]] = field(default_factory=list)

    def notify(self, title: str, text: str) -> None:
        self.shown.append((title, text))


@dataclass
class FakeAnnouncer:
    """Records announcements; `session_up` says whether they count as spoken."""

    session_up: bool = True
    said: list[str] = field(default_factory=list)

    def announce(self, text: str) -> bool:
        if self.session_up:
            self.said.append(text)
        return self.session_up


@dataclass
class FakeMicMute:
    muted: bool = False


@dataclass
class FakeStatusSource:
    report: StatusReport = field(default_factory=lambda: StatusReport("connected", 42.0, 0))

    def status(self) -> StatusReport:
        return self.report


@dataclass
class FakeVoiceSetting:
    voice: str = "marin"

    def change_voice(self, voice: str) -> None:
        self.voice = voice
