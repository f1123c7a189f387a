"""MCP tools made fit for the Realtime API: valid unique names, object schemas, text results in a budget."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ava_tray.tools.mcp.adapt import (
    MAX_DESCRIPTION,
    adapt_schema,
    describe_tool,
    function_names,
    result_text,
    within_budget,
)

VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_names_are_valid_unique_and_the_same_every_time() -> None:
    tools = ["read_file", "read.file", "read file", "x" * 80, "y" * 80, "ünïcode"]
    names = function_names("my server", tools, taken={"my_server__read_file_taken"})
    assert all(VALID.match(name) for name in names.values()), names
    assert len(set(names.values())) == len(tools)
    assert names["read_file"] == "my_server__read_file"
    assert names == function_names("my server", tools, taken={"my_server__read_file_taken"})
    assert names["x" * 80].startswith("my_server__xxx") and len(names["x" * 80]) == 64


def test_a_name_taken_by_a_built_in_gets_another() -> None:
    names = function_names("ava", ["status"], taken={"ava__status"})
    assert names["status"] != "ava__status" and VALID.match(names["status"])


def test_schemas_become_objects_with_local_refs_in_place() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "moveArguments", "type": "object",
        "properties": {"title": {"type": "string", "title": "Title"},
                       "to": {"$ref": "#/$defs/Point", "description": "where"},
                       "path": {"type": "array", "items": {"$ref": "#/$defs/Point"}},
                       "tree": {"$ref": "#/$defs/Node"}},
        "required": ["to"],
        "$defs": {"Point": {"type": "object", "title": "Point", "properties": {"x": {"type": "number"}}},
                  "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
    }
    adapted = adapt_schema(schema)
    assert "$schema" not in adapted and "$defs" not in adapted and "title" not in adapted
    assert adapted["properties"]["title"] == {"type": "string"}, "a property named title stays"
    assert adapted["properties"]["to"] == {"type": "object", "properties": {"x": {"type": "number"}},
                                           "description": "where"}
    assert adapted["properties"]["path"]["items"]["properties"] == {"x": {"type": "number"}}
    assert adapted["properties"]["tree"]["properties"]["child"] == {}, "a recursive ref stops"
    assert "$ref" not in str(adapted) and adapted["required"] == ["to"]


def test_schemas_without_an_object_at_the_top_get_one() -> None:
    assert adapt_schema(None) == {"type": "object", "properties": {}}
    assert adapt_schema({}) == {"type": "object", "properties": {}}
    assert adapt_schema({"anyOf": [{"required": ["a"]}, {"required": ["b"]}]})["type"] == "object"


def test_descriptions_are_kept_and_long_ones_cut() -> None:
    assert describe_tool("s", "t", "Reads a file.\n\nArgs: path") == "Reads a file.\n\nArgs: path"
    assert describe_tool("s", "t", None, "Read file") == "Read file"
    assert "t" in describe_tool("s", "t", "  ") and "s" in describe_tool("s", "t", None)
    assert len(describe_tool("s", "t", "x" * 5000)) == MAX_DESCRIPTION


@dataclass
class Block:
    type: str
    text: str = ""
    data: str = ""
    mime_type: str = ""
    uri: str = ""
    name: str = ""
    resource: Any = None


def test_results_are_text_and_other_content_is_summarised() -> None:
    blocks = [Block("text", text="Here it is."), Block("image", data="A" * 4096, mime_type="image/png"),
              Block("audio", data="AAAA", mime_type="audio/wav"),
              Block("resource_link", uri="file:///a.txt", name="a.txt"),
              Block("resource", resource=Block("text", text="inside", uri="file:///b.txt"))]
    text = result_text(blocks)
    assert text.splitlines() == ["Here it is.", "[image: image/png, 3 KB]", "[audio: audio/wav, 3 bytes]",
                                 "[resource link: a.txt <file:///a.txt>]", "[resource file:///b.txt]", "inside"]
    assert result_text([], {"temperature": 21}) == '{"temperature": 21}'


def test_the_budget_cuts_long_results() -> None:
    assert within_budget("abc", 5) == ("abc", False)
    assert within_budget("abcdefgh", 5) == ("abcde", True)
