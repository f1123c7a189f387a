"""A small MCP server written with the official SDK, started by the MCP tests exactly as mcp.json would.

`python tests/mcp_server.py` serves stdio; `python tests/mcp_server.py --http PORT` serves streamable HTTP
on 127.0.0.1:PORT/mcp. It says on stderr when it is up.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent
from pydantic import BaseModel, Field

server = MCPServer("ava-test")


class Point(BaseModel):
    x: float
    y: float


@server.tool()
def echo(text: str) -> str:
    """Give the text back."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def hang(seconds: float = 3600.0) -> str:
    """Sleep for a long time (a tool that hangs)."""
    time.sleep(seconds)
    return "woke up"


@server.tool()
def env(name: str) -> str:
    """An environment variable of the server's process."""
    return os.environ.get(name, "<unset>")


@server.tool()
def header(name: str, ctx: Context) -> str:
    """A header of the HTTP request that carried this call."""
    headers = ctx.headers or {}
    return headers.get(name.lower(), "<none>")


@server.tool()
def big(size: int) -> str:
    """A long text of `size` characters."""
    return ("0123456789" * (size // 10 + 1))[:size]


@server.tool()
def picture() -> list[TextContent | ImageContent]:
    """A caption and a small image."""
    data = base64.b64encode(b"\x89PNG" + bytes(2044)).decode()
    return [TextContent(type="text", text="a red square"), ImageContent(type="image", data=data,
                                                                        mime_type="image/png")]


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason given."""
    raise ToolError(reason)


@server.tool()
def distance(start: Point, end: Annotated[Point, Field(description="where to go")]) -> float:
    """The distance between two points."""
    return float(((start.x - end.x) ** 2 + (start.y - end.y) ** 2) ** 0.5)


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called `name` that says its name, and tell the client the tool list changed."""
    server.add_tool(lambda: name, name=name, description=f"Says {name}.")
    await ctx.notify_tools_changed()
    return "added"


@server.tool()
def write_note(text: str) -> str:
    """Pretends to write a note somewhere (a tool that changes something)."""
    return f"noted: {text}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve streamable HTTP on this port")
    args = parser.parse_args()
    print(f"ava-test MCP server {os.getpid()} up", file=sys.stderr, flush=True)
    if os.environ.get("AVA_TEST_CARELESS"):  # a server that logs its secret
        print(f"using the token {os.environ.get('AVA_TEST_TOKEN')}", file=sys.stderr, flush=True)
    if args.http is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
