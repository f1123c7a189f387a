"""`mcp.json`: the MCP servers a user configured, in the format Claude Desktop, Cursor and Cline share.

```json
{"mcpServers": {
    "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me"],
              "env": {"TOKEN": "keyring:files-token"}, "cwd": "/home/me", "autoApprove": ["read_file"]},
    "weather": {"url": "https://example.com/mcp", "headers": {"Authorization": "keyring:weather"},
                "timeout": 20}}}
```
Pure parsing, no I/O but reading the file: a syntax error is one `McpConfigError` naming the line; a server
entry that cannot be used gets a `problem` (shown as its status) while the others run.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

FILE_NAME = "mcp.json"
DEFAULT_TIMEOUT = 30.0
"""Seconds a tool call may take unless the server's entry says `"timeout"`."""
MAX_TIMEOUT = 600.0
KEYS = frozenset({"command", "args", "env", "cwd", "url", "headers", "autoApprove", "timeout", "disabled", "type"})


class McpConfigError(ValueError):
    """`mcp.json` cannot be read as a whole; the message names the file and the line."""


@dataclass(frozen=True)
class ServerConfig:
    """One entry of `mcpServers`: a stdio server (command) or a streamable-HTTP one (url)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Values may be `keyring:ENTRY` (resolved when the server starts, never logged)."""
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Values may be `keyring:ENTRY`, as in `env`."""
    auto_approve: frozenset[str] = frozenset()
    """Tools that run without asking the user (the server's own tool names)."""
    timeout: float = DEFAULT_TIMEOUT
    line: int = 0
    """Where the entry starts in mcp.json (0 when not known)."""
    problem: str | None = None
    """Why this entry cannot be started (a sentence); such a server is listed, never started."""
    disabled: bool = False
    """`"disabled": true`: listed, not started."""

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "http" if self.url else "stdio"

    def launch_key(self) -> tuple[object, ...]:
        """What the running server depends on: a change of any of it restarts the server."""
        return (self.command, self.args, tuple(sorted(self.env.items())), self.cwd, self.url,
                tuple(sorted(self.headers.items())), self.problem, self.disabled)


@dataclass(frozen=True)
class McpConfig:
    """The servers of mcp.json, in the file's order."""

    servers: tuple[ServerConfig, ...] = ()


def load_config(path: Path) -> McpConfig:
    """The configuration in `path`; an empty one when the file does not exist. Raises `McpConfigError`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return McpConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise McpConfigError(f"{path} cannot be read: {exc}") from None
    return parse_config(text, str(path))


def parse_config(text: str, where: str = FILE_NAME) -> McpConfig:
    """Parse mcp.json's text; `where` names the file in messages. Raises `McpConfigError`."""
    if not text.strip():
        return McpConfig()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise McpConfigError(f"{where} line {exc.lineno}, column {exc.colno}: {exc.msg}; "
                             "AVA runs with its built-in tools until the file is fixed") from None
    if not isinstance(document, dict):
        raise McpConfigError(f"{where} line 1: the file must hold one JSON object with \"mcpServers\"")
    servers = document.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise McpConfigError(f"{where} line {_line_of(text, 'mcpServers')}: \"mcpServers\" must be an object "
                             "of server names")
    if "mcpServers" not in document and document:
        logger.warning("%s has no \"mcpServers\": no MCP server is configured", where)
    return McpConfig(tuple(_server(name, entry, _line_of(text, name), where) for name, entry in servers.items()))


def _server(name: str, entry: Any, line: int, where: str) -> ServerConfig:
    def broken(reason: str) -> ServerConfig:
        return ServerConfig(name, line=line, problem=f"{where} line {line}: server {name!r} {reason}")

    if not isinstance(entry, dict):
        return broken("must be an object with a \"command\" or a \"url\"")
    if entry.get("disabled") is True:
        return ServerConfig(name, line=line, disabled=True)
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        logger.info("%s: server %r has keys AVA does not use: %s", where, name, ", ".join(unknown))
    command, url = entry.get("command"), entry.get("url")
    if (command is None) == (url is None):
        return broken("needs either a \"command\" (a local server) or a \"url\" (a remote one)")
    if entry.get("type") == "sse":
        return broken("uses the old SSE transport; AVA speaks stdio and streamable HTTP")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        return broken("has a \"command\" that is not a text")
    if url is not None and (not isinstance(url, str) or not re.match(r"^https?://", url)):
        return broken("has a \"url\" that is not an http:// or https:// address")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        return broken("has \"args\" that are not a list of texts")
    env, headers = entry.get("env", {}), entry.get("headers", {})
    for key, value in (("env", env), ("headers", headers)):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            return broken(f"has \"{key}\" that is not an object of texts")
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        return broken("has a \"cwd\" that is not a text")
    approve = entry.get("autoApprove", [])
    if not isinstance(approve, list) or not all(isinstance(tool, str) for tool in approve):
        return broken("has \"autoApprove\" that is not a list of tool names")
    timeout = entry.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or timeout <= 0:
        return broken("has a \"timeout\" that is not a positive number of seconds")
    return ServerConfig(name=name, command=command.strip() if command else None, args=tuple(args), env=dict(env),
                        cwd=cwd, url=url, headers=dict(headers), auto_approve=frozenset(approve),
                        timeout=min(float(timeout), MAX_TIMEOUT), line=line)


def _line_of(text: str, key: str) -> int:
    """The line where `"key":` first appears (1-based), 0 when not found."""
    match = re.search(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:", text)
    return text.count("\n", 0, match.start()) + 1 if match else 0
