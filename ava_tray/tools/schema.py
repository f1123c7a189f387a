"""JSON schemas for tool arguments: derived from type hints, and a small validator for that subset.

The subset: an object whose properties are `string`, `integer`, `number` or `boolean`, optionally
with `enum`, `minimum`/`maximum`, `minLength`/`maxLength`, a `description` and a `default`;
`required` and `additionalProperties: false`. No jsonschema dependency: this is all tools need.
"""

from __future__ import annotations

import inspect
import logging
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

logger = logging.getLogger(__name__)

JSON_TYPES: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
SUPPORTED_KEYWORDS = frozenset({
    "type", "enum", "description", "default", "minimum", "maximum", "minLength", "maxLength",
})
OBJECT_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties", "description"})


class SchemaError(TypeError):
    """A function's signature cannot be turned into a tool schema; give `parameters` explicitly."""


class ArgumentsInvalid(ValueError):
    """Arguments that do not match a tool's schema; the message is a sentence the model can relay."""


def schema_from_signature(function: Callable[..., Any]) -> dict[str, Any]:
    """The argument schema of `function` from its type hints.

    Supported: `str`, `int`, `float`, `bool`, `Literal[...]` of those, `X | None` (optional), each
    optionally wrapped in `Annotated[X, "description"]`. Parameters with a default are optional.
    """
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:
        raise SchemaError(f"cannot read the type hints of {function!r}: {exc}") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise SchemaError(f"{function.__name__}: *args and **kwargs cannot be described")
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise SchemaError(f"{function.__name__}: positional-only parameter {name!r}")
        if name not in hints:
            raise SchemaError(f"{function.__name__}: parameter {name!r} has no type hint")
        prop, optional = _property_for(hints[name], f"{function.__name__}.{name}")
        has_default = parameter.default is not inspect.Parameter.empty
        if has_default and parameter.default is not None:
            prop["default"] = parameter.default
        if not (has_default or optional):
            required.append(name)
        elif optional and not has_default:
            raise SchemaError(f"{function.__name__}: optional parameter {name!r} needs a default")
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _property_for(hint: Any, where: str) -> tuple[dict[str, Any], bool]:
    """One property schema and whether `None` is allowed."""
    description = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        description = next((extra for extra in extras if isinstance(extra, str)), None)
    optional = False
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) != 1 or len(typing.get_args(hint)) != 2:
            raise SchemaError(f"{where}: only `X | None` unions are supported")
        hint, optional = members[0], True
        origin = typing.get_origin(hint)
    prop: dict[str, Any]
    if origin is Literal:
        values = list(typing.get_args(hint))
        kinds = {type(value) for value in values}
        if len(kinds) != 1 or next(iter(kinds)) not in JSON_TYPES:
            raise SchemaError(f"{where}: Literal values must all be str, int, float or bool")
        prop = {"type": JSON_TYPES[next(iter(kinds))], "enum": values}
    elif hint in JSON_TYPES:
        prop = {"type": JSON_TYPES[hint]}
    else:
        raise SchemaError(f"{where}: type {hint!r} is not supported; give the schema explicitly")
    if description:
        prop["description"] = description
    return prop, optional


def check_schema(schema: dict[str, Any], where: str) -> None:
    """Raise `SchemaError` if `schema` is not an object schema in the subset the validator checks."""
    if schema.get("type") != "object" or not isinstance(schema.get("properties", {}), dict):
        raise SchemaError(f"{where}: the parameters must be an object schema with `properties`")
    unknown = set(schema) - OBJECT_KEYWORDS
    if unknown:
        raise SchemaError(f"{where}: unsupported schema keywords {sorted(unknown)}")
    for name, prop in schema.get("properties", {}).items():
        if not isinstance(prop, dict) or prop.get("type") not in JSON_TYPES.values():
            raise SchemaError(f"{where}: property {name!r} must have a type of string, integer, number or boolean")
        unknown = set(prop) - SUPPORTED_KEYWORDS
        if unknown:
            raise SchemaError(f"{where}: property {name!r} uses unsupported keywords {sorted(unknown)}")
    missing = set(schema.get("required", [])) - set(schema.get("properties", {}))
    if missing:
        raise SchemaError(f"{where}: required properties {sorted(missing)} are not declared")


def validate_arguments(schema: dict[str, Any], arguments: Any) -> dict[str, Any]:
    """Check decoded arguments against `schema` and return them as keyword arguments.

    `None` for an optional property means "not given". A whole number given for a `number` stays as
    it is; `3.0` for an `integer` becomes `3`. Raises `ArgumentsInvalid` naming the first problem.
    """
    if not isinstance(arguments, dict):
        raise ArgumentsInvalid("the arguments must be a JSON object")
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    if schema.get("additionalProperties") is False:
        extra = sorted(set(arguments) - set(properties))
        if extra:
            raise ArgumentsInvalid(f"unexpected argument {extra[0]!r} (expected: {', '.join(properties) or 'none'})")
    clean: dict[str, Any] = {}
    for name, prop in properties.items():
        value = arguments.get(name)
        if value is None:
            if name in required:
                raise ArgumentsInvalid(f"the argument {name!r} is required")
            continue
        clean[name] = _check_value(name, prop, value)
    return clean


def _check_value(name: str, prop: dict[str, Any], value: Any) -> Any:
    kind = prop.get("type")
    if kind == "string":
        if not isinstance(value, str):
            raise ArgumentsInvalid(f"{name!r} must be a string")
        if "minLength" in prop and len(value) < prop["minLength"]:
            raise ArgumentsInvalid(f"{name!r} must be at least {prop['minLength']} characters long")
        if "maxLength" in prop and len(value) > prop["maxLength"]:
            raise ArgumentsInvalid(f"{name!r} must be at most {prop['maxLength']} characters long")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ArgumentsInvalid(f"{name!r} must be true or false")
    elif kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ArgumentsInvalid(f"{name!r} must be a number")
        if kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise ArgumentsInvalid(f"{name!r} must be a whole number")
            value = int(value)
        if "minimum" in prop and value < prop["minimum"]:
            raise ArgumentsInvalid(f"{name!r} must be at least {prop['minimum']}")
        if "maximum" in prop and value > prop["maximum"]:
            raise ArgumentsInvalid(f"{name!r} must be at most {prop['maximum']}")
    if "enum" in prop and value not in prop["enum"]:
        choices = ", ".join(str(choice) for choice in prop["enum"])
        raise ArgumentsInvalid(f"{name!r} must be one of: {choices}")
    return value
