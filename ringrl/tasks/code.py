"""Short programs that compute a value (domain ``code``), judged by execution.

Problem: ``Write a program that prints the sum of the digits of 4821.`` The teacher
explains the method in a few steps and writes a complete Python program in one fenced
block; the row's ``tests`` hold one stdin/stdout pair (empty input, expected output),
so the reward comes from running the program in the sandbox.

Levels: 1: digit sums and reversals; 2: sums and counts over a range; 3: both, larger numbers.
"""

from __future__ import annotations

import random
from typing import Any

LEVELS = (1, 2, 3)


def _digit_sum(rng: random.Random, level: int) -> tuple[str, str, int]:
    n = rng.randint(100, 9999 if level < 3 else 999999)
    prog = f"n = {n}\ntotal = 0\nwhile n > 0:\n    total += n % 10\n    n //= 10\nprint(total)"
    return f"prints the sum of the digits of {n}", prog, sum(map(int, str(n)))


def _reverse(rng: random.Random, level: int) -> tuple[str, str, int]:
    n = rng.randint(100, 9999 if level < 3 else 999999)
    prog = f"n = {n}\nprint(int(str(n)[::-1]))"
    return f"prints the digits of {n} in reverse order as a number", prog, int(str(n)[::-1])


def _range_sum(rng: random.Random, level: int) -> tuple[str, str, int]:
    a = rng.randint(1, 50)
    b = a + rng.randint(5, 50 if level < 3 else 500)
    prog = f"total = 0\nfor i in range({a}, {b} + 1):\n    total += i\nprint(total)"
    return f"prints the sum of all integers from {a} to {b}", prog, sum(range(a, b + 1))


def _count_multiples(rng: random.Random, level: int) -> tuple[str, str, int]:
    k = rng.randint(2, 9)
    n = rng.randint(20, 200 if level < 3 else 5000)
    prog = f"count = 0\nfor i in range(1, {n} + 1):\n    if i % {k} == 0:\n        count += 1\nprint(count)"
    return f"prints how many integers from 1 to {n} are divisible by {k}", prog, n // k


_KINDS = {
    1: (_digit_sum, _reverse),
    2: (_range_sum, _count_multiples),
    3: (_digit_sum, _reverse, _range_sum, _count_multiples),
}


def generate(rng: random.Random, level: int) -> dict[str, Any]:
    kind = rng.choice(_KINDS[level])
    what, program, value = kind(rng, level)
    prompt = f"Write a program that {what}."
    response = (
        f"The program must print one number: it {what}.\n"
        "We store the input in a variable, compute the value step by step, and print it.\n"
        f"```python\n{program}\n```"
    )
    return {
        "prompt": prompt,
        "tests": [{"input": "", "output": str(value)}],
        "answer": str(value),
        "response": response,
    }
