"""Usage from `response.done` and transcription events, and its cost at the dated prices (worked out by hand)."""

from __future__ import annotations

import pytest

from ava_tray.pricing import (
    PRICES,
    Price,
    PriceOverrideError,
    Usage,
    cost_usd,
    parse_price_overrides,
    price_for,
    usage_from_response,
    usage_from_transcription,
)

DONE = {"type": "response.done", "response": {"id": "resp_1", "status": "completed", "usage": {
    "total_tokens": 1600, "input_tokens": 1200, "output_tokens": 400,
    "input_token_details": {"text_tokens": 200, "audio_tokens": 1000, "cached_tokens": 300,
                            "cached_tokens_details": {"text_tokens": 100, "audio_tokens": 200}},
    "output_token_details": {"text_tokens": 100, "audio_tokens": 300}}}}


def test_usage_is_read_by_kind_with_the_cache_as_part_of_the_input() -> None:
    usage = usage_from_response(DONE)
    assert usage == Usage(text_in=200, text_cached=100, audio_in=1000, audio_cached=200, text_out=100, audio_out=300)
    assert usage.input_tokens == 1200 and usage.output_tokens == 400


def test_the_cost_of_a_response_by_hand() -> None:
    usage = usage_from_response(DONE)
    assert usage is not None
    # gpt-realtime-2.1: text 100 × $4 + 100 × $0.40, audio 800 × $32 + 200 × $0.40, out 100 × $24 + 300 × $64
    by_hand = (100 * 4 + 100 * 0.40 + 800 * 32 + 200 * 0.40 + 100 * 24 + 300 * 64) / 1e6
    assert cost_usd(usage, PRICES["gpt-realtime-2.1"]) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(0.04772)  # $0.048 for this response
    mini = (100 * 0.60 + 100 * 0.06 + 800 * 10 + 200 * 0.30 + 100 * 2.40 + 300 * 20) / 1e6
    assert cost_usd(usage, price_for("gpt-realtime-2.1-mini")) == pytest.approx(mini)


def test_missing_or_partial_usage() -> None:
    assert usage_from_response({"type": "response.done", "response": {"id": "r"}}) is None
    bare = usage_from_response({"response": {"usage": {"input_tokens": 50, "output_tokens": 20}}})
    assert bare == Usage(audio_in=50, audio_out=20), "no breakdown: counted as audio, the estimate errs high"
    shared = usage_from_response({"response": {"usage": {"input_tokens": 100, "input_token_details": {
        "text_tokens": 25, "audio_tokens": 75, "cached_tokens": 40}}}})
    assert shared is not None and (shared.text_cached, shared.audio_cached) == (10, 30)


def test_transcription_by_duration_and_by_tokens() -> None:
    seconds = usage_from_transcription({"usage": {"type": "duration", "seconds": 30}})
    assert seconds == Usage(transcription_seconds=30.0)
    assert cost_usd(seconds, None) == pytest.approx(0.017 / 2)
    tokens = usage_from_transcription({"usage": {"type": "tokens", "input_tokens": 1000, "output_tokens": 100,
                                                 "total_tokens": 1100}})
    assert tokens == Usage(transcription_tokens_in=1000, transcription_tokens_out=100)
    assert usage_from_transcription({"transcript": "hi"}) is None


def test_dated_snapshots_and_unknown_models() -> None:
    assert price_for("gpt-realtime-2025-08-28") == PRICES["gpt-realtime"]
    assert price_for("gpt-realtime-mini-2025-12-15") == PRICES["gpt-realtime-mini"]
    assert price_for("gpt-realtime-3") is None
    assert price_for("my-azure-deployment") is None


def test_price_overrides_for_azure_deployments() -> None:
    overrides = parse_price_overrides('{"my-deployment": {"audio_in": 40, "audio_out": 80}}')
    price = price_for("my-deployment", overrides)
    assert price == Price(audio_in=40.0, audio_cached=0.0, audio_out=80.0, text_in=0.0, text_cached=0.0, text_out=0.0)
    assert parse_price_overrides("  ") == {}
    with pytest.raises(PriceOverrideError, match="line 1"):
        parse_price_overrides('{"x": ')
    with pytest.raises(PriceOverrideError, match="keys"):
        parse_price_overrides('{"x": {"audio": 1}}')
    with pytest.raises(PriceOverrideError, match="negative"):
        parse_price_overrides('{"x": {"audio_in": -1}}')
