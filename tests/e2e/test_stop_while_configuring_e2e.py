"""A stop is never reported as a device failure: console AVA on real audio (PulseAudio null sinks), stopped
with Ctrl+C just as a reconnected session is being configured, when its audio is about to open."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pulse
import pytest

from ava_tray.simulator import RealtimeSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not pulse.pulse_available(), reason="no PulseAudio: run "
                                                  "through `bash scripts/with-services.sh`")]

DEVICE_FAILURE_WORDS = ("audio device failed", "stopped working")


async def test_ctrl_c_while_a_reconnected_session_is_configured_is_no_device_failure(
        isolated_user_dirs: Path) -> None:
    async with RealtimeSimulator(session_limit=3.0, record_audio=False) as simulator:
        env = dict(os.environ, AVA_REALTIME_URL=simulator.url, OPENAI_API_KEY="sk-test-stop-" + "x" * 20)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ava_tray", "--console", "--no-rollover", env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            # The first session expires, AVA reconnects after 3 s; stop it the moment the server has the new
            # session's `session.update` (the client is opening its audio right then).
            await simulator.wait_for(lambda: simulator.sessions[1].session_updates, timeout=20)
            proc.send_signal(signal.SIGINT)
            assert proc.stdout is not None
            output = (await asyncio.wait_for(proc.stdout.read(), 10)).decode("utf-8", "replace")
            assert await asyncio.wait_for(proc.wait(), 5) == 0, output
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert "⏰ Session expired" in output and "👋 AVA stopped" in output, output
    assert not any(words in output for words in DEVICE_FAILURE_WORDS), output
    history = isolated_user_dirs / "data" / "ava-tray" / "history.jsonl"
    records = [json.loads(line) for line in history.read_text(encoding="utf-8").splitlines()]
    assert [r["cause"] for r in records] == ["session_expired", "stopped"], records
    assert not any(words in r["message"] for r in records for words in DEVICE_FAILURE_WORDS), records
