"""The calculator evaluates arithmetic only, never code."""

from __future__ import annotations

import math

import pytest

from ava_tray.tools.calculator import CalculationError, calculate


@pytest.mark.parametrize(("expression", "value"), [
    ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("-3 ** 2", -9), ("7 // 2", 3), ("7 % 4", 3), ("1 / 4", 0.25),
    ("2 ^ 10", 1024), ("sqrt(16)", 4), ("round(2.345, 2)", 2.35), ("abs(-2.5)", 2.5), ("+5", 5),
    ("2 * pi", math.tau), ("10 ** -2", 0.01), ("3 × 4 ÷ 2", 6),
])
def test_arithmetic(expression: str, value: float) -> None:
    assert calculate(expression) == pytest.approx(value)


@pytest.mark.parametrize(("expression", "problem"), [
    ("__import__('os').system('true')", "Only numbers"),
    ("open('x')", "Only numbers"),
    ("(1).__class__", "Only numbers"),
    ("x + 1", "Only numbers"),
    ("[1, 2]", "Only numbers"),
    ("'a' * 3", "Only numbers"),
    ("1 / 0", "divides by zero"),
    ("2 ** 100000", "exponent is too large"),
    ("9 ** 999", "too large"),
    ("10.0 ** 400", "too large"),
    ("(-8) ** 0.5", "not a real number"),
    ("sqrt(-1)", "cannot be calculated"),
    ("2 +", "not an arithmetic expression"),
    ("", "empty"),
    ("1+" * 200 + "1", "too long"),
])
def test_refused(expression: str, problem: str) -> None:
    with pytest.raises(CalculationError, match=problem):
        calculate(expression)
