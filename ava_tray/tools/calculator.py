"""A safe arithmetic evaluator over Python's `ast`: numbers, operators and a few math functions, never eval."""

from __future__ import annotations

import ast
import logging
import math
import operator
from collections.abc import Callable

logger = logging.getLogger(__name__)

MAX_EXPRESSION_CHARS = 300
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e308

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "floor": math.floor, "ceil": math.ceil,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "log": math.log, "log10": math.log10, "exp": math.exp,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculationError(ValueError):
    """An expression that cannot be calculated; the message is a sentence for the user."""


def calculate(expression: str) -> Number:
    """The value of an arithmetic expression such as `2 * (3 + 4) ** 2` or `sqrt(2) / 3`."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise CalculationError("The expression is empty.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"The expression is too long (at most {MAX_EXPRESSION_CHARS} characters).")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"{expression!r} is not an arithmetic expression I can read.") from exc
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError as exc:
        raise CalculationError("That divides by zero.") from exc
    except (OverflowError, MemoryError) as exc:
        raise CalculationError("The result is too large.") from exc
    except (ValueError, TypeError) as exc:
        if isinstance(exc, CalculationError):
            raise
        raise CalculationError(f"That cannot be calculated: {exc}.") from exc
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _evaluate(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _evaluate(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculationError(f"The exponent is too large (at most {MAX_EXPONENT}).")
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int) and \
                abs(left) > 1 and right * math.log10(abs(left)) > 308:
            raise CalculationError("The result is too large.")
        return _checked(_BINARY[type(node.op)](left, right))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords and 1 <= len(node.args) <= 2):
        arguments = [_evaluate(argument) for argument in node.args]
        return _checked(_FUNCTIONS[node.func.id](*arguments))
    raise CalculationError("Only numbers, + - * / // % **, parentheses and the functions "
                           f"{', '.join(_FUNCTIONS)} can be used.")


def _checked(value: object) -> Number:
    if isinstance(value, complex):
        raise CalculationError("The result is not a real number.")
    if not isinstance(value, (int, float)):
        raise CalculationError("That cannot be calculated.")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculationError("The result is too large.")
    if abs(value) > MAX_MAGNITUDE:
        raise CalculationError("The result is too large.")
    return value
