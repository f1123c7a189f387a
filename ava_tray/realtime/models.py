"""The Realtime models AVA offers, which of them reason, and what to use when the server refuses one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealtimeModel:
    """One model of the Realtime line."""

    name: str
    label: str
    reasoning: bool = False
    """Takes `reasoning: {effort}` in the session (the 2 and 2.1 line)."""
    shuts_down: str | None = None
    """The announced shut-down date (YYYY-MM-DD), if any."""


MODELS: Final = (
    RealtimeModel("gpt-realtime-2.1", "GPT Realtime 2.1 (recommended)", reasoning=True),
    RealtimeModel("gpt-realtime-2.1-mini", "GPT Realtime 2.1 mini (cheaper)", reasoning=True),
    RealtimeModel("gpt-realtime-2", "GPT Realtime 2", reasoning=True),
    RealtimeModel("gpt-realtime-1.5", "GPT Realtime 1.5"),
    RealtimeModel("gpt-realtime", "GPT Realtime (first generation, shuts down 2027-01-20)", shuts_down="2027-01-20"),
    RealtimeModel("gpt-realtime-mini", "GPT Realtime mini (first generation, shuts down 2027-01-20)",
                  shuts_down="2027-01-20"),
)
DEFAULT_MODEL: Final = "gpt-realtime-2.1"
CHEAP_MODEL: Final = "gpt-realtime-2.1-mini"

REASONING_EFFORTS: Final = ("minimal", "low", "medium", "high", "xhigh")
DEFAULT_REASONING_EFFORT: Final = "low"
"""Time to first audio roughly doubles at `high`; `low` keeps a voice conversation quick."""

_BY_NAME = {model.name: model for model in MODELS}


def known_model(name: str) -> RealtimeModel | None:
    """The catalogue entry for `name`, a dated snapshot of it (`gpt-realtime-2.1-2026-07-15`) included."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    for model in sorted(MODELS, key=lambda m: len(m.name), reverse=True):
        rest = name[len(model.name) + 1:]
        if name.startswith(model.name + "-") and len(rest) == 10 and rest[:4].isdigit():
            return model
    return None


def takes_reasoning(name: str) -> bool:
    """Whether to send a reasoning effort for this model (unknown models get none: it could be refused)."""
    model = known_model(name)
    return model is not None and model.reasoning


def replacement_for(name: str) -> str:
    """The model to use when the server refuses `name`: the current one of the same size, else one step older."""
    small = "mini" in name
    ladder = [CHEAP_MODEL, "gpt-realtime-mini"] if small else [DEFAULT_MODEL, "gpt-realtime-2", "gpt-realtime-1.5"]
    for candidate in ladder:
        if candidate != name and not name.startswith(candidate + "-"):
            return candidate
    return ladder[-1]
