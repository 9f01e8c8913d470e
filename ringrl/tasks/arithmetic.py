"""Multi-step arithmetic (domain ``math``) with a digit-by-digit teacher.

Problem: ``What is 47 + 38 - 15?`` The teacher works left to right, one operation per
step, and does each addition or subtraction column by column with explicit carries and
borrows, as a long chain of thought would. Intermediate results stay non-negative.

Levels: 1: one operation on two 1-digit numbers; 2: one operation on two 2-digit
numbers; 3: two operations on 2-digit numbers; 4: two operations on 3-digit numbers. Operands have a fixed width within a level, as
in "two-digit" drills, which also keeps the problem's digits at fixed offsets: that is
what lets the embedded tiny model learn to read them within minutes.
"""

from __future__ import annotations

import random
from typing import Any

LEVELS = (1, 2, 3, 4)
_SPEC = {1: (1, 1, 1), 2: (1, 2, 2), 3: (2, 2, 2), 4: (2, 3, 3)}  # level -> (operations, min digits, max digits)
_PLACES = ["ones", "tens", "hundreds", "thousands", "ten-thousands"]


def _number(rng: random.Random, lo_digits: int, hi_digits: int) -> int:
    d = rng.randint(lo_digits, hi_digits)
    return rng.randint(10 ** (d - 1) if d > 1 else 1, 10**d - 1)


def column_add(a: int, b: int) -> list[str]:
    """Lines of a column addition of a + b."""
    lines, carry = [], 0
    da, db = str(a)[::-1], str(b)[::-1]
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        term = f"{x} + {y}" + (f" + {carry}" if carry else "")
        carry, digit = divmod(s, 10)
        lines.append(
            f"{_PLACES[i].capitalize()}: {term} = {s}, write {digit}" + (f", carry {carry}." if carry else ".")
        )
    if carry:
        lines.append(f"{_PLACES[len(lines)].capitalize()}: carry {carry}, write {carry}.")
    return lines


def column_sub(a: int, b: int) -> list[str]:
    """Lines of a column subtraction of a - b (a >= b)."""
    lines, borrow = [], 0
    da, db = str(a)[::-1], str(b)[::-1]
    for i in range(len(da)):
        x = int(da[i]) - borrow
        y = int(db[i]) if i < len(db) else 0
        top = f"{da[i]} - {borrow}" if borrow else f"{da[i]}"
        if x < y:
            borrow = 1
            lines.append(
                f"{_PLACES[i].capitalize()}: {top} is less than {y}, borrow: {x + 10} - {y} = {x + 10 - y}, write {x + 10 - y}."
            )
        else:
            borrow = 0
            lines.append(f"{_PLACES[i].capitalize()}: {top} - {y} = {x - y}, write {x - y}.")
    return lines


def generate(rng: random.Random, level: int) -> dict[str, Any]:
    ops, lo, hi = _SPEC[level]
    value = _number(rng, lo, hi)
    terms: list[tuple[str, int]] = []
    for _ in range(ops):
        b = _number(rng, lo, hi)
        op = "-" if value >= b and rng.random() < 0.5 else "+"
        terms.append((op, b))
        value = value + b if op == "+" else value - b
    first = value
    for op, b in reversed(terms):
        first = first - b if op == "+" else first + b
    expr = " ".join([str(first)] + [f"{op} {b}" for op, b in terms])
    prompt = f"What is {expr}?"
    lines = [f"We compute {expr} from left to right, one operation at a time."]
    acc = first
    for k, (op, b) in enumerate(terms, start=1):
        res = acc + b if op == "+" else acc - b
        lines.append(f"Step {k}: {acc} {op} {b}.")
        lines.extend(column_add(acc, b) if op == "+" else column_sub(acc, b))
        lines.append(f"So {acc} {op} {b} = {res}.")
        acc = res
    lines.append(f"The answer is \\boxed{{{acc}}}.")
    return {"prompt": prompt, "answer": str(acc), "response": "\n".join(lines)}
