"""The registry's tool set can change while AVA runs: one version per change, listeners told, foreign schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ava_tray.tools import Tool, ToolRegistry, make_tool


def ping() -> str:
    """Answer pong."""
    return "pong"


async def search(**arguments: Any) -> dict[str, Any]:
    return {"result": arguments}


FOREIGN = {"type": "object", "properties": {"filter": {"type": "object", "properties": {"tags": {
    "type": "array", "items": {"type": "string"}}}}}, "required": ["filter"]}


def foreign_tool(name: str = "srv__search") -> Tool:
    return Tool(name, "Search things.\nSee the manual.", search, FOREIGN, own_schema=True)


def test_every_change_is_one_new_version_and_listeners_hear_it() -> None:
    registry = ToolRegistry([make_tool(ping)])
    heard: list[int] = []
    unsubscribe = registry.subscribe(heard.append)
    start = registry.version
    assert registry.update(add=[foreign_tool("a__x"), foreign_tool("a__y")])
    assert registry.version == start + 1 and heard == [start + 1]
    assert not registry.update(remove=["nothing"]), "no change, no new version"
    assert registry.version == start + 1
    assert registry.update(remove=["a__x"], add=[foreign_tool("a__z")])
    assert registry.names == ["ping", "a__y", "a__z"] and heard == [start + 1, start + 2]
    unsubscribe()
    registry.unregister("a__y")
    assert heard == [start + 1, start + 2] and "a__y" not in registry and registry.version == start + 3


def test_a_clashing_update_changes_nothing() -> None:
    registry = ToolRegistry([make_tool(ping)])
    version = registry.version
    with pytest.raises(ValueError, match="already registered"):
        registry.update(add=[foreign_tool("srv__new"), foreign_tool("ping")])
    assert registry.names == ["ping"] and registry.version == version


async def test_a_tool_with_its_own_schema_gets_its_arguments_as_they_are() -> None:
    registry = ToolRegistry([foreign_tool()])
    spec = registry.specs()[0].to_json()
    assert spec["parameters"] == FOREIGN and spec["description"] == "Search things.\nSee the manual."
    output = json.loads(await registry.call("srv__search", '{"filter": {"tags": ["a"]}, "x-y": 1}', "c1"))
    assert output == {"result": {"filter": {"tags": ["a"]}, "x-y": 1}}
    refused = json.loads(await registry.call("srv__search", "[1]", "c2"))
    assert "must be a JSON object" in refused["error"]


def test_own_schema_tools_still_need_an_object_schema_and_a_description() -> None:
    with pytest.raises(ValueError, match="object schema"):
        Tool("srv__bad", "Bad.", search, {"type": "array"}, own_schema=True)
    with pytest.raises(ValueError, match="description"):
        Tool("srv__bad", " ", search, FOREIGN, own_schema=True)
    with pytest.raises(TypeError, match="must have a type"):
        Tool("builtin", "Built in.", search, FOREIGN)
