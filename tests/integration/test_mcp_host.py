"""AVA as an MCP host, with real servers written with the SDK (tests/mcp_server.py): a stdio one started from
mcp.json as a user's would be, and a streamable-HTTP one on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from mcp_support import alive, free_port, http_server, output, stdio_entry, write_config
from waits import wait_until

from ava_tray.clock import SystemClock
from ava_tray.settings import Settings
from ava_tray.tools import ToolRegistry, make_tool
from ava_tray.tools.fakes import FakeConsent
from ava_tray.tools.mcp import connection
from ava_tray.tools.mcp.adapt import OUTPUT_BUDGET
from ava_tray.tools.mcp.host import McpHost
from ava_tray.tools.mcp.status import ServerState
from ava_tray.tools.wiring import build_toolbox

APPROVED = ["echo", "pid", "distance", "picture", "big", "hang", "env", "header", "fail"]


def ping() -> str:
    """Answer pong (a built-in)."""
    return "pong"


async def pid_of(registry: ToolRegistry, tool: str, call_id: str) -> int:
    result = output(await registry.call(tool, "{}", call_id))
    assert "result" in result, result
    return int(result["result"])


def state_of(host: McpHost, name: str) -> ServerState:
    return next(server.state for server in host.status().servers if server.name == name)


async def test_a_stdio_server_s_tools_are_declared_next_to_the_built_ins_and_answer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    config = tmp_path / "mcp.json"
    write_config(config, {"local": stdio_entry(autoApprove=APPROVED)})
    consent = FakeConsent(answer=False)
    registry = ToolRegistry([make_tool(ping)], consent=consent)
    host = McpHost(registry, config)
    async with host.running():
        specs = {spec.name: spec.to_json() for spec in registry.specs()}
        assert "ping" in specs and {"local__echo", "local__distance", "local__write_note"} <= set(specs)
        assert specs["local__echo"]["description"] == "Give the text back."
        distance = specs["local__distance"]["parameters"]
        assert distance["type"] == "object" and "$ref" not in json.dumps(distance) and "$defs" not in distance
        assert distance["properties"]["end"]["properties"]["x"] == {"type": "number"}
        [status] = host.status().servers
        assert status.state is ServerState.READY and status.summary() == "ready · 12 tools"
        assert any(record.name.endswith(".stderr") and "ava-test MCP server" in record.getMessage()
                   for record in caplog.records), "the server's stderr is in AVA's log"

        assert output(await registry.call("local__echo", '{"text": "hello"}', "c1")) == {"result": "hello"}
        assert output(await registry.call(
            "local__distance", '{"start": {"x": 0, "y": 0}, "end": {"x": 3, "y": 4}}', "c2")) == {"result": "5.0"}
        assert output(await registry.call("local__picture", "{}", "c3")) == \
            {"result": "a red square\n[image: image/png, 2 KB]"}
        big = output(await registry.call("local__big", '{"size": 20000}', "c4"))
        assert len(big["result"]) == OUTPUT_BUDGET and big["truncated"] and big["full_length"] == 20000
        failed = output(await registry.call("local__fail", '{"reason": "the disk is full"}', "c5"))
        assert "the disk is full" in failed["error"]
        wrong = output(await registry.call("local__add", '{"a": "x", "b": 1}', "c6"))
        assert "error" in wrong

        # Not in autoApprove: AVA's consent is asked, and a "no" means the server never sees the call.
        declined = output(await registry.call("local__write_note", '{"text": "buy milk"}', "c7"))
        assert declined["declined"] and consent.questions[-1][0] == "local__write_note"
        assert "write_note" in consent.questions[-1][1] and "buy milk" in consent.questions[-1][1]
        consent.answer = True
        assert output(await registry.call("local__write_note", '{"text": "buy milk"}', "c8")) == \
            {"result": "noted: buy milk"}
        pid = await pid_of(registry, "local__pid", "c9")
        assert alive(pid)
    assert not alive(pid), "leaving the host stops its servers"
    assert registry.names == ["ping"]
    assert host.status().servers[0].state is ServerState.STOPPED


async def test_a_killed_server_is_started_again_and_its_next_call_works(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    write_config(config, {"local": stdio_entry(autoApprove=APPROVED)})
    registry = ToolRegistry()
    host = McpHost(registry, config)
    seen: list[str] = []
    host.subscribe(lambda status: seen.extend(f"{s.state.value}: {s.summary()}" for s in status.servers))
    async with host.running():
        first = await pid_of(registry, "local__pid", "c1")
        version = registry.version
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: host.status().servers[0].restarts >= 1
                         and state_of(host, "local") is ServerState.READY, 30, "the server to be started again")
        second = await pid_of(registry, "local__pid", "c2")
        assert second != first and alive(second)
        assert output(await registry.call("local__echo", '{"text": "back"}', "c3")) == {"result": "back"}
        assert registry.version == version, "the same tools stayed declared through the restart"
    assert any(line.startswith("restarting: stopped: its process exited") for line in seen), seen


async def test_a_hanging_tool_times_out_with_an_error_while_other_calls_go_on(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    write_config(config, {"local": stdio_entry(autoApprove=APPROVED, timeout=1.5)})
    registry = ToolRegistry()
    async with McpHost(registry, config).running():
        pid = await pid_of(registry, "local__pid", "c0")
        began = time.monotonic()
        hang = asyncio.ensure_future(registry.call("local__hang", "{}", "c1"))
        echo = output(await registry.call("local__echo", '{"text": "meanwhile"}', "c2"))
        answered = time.monotonic() - began
        hung = output(await hang)
        waited = time.monotonic() - began
        assert echo == {"result": "meanwhile"} and answered < 1.0, "AVA and the server kept serving"
        assert "did not finish within 1.5 seconds" in hung["error"] and 1.4 < waited < 4.0
        assert await pid_of(registry, "local__pid", "c3") == pid, "a time-out does not restart the server"


async def test_a_tool_the_server_adds_is_declared_from_its_list_changed_notice(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    write_config(config, {"local": stdio_entry(autoApprove=["grow", "pid", "hello"])})
    registry = ToolRegistry()
    host = McpHost(registry, config)
    heard: list[int] = []
    registry.subscribe(heard.append)
    async with host.running():
        pid = await pid_of(registry, "local__pid", "c1")
        assert "local__hello" not in registry
        began = time.monotonic()
        assert output(await registry.call("local__grow", '{"name": "hello"}', "c2")) == {"result": "added"}
        await wait_until(lambda: "local__hello" in registry, connection.PROBE_INTERVAL / 2,
                         "the new tool (sooner than the periodic listing)")
        assert time.monotonic() - began < connection.PROBE_INTERVAL / 2
        assert output(await registry.call("local__hello", "{}", "c3")) == {"result": "hello"}
        assert heard[-1] == registry.version and await pid_of(registry, "local__pid", "c4") == pid


async def test_changes_to_mcp_json_are_applied_while_running(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "mcp.json"
    write_config(config, {"one": stdio_entry(autoApprove=["pid"])})
    registry = ToolRegistry()
    host = McpHost(registry, config, poll_interval=0.1)
    async with host.running():
        one = await pid_of(registry, "one__pid", "c1")
        assert registry.get("one__echo") is not None and registry.get("one__echo").changes_something  # type: ignore[union-attr]
        write_config(config, {"one": stdio_entry(autoApprove=["pid", "echo"]), "two": stdio_entry(autoApprove=["pid"])})
        await wait_until(lambda: "two__pid" in registry and state_of(host, "two") is ServerState.READY, 30,
                         "the new server's tools")
        assert not registry.get("one__echo").changes_something, "autoApprove changed without a restart"  # type: ignore[union-attr]
        assert await pid_of(registry, "one__pid", "c2") == one, "an unchanged server keeps running"
        two = await pid_of(registry, "two__pid", "c3")

        config.write_text('{"mcpServers": {\n  "one": {"command": "x"},\n  "two": {"command": "y"}\n  oops\n}}\n')
        await wait_until(lambda: host.status().config_problem is not None, 10, "the problem to be seen")
        problem = host.status().config_problem or ""
        assert "line 4" in problem and any("line 4" in r.getMessage() and r.levelno == logging.WARNING
                                           for r in caplog.records)
        assert await pid_of(registry, "one__pid", "c4") == one, "a half-written file stops nothing"

        write_config(config, {"two": stdio_entry(autoApprove=["pid"])})
        await wait_until(lambda: "one__pid" not in registry, 15, "the removed server's tools to go")
        assert host.status().config_problem is None and not alive(one)
        assert await pid_of(registry, "two__pid", "c5") == two


async def test_servers_that_cannot_start_are_status_lines_not_crashes(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    python = stdio_entry()["command"]
    write_config(config, {
        "missing": {"command": "/nonexistent/ava-mcp-server"},
        "crashes": {"command": python, "args": ["-c", "import sys; print('no API token given', file=sys.stderr); "
                                                      "sys.exit(3)"]},
        "nowhere": stdio_entry(cwd=str(tmp_path / "gone")),
        "broken": {"args": ["x"]},
        "silent": {"command": "sleep", "args": ["600"]},
        "good": stdio_entry(autoApprove=["echo"]),
    })
    registry = ToolRegistry()
    host = McpHost(registry, config, startup_wait=1.0)
    async with host.running():
        await wait_until(lambda: state_of(host, "crashes") is ServerState.FAILED
                         and state_of(host, "good") is ServerState.READY, 20, "the crash and the good server")
        lines = "\n".join(host.status().lines())
        assert "MCP: 1 of 6 servers ready" in lines and "silent: starting…" in lines
        assert "missing: failed to start: the command '/nonexistent/ava-mcp-server' was not found; trying again in" \
            in lines
        assert "crashes: failed to start: its process exited (no API token given)" in lines
        assert f"nowhere: failed to start: its working directory '{tmp_path / 'gone'}' does not exist" in lines
        line = next(number for number, text in enumerate(config.read_text().splitlines(), 1) if '"broken"' in text)
        assert f"broken: {config} line {line}: server 'broken' needs either a \"command\" (a local server) or a " \
            "\"url\" (a remote one)\n" in lines
        assert [name for name in registry.names if not name.startswith("good__")] == []
        assert output(await registry.call("good__echo", '{"text": "still here"}', "c1")) == {"result": "still here"}
        leaving = time.monotonic()
    assert time.monotonic() - leaving < 5.0, "a server stuck in its handshake does not hold AVA's quit"


async def test_a_malformed_file_at_start_leaves_the_built_ins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "mcp.json"
    config.write_text('{\n  "mcpServers": {\n    "a": {"command": "python3"}\n'
                      '    "b": {"command": "python3"}\n  }\n}\n')
    plain = build_toolbox(settings=Settings, apply_settings=lambda _: None, clock=SystemClock(), load_plugins=False,
                          memory_path=tmp_path / "a.db", use_mcp=False)
    toolbox = build_toolbox(settings=Settings, apply_settings=lambda _: None, clock=SystemClock(), load_plugins=False,
                            memory_path=tmp_path / "b.db", mcp_config=config)
    assert toolbox.mcp is not None
    async with toolbox.running():
        assert toolbox.registry.names == plain.registry.names
        problem = toolbox.mcp.status().config_problem or ""
        assert f"{config} line 4, column 5: Expecting ',' delimiter" in problem
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("mcp.json line 4" in message and "built-in tools" in message for message in warnings), warnings


async def test_the_cap_on_declared_tools_is_logged_when_it_bites(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "mcp.json"
    write_config(config, {"local": stdio_entry()})
    registry = ToolRegistry()
    host = McpHost(registry, config, max_tools=4)
    async with host.running():
        assert registry.names == ["local__echo", "local__add", "local__pid", "local__hang"]
        assert len(host.status().left_out) == 8 and "8 more left out by the cap" in host.status().lines()[0]
        message = next(r.getMessage() for r in caplog.records if "(the cap)" in r.getMessage())
        assert "offer 12 tools; only the first 4 are declared" in message and "local__write_note" in message


async def test_a_streamable_http_server_with_headers_and_its_return_after_an_outage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "PROBE_INTERVAL", 0.5)
    monkeypatch.setattr(connection, "BACKOFF", (0.25,))
    monkeypatch.setattr(connection, "READY_WAIT", 1.0)
    port = free_port()
    config = tmp_path / "mcp.json"
    write_config(config, {"remote": {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"X-Ava-Test": "plain"},
                                     "autoApprove": APPROVED}})
    registry = ToolRegistry()
    host = McpHost(registry, config)
    async with http_server(port) as first, host.running():
        [status] = host.status().servers
        assert status.transport == "http" and status.state is ServerState.READY
        assert output(await registry.call("remote__header", '{"name": "X-Ava-Test"}', "c1")) == {"result": "plain"}
        assert await pid_of(registry, "remote__pid", "c2") == first.pid
        first.kill()
        await first.wait()
        await wait_until(lambda: state_of(host, "remote") is not ServerState.READY, 15, "the outage to be seen")
        down = output(await registry.call("remote__echo", '{"text": "anyone?"}', "c3"))
        assert "The MCP server 'remote' is not running" in down["error"] and "cannot be reached" in down["error"]
        [status] = host.status().servers
        assert status.state is ServerState.RESTARTING and "cannot be reached" in status.summary()
        async with http_server(port) as second:
            await wait_until(lambda: state_of(host, "remote") is ServerState.READY, 30, "the server to be back")
            assert await pid_of(registry, "remote__pid", "c4") == second.pid
            assert output(await registry.call("remote__echo", '{"text": "back"}', "c5")) == {"result": "back"}
    assert replace(host.status().servers[0], detail="").state is ServerState.STOPPED
