"""AVA's settings: one plain dataclass with defaults and its own validation.

At the bottom of the import graph (no Qt, no session, no supervisor): the core turns it into session
options, delays and a rollover policy (`ava_tray/engine.py`); reading and writing the INI file lives in
`ava_tray/settings_store.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from ava_tray.hotkey import MODES as SHORTCUT_MODES
from ava_tray.hotkey.keys import ShortcutError, parse_chord
from ava_tray.pricing import PriceOverrideError, parse_price_overrides
from ava_tray.realtime.connection import DEFAULT_URL, EndpointError, check_endpoint
from ava_tray.realtime.events import SessionConfig
from ava_tray.realtime.models import DEFAULT_MODEL, DEFAULT_REASONING_EFFORT, REASONING_EFFORTS
from ava_tray.realtime.providers import ProviderError, parse_provider

logger = logging.getLogger(__name__)

VOICES = ("marin", "cedar", "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse")
AUDIO_MODES: Final = ("automatic", "speakers", "headphones")
"""Settings.audio_mode: speakers = echo cancellation, headphones = none, automatic = by the output's name."""


@dataclass(frozen=True)
class Settings:
    """Everything a user can change. The API key is not here: it lives in the OS keyring only."""

    realtime_url: str = DEFAULT_URL
    model: str = DEFAULT_MODEL
    """The model, or for Azure the deployment name."""
    reasoning_effort: str = DEFAULT_REASONING_EFFORT
    """For models that reason (ava_tray/realtime/models.py); others are sent none."""
    provider: str = "automatic"
    """"openai", "azure", "custom", or "automatic" (recognised from the URL); AVA_PROVIDER overrides it."""
    voice: str = "marin"
    instructions: str = SessionConfig.instructions
    input_device: str = ""
    output_device: str = ""
    delay_session_expired: float = 3.0
    delay_connection_lost: float = 5.0
    delay_other: float = 10.0
    start_at_login: bool = False
    rollover: bool = True
    rollover_margin: float = 300.0
    carry_conversation: bool = True
    conversation_budget: int = 6000
    save_transcript: bool = False
    allowed_tools: str = ""
    """Comma-separated names of side-effecting tools that may run without asking first."""
    audio_mode: str = "automatic"
    """"speakers" (echo cancellation), "headphones" (none) or "automatic" (on unless the output device's
    name says headset, headphones or Bluetooth); see ava_tray/audio/echo.py."""
    voice_gate: bool = True
    """Send the microphone only while someone speaks (a local speech detector decides); False streams it
    continuously. See ava_tray/audio/voice_gate.py."""
    gate_sensitivity: float = 0.5
    """0 (only clear speech opens the gate) to 1 (anything voice-like does)."""
    daily_budget: float = 0.0
    """USD a day; at 80 % a notification, at 100 % AVA pauses until tomorrow. 0: no budget."""
    prices: str = ""
    """Price overrides (JSON: model or deployment → USD per million tokens by kind), for Azure or custom prices."""
    retention_ratio: float = 0.8
    """When the context reaches its limit, keep this share of the conversation (truncation)."""
    context_limit_tokens: int = 16000
    """The conversation's token limit after the instructions; 0 leaves it to the model."""
    shortcut: str = "Ctrl+Alt+A"
    """The global shortcut, as Qt writes it; "" for none."""
    shortcut_mode: str = "toggle"
    """"toggle" (the shortcut mutes and unmutes) or "push_to_talk" (the microphone is open only while it is held)."""

    def problems(self) -> list[str]:
        """Sentences naming what is wrong with these values (empty when all is well)."""
        found = []
        try:
            check_endpoint(self.realtime_url)
        except EndpointError as exc:
            found.append(str(exc))
        if self.voice not in VOICES:
            found.append(f"Unknown voice {self.voice!r}: choose one of {', '.join(VOICES)}.")
        if self.audio_mode not in AUDIO_MODES:
            found.append(f"Unknown audio mode {self.audio_mode!r}: choose one of {', '.join(AUDIO_MODES)}.")
        if not self.model.strip():
            found.append("Choose a model (for Azure, the deployment name).")
        if self.reasoning_effort not in REASONING_EFFORTS:
            found.append(f"Unknown reasoning effort {self.reasoning_effort!r}: choose one of "
                         f"{', '.join(REASONING_EFFORTS)}.")
        try:
            parse_provider(self.provider)
        except ProviderError as exc:
            found.append(str(exc))
        try:
            parse_price_overrides(self.prices)
        except PriceOverrideError as exc:
            found.append(str(exc))
        if not 0.0 <= self.gate_sensitivity <= 1.0:
            found.append("The voice gate's sensitivity must be between 0 and 1.")
        if not 0 <= self.daily_budget <= 10_000:
            found.append("The daily budget must be between 0 (none) and 10000 USD.")
        if not 0.1 <= self.retention_ratio <= 1.0:
            found.append("The retention ratio must be between 0.1 and 1.0.")
        if self.context_limit_tokens and not 1000 <= self.context_limit_tokens <= 1_000_000:
            found.append("The context limit must be 0 (the model's) or between 1000 and 1000000 tokens.")
        try:
            parse_chord(self.shortcut)
        except ShortcutError as exc:
            found.append(str(exc))
        if self.shortcut_mode not in SHORTCUT_MODES:
            found.append(f"Unknown shortcut mode {self.shortcut_mode!r}: choose one of {', '.join(SHORTCUT_MODES)}.")
        if not 1 <= self.rollover_margin <= 1200:
            found.append("The rollover margin must be between 1 and 1200 seconds.")
        if not 0 <= self.conversation_budget <= 100_000:
            found.append("The conversation budget must be between 0 and 100000 characters.")
        for name in ("delay_session_expired", "delay_connection_lost", "delay_other"):
            if not 0 <= getattr(self, name) <= 300:
                found.append(f"{name.replace('_', ' ')} must be between 0 and 300 seconds.")
        return found
