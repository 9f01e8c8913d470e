"""Math and science verifiers: the last ``\\boxed{}`` graded against the reference answer.

Departures from the paper (which only says "Math-Verify, 1 if equivalent else 0"):

- Only the **last** box counts; a response without a box is ``no_answer`` (reward 0),
  never searched for other numbers.
- Fast path (:func:`fast_verdict`): identical normalised strings (spaces,
  ``\\left``/``\\right``, ``\\dfrac``, trailing ``.``) and equal plain numbers (``0.5``
  vs ``1/2``) are ``correct``, two different integers are ``wrong``, without sympy.
- Science additionally accepts multiple-choice letters (a gold answer that is a single
  letter A-J is compared with the letter in the box, e.g. ``\\boxed{B}`` or ``\\boxed{(B)}``)
  and plain numbers within a relative tolerance (:data:`SCIENCE_REL_TOL`, 1e-2).
- Parsed gold answers are cached per process (:func:`_parse_gold`).

These functions run inside pool worker processes, because Math-Verify uses
signal-based timeouts; the pool adds a hard per-item limit on top.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ringrl.rewards.extract import extract_last_boxed
from ringrl.rewards.types import Verdict

SCIENCE_REL_TOL = 1e-2
_NORM_DROP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\ |\s+|\$")


def normalize_answer(s: str) -> str:
    """Cheap canonical form for the string fast path (not an equivalence test)."""
    s = _NORM_DROP.sub("", str(s)).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s)
    return s.rstrip(".").lower()


_SIMPLE = re.compile(r"^([+-]?)(?:(\d+(?:\.\d+)?)|\\frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))$")


def simple_number(s: str) -> Fraction | None:
    """Exact value of a plain number (``12``, ``-0.5``, ``3/4``, ``\\frac{3}{4}``), else None."""
    m = _SIMPLE.match(normalize_answer(s))
    if m is None or len(s) > 60:
        return None
    sign, dec, fn, fd, sn, sd = m.groups()
    if dec is not None:
        v = Fraction(dec)
    else:
        num, den = (fn, fd) if fn is not None else (sn, sd)
        if int(den) == 0:
            return None
        v = Fraction(int(num), int(den))
    return -v if sign == "-" else v


def fast_verdict(gold: str, pred: str) -> Verdict | None:
    """Decide without sympy where that is certain: identical normalised strings, equal
    plain numbers, or two different integers. None: ask Math-Verify."""
    if normalize_answer(pred) == normalize_answer(gold):
        return Verdict.of("correct", "exact match")
    g, p = simple_number(gold), simple_number(pred)
    if g is None or p is None:
        return None
    if g == p:
        return Verdict.of("correct", "equal numbers")
    if g.denominator == 1 and p.denominator == 1:
        return Verdict.of("wrong", f"got {pred[:80]!r}")
    return None


def _gold_text(answer: Any) -> str:
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return str(answer).strip()


@functools.lru_cache(maxsize=65536)
def _parse_gold(gold: str) -> tuple[Any, ...]:
    from math_verify import parse

    text = gold if ("\\boxed" in gold or gold.startswith("$")) else f"${gold}$"
    parsed = parse(text, parsing_timeout=5)
    if not parsed:
        parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=5)
    return tuple(parsed)


def _math_verify(gold: str, pred: str, timeout: int) -> bool:
    from math_verify import parse, verify

    g = list(_parse_gold(gold))
    p = parse(f"\\boxed{{{pred}}}", parsing_timeout=timeout)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=timeout))


def grade_math(row: Mapping[str, Any], response: str, timeout: int = 5) -> Verdict:
    """Reward 1 iff the last box is Math-Verify-equivalent to ``row["answer"]``."""
    pred = extract_last_boxed(response)
    if pred is None:
        return Verdict.of("no_answer", "no \\boxed{} answer")
    gold = _gold_text(row["answer"])
    fast = fast_verdict(gold, pred)
    if fast is not None:
        return fast
    try:
        ok = _math_verify(gold, pred, timeout)
    except Exception as e:  # Math-Verify raising is a wrong answer, not a crash
        return Verdict.of("wrong", f"unparseable answer ({type(e).__name__})")
    return Verdict.of("correct" if ok else "wrong", "" if ok else f"got {pred[:80]!r}")


_LETTER = re.compile(r"^\(?\s*(?:\\text\{\s*)?([A-J])\s*\}?\s*\)?\s*[.:]?$")


def _as_float(s: str) -> float | None:
    s = "".join(s.replace("{,}", "").replace(",", "").split())
    s = re.sub(r"(?:\\times|\\cdot|\*)10\^\{?(-?\d+)\}?", r"e\1", s)
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def grade_science(row: Mapping[str, Any], response: str, timeout: int = 5) -> Verdict:
    """Multiple-choice letters, numbers within :data:`SCIENCE_REL_TOL`, else as math."""
    pred = extract_last_boxed(response)
    if pred is None:
        return Verdict.of("no_answer", "no \\boxed{} answer")
    gold = _gold_text(row["answer"])
    gold_letter = _LETTER.match(gold)
    if gold_letter and len(gold.strip("() .")) == 1:
        m = _LETTER.match(pred.strip())
        if m is None:
            return Verdict.of("wrong", f"expected a choice letter, got {pred[:40]!r}")
        ok = m.group(1) == gold_letter.group(1)
        return Verdict.of("correct" if ok else "wrong", "" if ok else f"chose {m.group(1)}")
    g, p = _as_float(gold), _as_float(pred)
    if g is not None and p is not None:
        ok = abs(p - g) <= SCIENCE_REL_TOL * max(abs(g), 1e-12)
        return Verdict.of("correct" if ok else "wrong", "" if ok else f"got {p:g}, want {g:g}")
    return grade_math(row, response, timeout)
