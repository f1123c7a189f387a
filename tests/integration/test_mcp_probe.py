"""The MCP self-test: AVA's own probe server starts over stdio through the SDK and answers."""

from __future__ import annotations

import sys

import pytest

from ava_tray import paths
from ava_tray.tools.mcp import probe


async def test_the_probe_server_answers() -> None:
    sentence = await probe.check()
    assert sentence.startswith("available (SDK 2.") and "answered in" in sentence


async def test_a_missing_server_is_a_sentence() -> None:
    with pytest.raises(probe.McpUnavailable,
                       match="a stdio MCP server failed to start: the command '/nonexistent/ava' was not found"):
        await probe.check(["/nonexistent/ava", probe.PROBE_FLAG])


def test_a_frozen_ava_serves_the_probe_itself() -> None:
    assert probe.probe_command(frozen=True) == [*paths.launch_command(frozen=True), probe.PROBE_FLAG]
    assert probe.probe_command(frozen=False) == [sys.executable, "-m", "ava_tray.tools.mcp.probe"]
