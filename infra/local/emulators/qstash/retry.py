"""When a failed attempt is tried again: QStash's default backoff, `Upstash-Retry-Delay` expressions
and the destination's own `Retry-After`-style hints."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from infra.local.emulators.qstash.headers import parse_go_duration

MAX_BACKOFF_SECONDS = 86400.0
RETRY_HINT_HEADERS = (
    "retry-after",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


def parse_retry_hint(value: str, now: float) -> float | None:
    """Seconds asked for by a `Retry-After`-style value (seconds, HTTP date or Go duration).

    None when unreadable or above one day: QStash then falls back to its own backoff.
    """
    text = value.strip()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = parse_go_duration(text)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(text).timestamp() - now
            except (TypeError, ValueError, IndexError):
                return None
    if not math.isfinite(seconds) or seconds > MAX_BACKOFF_SECONDS:
        return None
    return max(0.0, seconds)


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "pow": math.pow,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
    "min": min,
    "max": max,
}


_BINARY_OPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: math.pow,
}


_MAX_EXPRESSION_LENGTH = 512


def evaluate_retry_delay(expression: str, retried: int) -> float:
    """Milliseconds given by an `Upstash-Retry-Delay` expression for the `retried`-th retry.

    Only numbers, `retried`, `+ - * / % **` and the nine QStash functions are allowed; the
    expression is walked as an AST whitelist, never `eval`-ed. Raises ValueError when invalid.
    """
    if len(expression) > _MAX_EXPRESSION_LENGTH:
        raise ValueError("expression is too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        result = float(_evaluate(tree.body, float(retried)))
    except (SyntaxError, ArithmeticError, TypeError, RecursionError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc
    if math.isnan(result):
        raise ValueError("expression is not a number")
    return result


def _evaluate(node: ast.AST, retried: float) -> float:
    match node:
        case ast.Constant(value=bool()):
            raise ValueError("booleans are not allowed")
        case ast.Constant(value=int() | float() as number):
            return float(number)
        case ast.Name(id="retried"):
            return retried
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_evaluate(operand, retried)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _evaluate(operand, retried)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY_OPS:
            return _BINARY_OPS[type(op)](_evaluate(left, retried), _evaluate(right, retried))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS and args:
            return float(_FUNCTIONS[name](*(_evaluate(arg, retried) for arg in args)))
    raise ValueError(f"unsupported element in retry delay expression: {type(node).__name__}")


def default_backoff(retried: int) -> float:
    """QStash's default wait (seconds) before the next try, after attempt number `retried` failed."""
    return min(MAX_BACKOFF_SECONDS, math.exp(2.5 * (retried + 1)))
