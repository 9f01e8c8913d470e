"""The math and science verifiers' every branch, checked on the whole verdict (reward,
status and the detail a user reads), their limits (60-character numbers, 80 and 40
characters of detail, the relative tolerance at exactly 1%, the 1e-12 floor) and the
timeout reaching Math-Verify. Written to kill the mutants benchmarks/mutation.sh found
surviving in ringrl/rewards/grading.py (see docs/testing.md); tests only, no source edit."""

from __future__ import annotations

from fractions import Fraction

import math_verify
import pytest

import ringrl.rewards.grading as grading
from ringrl.rewards.grading import (
    SCIENCE_REL_TOL,
    _as_float,
    fast_verdict,
    grade_math,
    grade_science,
    normalize_answer,
    simple_number,
)
from ringrl.rewards.types import Verdict


def box(s: str) -> str:
    return f"so the answer is \\boxed{{{s}}}."


NO_ANSWER = Verdict(0.0, "no_answer", "no \\boxed{} answer")


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("\\left( x \\right)", "(x)"),
        (" $\\dfrac{1}{2}$ ", "\\frac{1}{2}"),
        ("\\tfrac{3}{4}", "\\frac{3}{4}"),
        ("\\text{Paris}", "paris"),
        ("5.", "5"),
        ("5..", "5"),
        (".5", ".5"),
        ("a\\,b\\;c\\!d\\ e", "abcde"),
        ("X Y", "xy"),
        ("2X", "2x"),  # only dots are stripped from the end
    ],
)
def test_normalize_answer(raw: str, norm: str) -> None:
    assert normalize_answer(raw) == norm


@pytest.mark.parametrize(
    "s, value",
    [
        ("3", Fraction(3)),
        ("+3", Fraction(3)),
        ("-3", Fraction(-3)),
        ("-0.5", Fraction(-1, 2)),
        ("-\\frac{1}{2}", Fraction(-1, 2)),
        ("-3/4", Fraction(-3, 4)),
        ("1" * 60, Fraction(int("1" * 60))),  # the longest plain number read
        ("1" * 61, None),
        ("2/0", None),
        ("x", None),
    ],
)
def test_simple_number(s: str, value: Fraction | None) -> None:
    assert simple_number(s) == value


def test_fast_verdict_every_branch() -> None:
    assert fast_verdict("x+1", "x + 1") == Verdict(1.0, "correct", "exact match")
    assert fast_verdict("1/2", "0.5") == Verdict(1.0, "correct", "equal numbers")
    assert fast_verdict("-3", "3") == Verdict(0.0, "wrong", "got '3'")
    assert fast_verdict("12", "13") == Verdict(0.0, "wrong", "got '13'")
    assert fast_verdict("2", "1/3") is None  # only two integers are surely different
    assert fast_verdict("1/3", "2") is None
    assert fast_verdict("x", "y") is None


def test_no_answer_verdicts() -> None:
    assert grade_math({"answer": "5"}, "the answer is 5") == NO_ANSWER
    assert grade_science({"answer": "5"}, "the answer is 5") == NO_ANSWER
    assert grade_science({"answer": "B"}, "B") == NO_ANSWER


def test_math_verdict_details() -> None:
    assert grade_math({"answer": "5"}, box("5")) == Verdict(1.0, "correct", "exact match")
    assert grade_math({"answer": 42.0}, box("42")) == Verdict(1.0, "correct", "exact match")  # float gold
    assert grade_math({"answer": "1/2"}, box("0.5")) == Verdict(1.0, "correct", "equal numbers")
    assert grade_math({"answer": "x^2+2x+1"}, box("(x+1)^2")) == Verdict(1.0, "correct", "")  # Math-Verify
    assert grade_math({"answer": "3"}, box("")) == Verdict(0.0, "wrong", "got ''")  # nothing to parse
    long = "y" * 100
    assert grade_math({"answer": "\\sqrt{2}"}, box(long)) == Verdict(0.0, "wrong", f"got {'y' * 80!r}")


def test_math_verify_raising_is_a_wrong_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(gold: str, pred: str, timeout: int) -> bool:
        raise ValueError("bad latex")

    monkeypatch.setattr(grading, "_math_verify", boom)
    assert grade_math({"answer": "\\sqrt{2}"}, box("\\sqrt{3}")) == Verdict(
        0.0, "wrong", "unparseable answer (ValueError)"
    )


def test_the_timeout_reaches_math_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, object]] = []
    real_parse, real_verify = math_verify.parse, math_verify.verify

    def parse(*args, **kwargs):
        seen.append(("parse", kwargs.get("parsing_timeout")))
        return real_parse(*args, **kwargs)

    def verify(*args, **kwargs):
        seen.append(("verify", kwargs.get("timeout_seconds")))
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(math_verify, "parse", parse)
    monkeypatch.setattr(math_verify, "verify", verify)
    grading._parse_gold.cache_clear()
    assert grade_math({"answer": "x^2+2x+1"}, box("(x+1)^2"), timeout=3).status == "correct"
    assert ("parse", 3) in seen and ("verify", 3) in seen  # the prediction's parse and the comparison
    seen.clear()
    assert grade_math({"answer": "x^2+2x+1"}, box("(x+1)^2")).status == "correct"  # default: 5 s
    assert ("parse", 5) in seen and ("verify", 5) in seen
    calls: list[int] = []
    real_math = grading.grade_math

    def spy_math(row, response, timeout=5):
        calls.append(timeout)
        return real_math(row, response, timeout)

    monkeypatch.setattr(grading, "grade_math", spy_math)
    grade_science({"answer": "x^2"}, box("x \\cdot x"), timeout=2)
    grade_science({"answer": "x^2"}, box("x \\cdot x"))
    assert calls == [2, 5]


@pytest.mark.parametrize(
    "gold, pred, verdict",
    [
        ("B", "B", Verdict(1.0, "correct", "")),
        ("B", "(B)", Verdict(1.0, "correct", "")),
        ("(B)", "\\text{B}", Verdict(1.0, "correct", "")),
        ("B", "C", Verdict(0.0, "wrong", "chose C")),
        ("B", "blue", Verdict(0.0, "wrong", "expected a choice letter, got 'blue'")),
        ("B", "z" * 50, Verdict(0.0, "wrong", f"expected a choice letter, got {'z' * 40!r}")),
        ("5", "5", Verdict(1.0, "correct", "")),  # one character, not a letter: a number
        ("AB", "AB", Verdict(1.0, "correct", "exact match")),  # not a single letter: graded as math
    ],
)
def test_science_choice_letters(gold: str, pred: str, verdict: Verdict) -> None:
    assert grade_science({"answer": gold}, box(pred)) == verdict


def test_science_numbers_and_the_tolerance_edges() -> None:
    assert SCIENCE_REL_TOL == 0.01  # the documented 1%; 100 * 0.01 == 1.0 exactly in floats
    assert grade_science({"answer": "100"}, box("101")) == Verdict(1.0, "correct", "")  # exactly 1%: accepted
    assert grade_science({"answer": "100"}, box("99")) == Verdict(1.0, "correct", "")
    assert grade_science({"answer": "100"}, box("101.0001")).status == "wrong"
    assert grade_science({"answer": "9.81"}, box("9.5")) == Verdict(0.0, "wrong", "got 9.5, want 9.81")
    # relative to |gold|, not to 1: a small gold needs a small error
    assert grade_science({"answer": "0.001"}, box("0.002")) == Verdict(0.0, "wrong", "got 0.002, want 0.001")
    assert grade_science({"answer": "0"}, box("1e-13")).status == "wrong"  # the floor is 1e-12 * 1%
    assert grade_science({"answer": "0"}, box("0")).status == "correct"
    # a number against a non-number: graded as math, no crash
    assert grade_science({"answer": "9.81"}, box("x")) == Verdict(0.0, "wrong", "got 'x'")
    assert grade_science({"answer": "x"}, box("9.81")).status == "wrong"


@pytest.mark.parametrize(
    "s, value",
    [
        ("1{,}000", 1000.0),
        ("1,000", 1000.0),
        ("6.0 \\times 10^{23}", 6.0e23),
        ("2*10^-3", 2e-3),
        ("3 \\cdot 10^{2}", 300.0),
        ("inf", None),
        ("nan", None),
        ("1e999", None),
        ("abc", None),
    ],
)
def test_science_number_reading(s: str, value: float | None) -> None:
    assert _as_float(s) == value
