"""MCP tools as Realtime API functions: names, schemas, descriptions and results (pure functions).

The Realtime API wants function names matching `^[a-zA-Z0-9_-]{1,64}$`, an object schema at the top of
`parameters`, and a text output. MCP allows any tool name, any JSON Schema and results made of text,
images, audio and resources.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

SEPARATOR = "__"
MAX_NAME = 64
MAX_DESCRIPTION = 1024
"""Characters of a tool's description declared to the model (the rest is cut, with an ellipsis)."""
OUTPUT_BUDGET = 8000
"""Characters of a tool's result handed to the model."""
_INVALID = re.compile(r"[^A-Za-z0-9_-]+")
_DROPPED_KEYWORDS = frozenset({"$schema", "$id", "$comment", "title", "$anchor", "$dynamicAnchor"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_SCHEMA_VALUES = frozenset({"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then",
                            "else", "additionalItems", "unevaluatedProperties", "unevaluatedItems"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_MAX_DEPTH = 24


def function_names(server: str, tools: Iterable[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """The function name of each of a server's tools: `server__tool`, made valid, unique and at most
    64 characters (a long or clashing name keeps its start and ends in a hash of the whole, so the same
    configuration always gives the same names)."""
    used = set(taken)
    names: dict[str, str] = {}
    for tool in tools:
        full = f"{server}{SEPARATOR}{tool}"
        name = _INVALID.sub("_", full) or "tool"
        if len(name) > MAX_NAME or name in used:
            digest = hashlib.sha256(full.encode()).hexdigest()
            name = f"{name[:MAX_NAME - 9]}_{digest[:8]}"
            for salt in range(1, 1000):
                if name not in used:
                    break
                name = f"{name[:MAX_NAME - 9]}_{hashlib.sha256(f'{full}#{salt}'.encode()).hexdigest()[:8]}"
        used.add(name)
        names[tool] = name
    return names


def describe_tool(server: str, tool: str, description: str | None, title: str | None = None) -> str:
    """The tool's own description (else its title, else a sentence naming it), cut to `MAX_DESCRIPTION`."""
    text = (description or "").strip() or (title or "").strip() or f"The tool {tool} of the MCP server {server}."
    if len(text) > MAX_DESCRIPTION:
        text = text[:MAX_DESCRIPTION - 1].rstrip() + "…"
    return text


def adapt_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """An MCP input schema as Realtime `parameters`: an object at the top, local `$ref`s put in place,
    and keywords that only cost tokens (`$schema`, `title`, ...) left out."""
    if not isinstance(schema, Mapping):
        return {"type": "object", "properties": {}}
    definitions: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        found = schema.get(key)
        if isinstance(found, Mapping):
            definitions.update({f"#/{key}/{name}": value for name, value in found.items()})
    adapted = _adapt(schema, definitions, 0, ())
    if not isinstance(adapted, dict):
        adapted = {}
    adapted.pop("$defs", None)
    adapted.pop("definitions", None)
    if adapted.get("type") != "object":
        adapted["type"] = "object"
    if not isinstance(adapted.get("properties"), dict):
        adapted["properties"] = {}
    return adapted


def _adapt(node: Any, definitions: Mapping[str, Any], depth: int, seen: tuple[str, ...]) -> Any:
    if isinstance(node, bool) or not isinstance(node, Mapping):
        return node
    if depth > _MAX_DEPTH:
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = definitions.get(ref)
        extra = {key: value for key, value in node.items() if key != "$ref"}
        if target is None or ref in seen:  # remote or recursive: any value, with what the node says of itself
            return _adapt(extra, definitions, depth + 1, seen)
        merged = {**target, **extra} if isinstance(target, Mapping) else extra
        return _adapt(merged, definitions, depth + 1, (*seen, ref))
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS or key in ("$defs", "definitions"):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            result[key] = {name: _adapt(sub, definitions, depth + 1, seen) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES:
            if isinstance(value, list):  # draft-4 tuple `items`
                result[key] = [_adapt(sub, definitions, depth + 1, seen) for sub in value]
            else:
                result[key] = _adapt(value, definitions, depth + 1, seen)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            result[key] = [_adapt(sub, definitions, depth + 1, seen) for sub in value]
        else:
            result[key] = value
    return result


def result_text(content: Iterable[Any], structured: Any = None) -> str:
    """A tool result's content as text: text as it is, anything else summarised in brackets; the
    structured result as JSON when there is no text."""
    parts: list[str] = []
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(str(getattr(block, "text", "")))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(block, 'mime_type', '?')}, {_size(getattr(block, 'data', ''))}]")
        elif kind == "resource_link":
            label = getattr(block, "name", None) or getattr(block, "uri", "")
            parts.append(f"[resource link: {label} <{getattr(block, 'uri', '')}>]")
        elif kind == "resource":
            resource = getattr(block, "resource", None)
            text = getattr(resource, "text", None)
            uri = getattr(resource, "uri", "")
            if isinstance(text, str):
                parts.append(f"[resource {uri}]\n{text}")
            else:
                mime = getattr(resource, "mime_type", None) or "binary"
                parts.append(f"[resource {uri}: {mime}, {_size(getattr(resource, 'blob', ''))}]")
        else:
            parts.append(f"[{kind or 'unknown'} content]")
    if not any(part.strip() for part in parts) and structured is not None:
        parts = [json.dumps(structured, ensure_ascii=False, default=str)]
    return "\n".join(parts)


def _size(data: object) -> str:
    """The decoded size of base64 data, in words."""
    length = len(data) * 3 // 4 if isinstance(data, str) else 0
    return f"{length / 1024:.0f} KB" if length >= 1024 else f"{length} bytes"


def within_budget(text: str, budget: int = OUTPUT_BUDGET) -> tuple[str, bool]:
    """`text` cut to `budget` characters (and whether it was cut)."""
    if len(text) <= budget:
        return text, False
    return text[:budget], True
