"""mcp.json as people already write it: servers, their problems named by line, secrets only by reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from ava_tray.tools.mcp.config import DEFAULT_TIMEOUT, McpConfigError, load_config, parse_config

CLAUDE_STYLE = """{
  "mcpServers": {
    "files": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me"],
      "env": {"TOKEN": "keyring:files-token"},
      "autoApprove": ["read_file"]
    },
    "weather": {"url": "https://example.com/mcp", "headers": {"Authorization": "keyring:weather"},
                "timeout": 12}
  }
}
"""


def test_stdio_and_http_servers_in_the_file_s_order() -> None:
    files, weather = parse_config(CLAUDE_STYLE).servers
    assert (files.name, files.transport, files.command, files.args) == \
        ("files", "stdio", "npx", ("-y", "@modelcontextprotocol/server-filesystem", "/home/me"))
    assert files.env == {"TOKEN": "keyring:files-token"} and files.auto_approve == {"read_file"}
    assert files.timeout == DEFAULT_TIMEOUT and files.line == 3 and files.problem is None
    assert (weather.transport, weather.url, weather.timeout, weather.line) == \
        ("http", "https://example.com/mcp", 12.0, 9)


@pytest.mark.parametrize(("text", "line"), [
    ('{\n  "mcpServers": {\n    "a": {"command": "x",}\n  }\n}\n', 3),
    ('{\n  "mcpServers": {\n    "a": {"command": "x"}\n  \n', 5),
    ('{"mcpServers": {"a": {"command": "x"}}}\n\n// a comment\n', 3),
])
def test_a_syntax_error_names_the_line(text: str, line: int, tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text)
    with pytest.raises(McpConfigError, match=rf"mcp.json line {line}, column \d+: .*built-in tools"):
        load_config(path)


def test_a_broken_entry_is_a_problem_of_that_server_only() -> None:
    text = ('{"mcpServers": {\n"good": {"command": "x"},\n"both": {"command": "x", "url": "http://h/mcp"},\n'
            '"neither": {"args": []},\n"old": {"url": "http://h/sse", "type": "sse"},\n'
            '"badenv": {"command": "x", "env": {"A": 1}},\n"slow": {"command": "x", "timeout": -1},\n'
            '"off": {"command": "x", "disabled": true}}}')
    servers = {server.name: server for server in parse_config(text).servers}
    assert servers["good"].problem is None and not servers["good"].disabled
    assert "line 3" in (servers["both"].problem or "") and "either" in (servers["both"].problem or "")
    assert "line 4" in (servers["neither"].problem or "")
    assert "SSE" in (servers["old"].problem or "")
    assert "\"env\"" in (servers["badenv"].problem or "")
    assert "timeout" in (servers["slow"].problem or "")
    assert servers["off"].disabled and servers["off"].problem is None


def test_no_file_or_an_empty_one_means_no_servers(tmp_path: Path) -> None:
    assert load_config(tmp_path / "missing.json").servers == ()
    (tmp_path / "empty.json").write_text("  \n")
    assert load_config(tmp_path / "empty.json").servers == ()
    with pytest.raises(McpConfigError, match="line 1"):
        parse_config("[1, 2]")


def test_what_needs_a_restart_is_the_launch_not_auto_approve() -> None:
    before = parse_config('{"mcpServers": {"a": {"command": "x", "autoApprove": []}}}').servers[0]
    approved = parse_config('{"mcpServers": {"a": {"command": "x", "autoApprove": ["t"]}}}').servers[0]
    moved = parse_config('{"mcpServers": {"a": {"command": "y"}}}').servers[0]
    assert before.launch_key() == approved.launch_key() != moved.launch_key()
