"""Today's models, Azure and what AVA costs, on the project's simulator (the real OpenAI and Azure endpoints
cannot be reached here: the simulator plays both shapes on loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from openai.types.realtime import RealtimeClientEvent
from pydantic import TypeAdapter

from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.engine import AvaEngine
from ava_tray.history import ReconnectHistory
from ava_tray.realtime.models import MODELS
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.simulator.faults import Fault
from ava_tray.status import describe
from ava_tray.supervisor import Connected, Error

KEY = "sk-" "test-provider-key-0123456789"
SDK = TypeAdapter(RealtimeClientEvent)


@asynccontextmanager
async def running(settings: Settings, key: str | None = None) -> AsyncIterator[AvaEngine]:
    engine = AvaEngine(settings, key, voice_io_factory=FakeVoiceIO, history=ReconnectHistory(None))
    task = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        engine.stop()
        await asyncio.wait_for(task, 10)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("model", [m.name for m in MODELS])
async def test_each_model_configures_a_session_that_validates_against_the_sdk(model: str) -> None:
    async with RealtimeSimulator(record_audio=False) as simulator, \
            running(replace(Settings(), realtime_url=simulator.url, model=model)) as engine:
        await until(lambda: isinstance(engine.snapshot.state, Connected))
        session = simulator.sessions[0]
        update = session.session_updates[0]
        SDK.validate_python(update)
        assert update["session"]["model"] == model
        assert f"model={model}" in session.request_path, "the model also goes where OpenAI takes it: the URL"
        reasons = "reasoning" in update["session"]
        assert reasons == next(m.reasoning for m in MODELS if m.name == model)
        if reasons:
            assert update["session"]["reasoning"] == {"effort": "low"}
        assert update["session"]["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.8,
                                                   "token_limits": {"post_instructions": 16000}}


@pytest.mark.parametrize("legacy", [False, True], ids=["azure-ga", "azure-older"])
async def test_an_azure_endpoint_gets_the_key_in_api_key_and_no_bearer(legacy: bool) -> None:
    async with RealtimeSimulator(record_audio=False, azure=True, api_key=KEY) as simulator:
        url = simulator.azure_url("ava-deployment", legacy=legacy)
        async with running(replace(Settings(), realtime_url=url, model="ava-deployment"), KEY) as engine:
            await until(lambda: isinstance(engine.snapshot.state, Connected))
            session = simulator.sessions[0]
            assert session.api_key_header == KEY and session.authorization is None
            assert ("deployment=ava-deployment" if legacy else "model=ava-deployment") in session.request_path
            SDK.validate_python(session.session_updates[0])
            assert "reasoning" not in session.session_updates[0]["session"], "a deployment's model is unknown"


async def test_an_openai_endpoint_gets_bearer_and_no_api_key_and_a_bearer_key_fails_on_azure() -> None:
    async with RealtimeSimulator(record_audio=False, api_key=KEY) as simulator, \
            running(replace(Settings(), realtime_url=simulator.url), KEY) as engine:
        await until(lambda: isinstance(engine.snapshot.state, Connected))
        session = simulator.sessions[0]
        assert session.authorization == f"Bearer {KEY}" and session.api_key_header is None
    async with RealtimeSimulator(record_audio=False, azure=True, api_key=KEY) as azure, \
            running(replace(Settings(), realtime_url=azure.azure_url("dep"), provider="openai"), KEY) as engine:
        await until(lambda: isinstance(engine.snapshot.state, Error))  # Bearer on Azure: HTTP 401, fatal
        assert "HTTP 401" in engine.snapshot.state.reason  # type: ignore[union-attr]


@pytest.mark.parametrize("at_handshake", [False, True], ids=["model_not_found", "http-404"])
async def test_a_refused_model_is_an_error_with_the_model_to_use_and_no_retry_loop(at_handshake: bool) -> None:
    async with RealtimeSimulator(record_audio=False, refused_models=frozenset({"gpt-realtime"}),
                                 refuse_at_handshake=at_handshake) as simulator, \
            running(replace(Settings(), realtime_url=simulator.url, model="gpt-realtime")) as engine:
        await until(lambda: isinstance(engine.snapshot.state, Error))
        state = engine.snapshot.state
        assert isinstance(state, Error)
        assert "refused the model gpt-realtime" in state.reason and "Use gpt-realtime-2.1 instead" in state.reason
        status = describe(engine.snapshot, engine.clock.monotonic())
        assert status.action == "Use gpt-realtime-2.1" and status.icon_name == "error"
        tried = len(simulator.sessions) + simulator.refused_handshakes
        with pytest.raises(TimeoutError):  # Error waits for the user: the refused model is not tried again
            await simulator.wait_for(lambda: len(simulator.sessions) + simulator.refused_handshakes > tried,
                                     timeout=2.0)
        engine.take_status_action()  # the one action: switch to the model offered, and reconnect
        await until(lambda: isinstance(engine.snapshot.state, Connected))
        assert simulator.sessions[-1].session_updates[-1]["session"]["model"] == "gpt-realtime-2.1"
        assert engine.settings.model == "gpt-realtime-2.1"


async def test_a_server_error_that_sticks_to_the_session_is_answered_with_a_fresh_one() -> None:
    async with RealtimeSimulator(record_audio=False) as simulator, \
            running(replace(Settings(), realtime_url=simulator.url)) as engine:
        await until(lambda: isinstance(engine.snapshot.state, Connected))
        first = simulator.sessions[0]
        simulator.inject(Fault.SERVER_ERROR)
        await simulator.wait_for(lambda: len(simulator.sessions) == 2 and not first.open, timeout=10)
        assert first.close_code == 1000, "the broken session was closed by AVA once the new one took over"
        second = simulator.sessions[1]
        assert second.open and second.session_updates, "a fresh session, configured"
        assert isinstance(engine.snapshot.state, Connected) and engine.snapshot.state.rollovers == 1
        simulator.request_reply(0.5)  # the fresh session answers again
        await simulator.wait_for(lambda: second.replies_sent >= 1, timeout=10)


USAGE = {"total_tokens": 2600, "input_tokens": 1600, "output_tokens": 1000,
         "input_token_details": {"text_tokens": 600, "audio_tokens": 1000, "cached_tokens": 400,
                                 "cached_tokens_details": {"text_tokens": 400, "audio_tokens": 0}},
         "output_token_details": {"text_tokens": 200, "audio_tokens": 800}}
"""What every scripted response reports."""
BY_HAND = (200 * 4.0 + 400 * 0.40 + 1000 * 32.0 + 200 * 24.0 + 800 * 64.0) / 1_000_000
"""gpt-realtime-2.1: text in 200 × $4 + cached 400 × $0.40, audio in 1000 × $32, out 200 × $24 + 800 × $64."""


async def test_a_scripted_conversation_costs_what_the_hand_sum_says_in_the_ledger_and_usage() -> None:
    assert round(BY_HAND, 5) == 0.08896
    async with RealtimeSimulator(record_audio=False) as simulator, \
            running(replace(Settings(), realtime_url=simulator.url, daily_budget=5.0)) as engine:
        await until(lambda: isinstance(engine.snapshot.state, Connected))
        simulator.reply_usage = USAGE
        session = simulator.sessions[0]
        for turn in range(1, 4):
            await simulator.wait_for(lambda t=turn: session.replies_sent == t - 1 and simulator.request_reply(0.3),
                                     timeout=10)
            await simulator.wait_for(lambda t=turn: session.replies_sent == t, timeout=10)
        await until(lambda: engine.snapshot.spend_today >= 3 * BY_HAND - 1e-9)
        assert engine.ledger.cost_today() == pytest.approx(3 * BY_HAND)
        tooltip = describe(engine.snapshot, engine.clock.monotonic()).tooltip
        assert tooltip.endswith(f"today ${3 * BY_HAND:.2f} of $5.00")
    report = subprocess.run([sys.executable, "-m", "ava_tray", "--usage", "json"], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ), check=True)
    rows = json.loads(report.stdout)
    assert len(rows) == 1 and rows[0]["model"] == "gpt-realtime-2.1"
    assert round(rows[0]["cost_usd"], 2) == round(3 * BY_HAND, 2) == 0.27
    assert rows[0]["input_tokens"] == 3 * 1600 and rows[0]["output_tokens"] == 3 * 1000
    text = subprocess.run([sys.executable, "-m", "ava_tray", "--usage"], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert "gpt-realtime-2.1" in text and "0.27" in text and KEY not in text
