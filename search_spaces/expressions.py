"""Small arithmetic expressions over dotted spec keys (our ``x_maximum_expr``).

Example: ``min(model.num_queries, model.num_queries * dataset.num_classes - 1)``.
Parsed with :mod:`ast` and evaluated from a whitelist (numbers, dotted names,
``+ - * // /``, unary minus, ``min``/``max``), so a schema can never run code.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Tuple


class ExpressionError(ValueError):
    """An expression that is not in the small allowed language."""


@dataclass(frozen=True)
class Expression:
    """A parsed expression and the dotted names it reads."""

    text: str
    names: Tuple[str, ...]
    _tree: ast.AST

    def evaluate(self, values: Mapping[str, Any]) -> float:
        """The value, reading names from ``values``; KeyError names a missing key."""
        return _eval(self._tree, values)


def parse_expression(text: str) -> Expression:
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as error:
        raise ExpressionError(f"expression {text!r} is not valid: {error.msg}") from None
    names: list = []
    _check(tree, names, text)
    return Expression(text=text, names=tuple(dict.fromkeys(names)), _tree=tree)


_BINARY: dict = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
                 ast.FloorDiv: lambda a, b: a // b, ast.Div: lambda a, b: a / b}
_CALLS: dict = {"min": min, "max": max}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise ExpressionError("not a name")


def _check(node: ast.AST, names: list, text: str) -> None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return
    if isinstance(node, (ast.Name, ast.Attribute)):
        names.append(_dotted(node))
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, names, text)
        _check(node.right, names, text)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check(node.operand, names, text)
        return
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
            and node.args and not node.keywords):
        for arg in node.args:
            _check(arg, names, text)
        return
    raise ExpressionError(f"expression {text!r} uses {ast.dump(node)[:40]}, which is not allowed")


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)):
        return values[_dotted(node)]
    if isinstance(node, ast.BinOp):
        operation: Callable = _BINARY[type(node.op)]
        return operation(_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        return -_eval(node.operand, values)
    return _CALLS[node.func.id](*(_eval(arg, values) for arg in node.args))  # type: ignore[attr-defined]
