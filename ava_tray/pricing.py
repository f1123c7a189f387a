"""What a Realtime response costs: the usage a `response.done` reports, a dated price table, and the sum.

Qt-free and pure. Prices are USD per million tokens as OpenAI published them on its model pages (late
2026, `PRICES_AS_OF`); Azure or custom endpoints can override them per model in Settings. Cached input
is a subset of input: it is billed at the cached price, the rest at the full price.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

PRICES_AS_OF = "2026-11-30"
PRICES_SOURCE = "OpenAI model pages (per 1M tokens), as collected in shared/realtime-protocol.md"
MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens, by kind."""

    audio_in: float
    audio_cached: float
    audio_out: float
    text_in: float
    text_cached: float
    text_out: float


PRICES: dict[str, Price] = {
    "gpt-realtime-2.1": Price(32.0, 0.40, 64.0, 4.0, 0.40, 24.0),
    "gpt-realtime-2": Price(32.0, 0.40, 64.0, 4.0, 0.40, 24.0),
    "gpt-realtime-2.1-mini": Price(10.0, 0.30, 20.0, 0.60, 0.06, 2.40),
    "gpt-realtime-1.5": Price(32.0, 0.40, 64.0, 4.0, 0.40, 16.0),
    "gpt-realtime": Price(32.0, 0.40, 64.0, 4.0, 0.40, 16.0),
    "gpt-realtime-mini": Price(10.0, 0.30, 20.0, 0.60, 0.06, 2.40),
}
"""The Realtime models AVA offers; a dated snapshot (`PRICES_AS_OF`)."""

TRANSCRIPTION_USD_PER_MINUTE = 0.017
"""Input transcription billed by duration (the Realtime cost guide's figure)."""
TRANSCRIPTION_TOKEN_PRICE = Price(audio_in=3.0, audio_cached=3.0, audio_out=0.0, text_in=1.25, text_cached=1.25,
                                  text_out=5.0)
"""Input transcription billed by tokens (gpt-4o-mini-transcribe)."""


@dataclass(frozen=True)
class Usage:
    """Tokens (and transcription seconds) one response or one transcription used."""

    text_in: int = 0
    """Text input tokens, cached ones included."""
    text_cached: int = 0
    audio_in: int = 0
    """Audio input tokens, cached ones included."""
    audio_cached: int = 0
    text_out: int = 0
    audio_out: int = 0
    transcription_seconds: float = 0.0
    transcription_tokens_in: int = 0
    transcription_tokens_out: int = 0

    @property
    def input_tokens(self) -> int:
        return self.text_in + self.audio_in

    @property
    def output_tokens(self) -> int:
        return self.text_out + self.audio_out

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)})


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def usage_from_response(event: Mapping[str, Any]) -> Usage | None:
    """The usage of a `response.done` event; None when it reports none."""
    response = event.get("response")
    usage = response.get("usage") if isinstance(response, Mapping) else None
    if not isinstance(usage, Mapping):
        return None
    details_in = usage.get("input_token_details")
    details_in = details_in if isinstance(details_in, Mapping) else {}
    details_out = usage.get("output_token_details")
    details_out = details_out if isinstance(details_out, Mapping) else {}
    text_in, audio_in = _int(details_in.get("text_tokens")), _int(details_in.get("audio_tokens"))
    if not text_in and not audio_in:  # no breakdown: count it all as audio, so the estimate errs high, never low
        audio_in = _int(usage.get("input_tokens"))
    cached = _int(details_in.get("cached_tokens"))
    cached_details = details_in.get("cached_tokens_details")
    if isinstance(cached_details, Mapping):
        text_cached, audio_cached = _int(cached_details.get("text_tokens")), _int(cached_details.get("audio_tokens"))
    else:  # no breakdown of the cache: share it out as the input is shared
        total = text_in + audio_in
        text_cached = round(cached * text_in / total) if total else 0
        audio_cached = cached - text_cached
    text_out, audio_out = _int(details_out.get("text_tokens")), _int(details_out.get("audio_tokens"))
    if not text_out and not audio_out:
        audio_out = _int(usage.get("output_tokens"))
    return Usage(text_in=text_in, text_cached=min(text_cached, text_in), audio_in=audio_in,
                 audio_cached=min(audio_cached, audio_in), text_out=text_out, audio_out=audio_out)


def usage_from_transcription(event: Mapping[str, Any]) -> Usage | None:
    """The usage of a `conversation.item.input_audio_transcription.completed` event, by duration or tokens."""
    usage = event.get("usage")
    if not isinstance(usage, Mapping):
        return None
    if usage.get("type") == "duration":
        seconds = usage.get("seconds")
        return Usage(transcription_seconds=float(seconds)) if isinstance(seconds, (int, float)) else None
    if usage.get("type") == "tokens":
        return Usage(transcription_tokens_in=_int(usage.get("input_tokens")),
                     transcription_tokens_out=_int(usage.get("output_tokens")))
    return None


def cost_usd(usage: Usage, price: Price | None) -> float:
    """What `usage` costs at `price` (a model with no known price costs nothing but the transcription)."""
    total = 0.0
    if price is not None:
        total += ((usage.text_in - usage.text_cached) * price.text_in + usage.text_cached * price.text_cached
                  + (usage.audio_in - usage.audio_cached) * price.audio_in + usage.audio_cached * price.audio_cached
                  + usage.text_out * price.text_out + usage.audio_out * price.audio_out) / MILLION
    total += usage.transcription_seconds / 60.0 * TRANSCRIPTION_USD_PER_MINUTE
    total += (usage.transcription_tokens_in * TRANSCRIPTION_TOKEN_PRICE.audio_in
              + usage.transcription_tokens_out * TRANSCRIPTION_TOKEN_PRICE.text_out) / MILLION
    return total


class PriceOverrideError(ValueError):
    """The price overrides in Settings cannot be read; the message says what to fix."""


def parse_price_overrides(text: str) -> dict[str, Price]:
    """Settings' price overrides: a JSON object of model (or Azure deployment) → the six prices."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceOverrideError(f"The price overrides are not valid JSON (line {exc.lineno}, column {exc.colno}): "
                                 f"{exc.msg}.") from None
    if not isinstance(raw, dict):
        raise PriceOverrideError('The price overrides must be a JSON object such as {"my-deployment": {...}}.')
    names = [f.name for f in fields(Price)]
    prices: dict[str, Price] = {}
    for model, values in raw.items():
        if not isinstance(values, dict) or set(values) - set(names):
            raise PriceOverrideError(f"The prices for {model!r} must be an object with the keys {', '.join(names)}.")
        try:
            merged = {**asdict(PRICES.get(model, Price(0, 0, 0, 0, 0, 0))), **values}
            numbers = {name: float(merged[name]) for name in names}
        except (TypeError, ValueError):
            raise PriceOverrideError(f"The prices for {model!r} must be numbers (USD per million tokens).") from None
        if any(value < 0 for value in numbers.values()):
            raise PriceOverrideError(f"The prices for {model!r} cannot be negative.")
        prices[str(model)] = Price(**numbers)
    return prices


def price_for(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of `model`: an override first, then the published table (a dated snapshot of a model first)."""
    if overrides and model in overrides:
        return overrides[model]
    if model in PRICES:
        return PRICES[model]
    for known in sorted(PRICES, key=len, reverse=True):  # gpt-realtime-2.1-2026-07-15 → gpt-realtime-2.1
        if model.startswith(known + "-") and model[len(known) + 1:][:1].isdigit() and len(model) > len(known) + 4:
            return PRICES[known]
    return None
