"""What tools need from the rest of AVA, as small protocols the console, the tray and the engine satisfy."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ava_tray.settings import Settings

logger = logging.getLogger(__name__)


class ConsentAsker(Protocol):
    """Asks the user whether a tool that changes something may run now."""

    async def ask(self, tool: str, summary: str) -> bool:
        """True only if the user said yes; `summary` says in a sentence what would happen."""
        ...


class Notifier(Protocol):
    """Shows the user something without voice (console line, tray notification)."""

    def notify(self, title: str, text: str) -> None:
        """Show `text` under `title`; never blocks."""
        ...


class Announcer(Protocol):
    """Says something through the running session (the engine wires it to the live session)."""

    def announce(self, text: str) -> bool:
        """Ask the model to say `text` now; False when no session is up (nothing was sent)."""
        ...


class MicMute(Protocol):
    """The microphone mute switch (AvaEngine)."""

    muted: bool


@dataclass(frozen=True)
class StatusReport:
    """AVA's own status, for "why did you go quiet?"."""

    state: str
    uptime_s: float
    reconnects_today: int
    last_cause: str | None = None
    last_cause_message: str | None = None
    last_cause_at: float | None = None
    muted: bool = False
    spend_today_usd: float = 0.0
    spend_month_usd: float = 0.0
    daily_budget_usd: float = 0.0


class StatusSource(Protocol):
    """Where AVA's status comes from (the engine: supervisor + reconnect history)."""

    def status(self) -> StatusReport:
        ...


class VoiceSetting(Protocol):
    """Changes the voice used from the next session on, and keeps it in the settings."""

    def change_voice(self, voice: str) -> None:
        """Save `voice`; raise ValueError with a sentence if it cannot be used."""
        ...


class SettingsFile(Protocol):
    """Where the settings are saved (`ava_tray.settings_store.SettingsStore`)."""

    def load_saved(self) -> Settings:
        """The settings as saved, without this run's environment overrides."""
        ...

    def save(self, settings: Settings) -> None:
        """Write every field; raise ValueError or OSError with a sentence if it cannot."""
        ...


class DenyConsent:
    """Says no to everything: the default when no one can be asked."""

    async def ask(self, tool: str, summary: str) -> bool:
        logger.info("no one to ask for consent: %s denied (%s)", tool, summary)
        return False


class LogNotifier:
    """Notifications to the log only: the default when there is no console or tray."""

    def notify(self, title: str, text: str) -> None:
        logger.info("%s: %s", title, text)


class NoAnnouncer:
    """No voice: the default until the engine wires a live session."""

    def announce(self, text: str) -> bool:
        return False
