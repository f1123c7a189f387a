"""Tool schemas from type hints, and the validator for that subset."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest

from ava_tray.tools.schema import ArgumentsInvalid, SchemaError, schema_from_signature, validate_arguments


def sample(text: str, count: int, ratio: float = 0.5, loud: bool = False,
           mode: Literal["a", "b"] = "a", zone: Annotated[str | None, "a zone"] = None) -> None:
    """A sample."""


def test_schema_from_type_hints() -> None:
    schema = schema_from_signature(sample)
    assert schema == {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number", "default": 0.5},
            "loud": {"type": "boolean", "default": False},
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
            "zone": {"type": "string", "description": "a zone"},
        },
        "required": ["text", "count"],
        "additionalProperties": False,
    }


def unsupported(items: list[str]) -> None: ...
def optional_without_default(zone: str | None) -> None: ...
def no_hint(x) -> None: ...  # type: ignore[no-untyped-def]
def var_kwargs(**kwargs: Any) -> None: ...


@pytest.mark.parametrize("function", [unsupported, optional_without_default, no_hint, var_kwargs])
def test_unclean_signatures_need_an_explicit_schema(function: Any) -> None:
    with pytest.raises(SchemaError):
        schema_from_signature(function)


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"text": "hi", "count": 2}, {"text": "hi", "count": 2}),
    ({"text": "hi", "count": 2.0}, {"text": "hi", "count": 2}),
    ({"text": "hi", "count": 1, "ratio": 3, "zone": None}, {"text": "hi", "count": 1, "ratio": 3}),
    ({"text": "hi", "count": 1, "mode": "b", "loud": True}, {"text": "hi", "count": 1, "mode": "b", "loud": True}),
])
def test_valid_arguments(arguments: dict[str, Any], expected: dict[str, Any]) -> None:
    assert validate_arguments(schema_from_signature(sample), arguments) == expected


@pytest.mark.parametrize(("arguments", "problem"), [
    ([1, 2], "JSON object"),
    ({"count": 1}, "'text' is required"),
    ({"text": 5, "count": 1}, "'text' must be a string"),
    ({"text": "x", "count": "3"}, "'count' must be a number"),
    ({"text": "x", "count": True}, "'count' must be a number"),
    ({"text": "x", "count": 1.5}, "whole number"),
    ({"text": "x", "count": 1, "loud": "yes"}, "true or false"),
    ({"text": "x", "count": 1, "mode": "c"}, "one of: a, b"),
    ({"text": "x", "count": 1, "extra": 1}, "unexpected argument 'extra'"),
])
def test_mismatched_arguments_are_named(arguments: Any, problem: str) -> None:
    with pytest.raises(ArgumentsInvalid, match=problem):
        validate_arguments(schema_from_signature(sample), arguments)


def test_bounds_in_explicit_schemas() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 3},
                                               "s": {"type": "string", "maxLength": 2}}}
    assert validate_arguments(schema, {"n": 3, "s": "ab"}) == {"n": 3, "s": "ab"}
    with pytest.raises(ArgumentsInvalid, match="at most 3"):
        validate_arguments(schema, {"n": 4})
    with pytest.raises(ArgumentsInvalid, match="at most 2 characters"):
        validate_arguments(schema, {"s": "abc"})
