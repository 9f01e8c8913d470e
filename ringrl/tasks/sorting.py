"""Ordering puzzles (domain ``logic``) with a selection-sort teacher.

Problem: ``Sort these numbers from smallest to largest: 41, 7, 23.`` The teacher
repeatedly names the smallest remaining number, then states the order. The reference
answer is the comma-separated sorted list; the logic verifier compares normalised
strings.

Levels: 1: three 1-digit numbers; 2: three 2-digit numbers; 3: four 2-digit numbers; 4: five 3-digit numbers.
"""

from __future__ import annotations

import random
from typing import Any

LEVELS = (1, 2, 3, 4)
_SPEC = {1: (3, 1, 9), 2: (3, 10, 99), 3: (4, 10, 99), 4: (5, 100, 999)}  # level -> (count, low, high)


def generate(rng: random.Random, level: int) -> dict[str, Any]:
    count, lo, hi = _SPEC[level]
    nums = rng.sample(range(lo, hi + 1), count)
    listed = ", ".join(map(str, nums))
    prompt = f"Sort these numbers from smallest to largest: {listed}."
    lines = [f"We pick the smallest remaining number each time, starting from {listed}."]
    remaining = list(nums)
    order = []
    k = 1
    while len(remaining) > 1:
        m = min(remaining)
        lines.append(f"Step {k}: the smallest of {', '.join(map(str, remaining))} is {m}.")
        order.append(m)
        remaining.remove(m)
        k += 1
    order.append(remaining[0])
    lines.append(f"Step {k}: only {remaining[0]} is left.")
    answer = ", ".join(map(str, order))
    lines.append(f"So the order is {answer}.")
    lines.append(f"The answer is \\boxed{{{answer}}}.")
    return {"prompt": prompt, "answer": answer, "response": "\n".join(lines)}
