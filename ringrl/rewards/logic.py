"""Logic verifiers: a small registry of checkers chosen by the row's ``checker`` field.

- ``exact`` (default): the last box equals ``answer`` after normalisation (case,
  whitespace, spaces around commas, ``\\text{}`` wrappers).
- ``countdown``: the row has ``numbers: list[int]`` and ``target: int``; the boxed
  answer is an arithmetic expression with + - * / and parentheses that uses **each
  given number at most once** (a sub-multiset of ``numbers``; unary minus and other
  numbers are rejected) and equals ``target`` exactly (rational arithmetic, parsed
  with :mod:`ast`, never ``eval``).

Departure from the paper: the paper's RL data has no logic domain; these serve the
embedded synthetic tasks. New checkers: :func:`register_checker`.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from ringrl.rewards.extract import extract_last_boxed
from ringrl.rewards.types import Verdict

Checker = Callable[[Mapping[str, Any], str], Verdict]
_CHECKERS: dict[str, Checker] = {}
MAX_EXPR_CHARS = 300


def register_checker(name: str, fn: Checker) -> None:
    """Add a logic checker ``fn(row, boxed_answer) -> Verdict`` under ``name``."""
    _CHECKERS[name] = fn


def checker_names() -> list[str]:
    return sorted(_CHECKERS)


def normalize_logic(s: str) -> str:
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", str(s))
    s = re.sub(r"\s*,\s*", ",", s.strip().lower())
    return " ".join(s.split())


def check_exact(row: Mapping[str, Any], pred: str) -> Verdict:
    ok = normalize_logic(pred) == normalize_logic(row["answer"])
    return Verdict.of("correct" if ok else "wrong", "" if ok else f"got {pred[:80]!r}")


_TEX = (
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("×", "*"),
    ("÷", "/"),
    ("−", "-"),
    ("\\left", ""),
    ("\\right", ""),
    ("{", "("),
    ("}", ")"),
    ("[", "("),
    ("]", ")"),
)


def eval_countdown(expr: str) -> tuple[Fraction, list[int]]:
    """Value and the integer literals of an expression of + - * / and parentheses.

    Raises ValueError for anything else (names, calls, powers, unary minus, floats,
    division by zero)."""
    for a, b in _TEX:
        expr = expr.replace(a, b)
    expr = expr.split("=")[0].strip()
    if len(expr) > MAX_EXPR_CHARS:
        raise ValueError("expression too long")
    tree = ast.parse(expr, mode="eval")
    used: list[int] = []

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if b == 0:
                raise ValueError("division by zero")
            return a / b
        raise ValueError(f"{type(node).__name__} is not allowed")

    return ev(tree), used


def check_countdown(row: Mapping[str, Any], pred: str) -> Verdict:
    try:
        value, used = eval_countdown(pred)
    except (ValueError, SyntaxError, RecursionError, MemoryError) as e:
        return Verdict.of("wrong", f"invalid expression: {e}"[:120])
    extra = Counter(used) - Counter(int(n) for n in row["numbers"])
    if extra:
        return Verdict.of("wrong", f"numbers not available: {sorted(extra.elements())}")
    ok = value == Fraction(int(row["target"]))
    return Verdict.of("correct" if ok else "wrong", "" if ok else f"value {value} != {row['target']}")


register_checker("exact", check_exact)
register_checker("countdown", check_countdown)

# Fields each checker needs besides the response.
CHECKER_FIELDS: dict[str, tuple[str, ...]] = {"exact": ("answer",), "countdown": ("numbers", "target")}


def grade_logic(row: Mapping[str, Any], response: str, timeout: int = 5) -> Verdict:
    """Last box checked by ``row["checker"]`` (default ``exact``)."""
    name = row.get("checker") or "exact"
    fn = _CHECKERS.get(str(name))
    if fn is None:
        return Verdict.of("error", f"unknown logic checker {name!r} (one of {', '.join(checker_names())})")
    pred = extract_last_boxed(response)
    if pred is None:
        return Verdict.of("no_answer", "no \\boxed{} answer")
    return fn(row, pred)
