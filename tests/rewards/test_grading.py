import pytest

from ringrl.rewards.grading import grade_math, grade_science
from ringrl.rewards.logic import eval_countdown, grade_logic


def box(s: str) -> str:
    return f"Reasoning... so the answer is \\boxed{{{s}}}."


@pytest.mark.parametrize(
    "gold,pred",
    [
        ("1/2", "0.5"),
        ("\\frac{1}{2}", "\\dfrac{1}{2}"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("(1,2)", "(1, 2)"),
        ("[0,1)", "[0, 1)"),
        (42, "42.0"),
        ("x^2+2x+1", "(x+1)^2"),
        ("3", "x = 3"),
    ],
)
def test_math_equivalent(gold, pred):
    v = grade_math({"answer": gold}, box(pred))
    assert (v.reward, v.status) == (1.0, "correct"), v


@pytest.mark.parametrize(
    "gold,pred", [("1/2", "0.51"), ("3", "4"), ("(1,2)", "(2, 1)"), ("[0,1)", "[0,1]"), ("\\sqrt{2}", "2")]
)
def test_math_not_equivalent(gold, pred):
    v = grade_math({"answer": gold}, box(pred))
    assert (v.reward, v.status) == (0.0, "wrong"), v


def test_math_only_last_box_counts_and_no_box():
    assert grade_math({"answer": "5"}, "\\boxed{5} no wait \\boxed{6}").status == "wrong"
    assert grade_math({"answer": "5"}, "\\boxed{6} no wait \\boxed{5}").status == "correct"
    v = grade_math({"answer": "5"}, "the answer is 5")
    assert (v.reward, v.status) == (0.0, "no_answer")


def test_science_letters_and_tolerance():
    assert grade_science({"answer": "B"}, box("B")).status == "correct"
    assert grade_science({"answer": "B"}, box("(B)")).status == "correct"
    assert grade_science({"answer": "B"}, box("C")).status == "wrong"
    assert grade_science({"answer": "9.81"}, box("9.8")).status == "correct"  # 0.1% off
    assert grade_science({"answer": "9.81"}, box("9.5")).status == "wrong"  # 3% off
    assert grade_science({"answer": "6.02e23"}, box("6.0 \\times 10^{23}")).status == "correct"
    assert grade_science({"answer": "\\frac{1}{3}"}, box("1/3")).status == "correct"


def test_logic_exact_normalises_case_spaces_commas():
    row = {"answer": "Alice, Bob ,Carol"}
    assert grade_logic(row, box("alice,bob, carol")).status == "correct"
    assert grade_logic(row, box("alice, carol, bob")).status == "wrong"
    assert grade_logic(row, "alice, bob, carol").status == "no_answer"
    assert grade_logic({"answer": "x", "checker": "nope"}, box("x")).status == "error"


def test_countdown():
    row = {"checker": "countdown", "numbers": [2, 3, 4, 6], "target": 24}
    assert grade_logic(row, box("(6 - 2) * (4 + 2)")).status == "wrong"  # 2 used twice
    assert grade_logic(row, box("(6 - 3 - 2) * 4 * 6")).status == "wrong"  # 6 twice
    assert grade_logic(row, box("6 \\times 4")).status == "correct"  # a sub-multiset is allowed
    assert grade_logic(row, box("(3 - 2) * 4 * 6 = 24")).status == "correct"
    assert grade_logic(row, box("6 / (1 - 3/4)")).status == "wrong"  # 1 is not given
    assert grade_logic(row, box("__import__('os').system('true')")).status == "wrong"
    assert grade_logic(row, box("6 ** 2")).status == "wrong"
    assert grade_logic(row, box("4 / (3 - 3)")).status == "wrong"
    assert grade_logic(row, box("6 * 4 + 0")).status == "wrong"  # 0 not given
    value, used = eval_countdown("(2+3)/4")
    assert value * 4 == 5 and used == [2, 3, 4]


def test_fast_path_agrees_with_math_verify():
    from ringrl.rewards.grading import _math_verify, fast_verdict, simple_number

    assert simple_number("\\frac{3}{4}") == simple_number("0.75") == simple_number("3/4")
    assert simple_number("x+1") is None and simple_number("1/0") is None
    cases = [("12", "12"), ("12", "13"), ("1/2", "0.5"), ("-3", "-3.0"), ("\\frac{1}{3}", "0.3333"), ("7", "x")]
    for gold, pred in cases:
        fast = fast_verdict(gold, pred)
        if fast is not None:
            assert (fast.status == "correct") == _math_verify(gold, pred, 5), (gold, pred)
    assert fast_verdict("12", "13").status == "wrong" and fast_verdict("1/2", "0.5").status == "correct"
    assert fast_verdict("\\frac{1}{3}", "0.3333") is None  # left to Math-Verify's rounding rules


@pytest.mark.parametrize(
    "gold,pred,status",
    [
        ("100", "101", "correct"),  # exactly at the tolerance: |101 - 100| = 1e-2 * 100
        ("100", "99", "correct"),  # at, from below
        ("100", "100.9999999", "correct"),  # just inside
        ("100", "101.0000001", "wrong"),  # just outside
        ("100", "98.9999999", "wrong"),
        ("-200", "-202", "correct"),  # relative to |gold|
        ("-200", "-202.000001", "wrong"),
        ("0", "0", "correct"),
        ("0", "1e-13", "wrong"),  # a zero gold: tolerance 1e-2 * 1e-12, effectively exact
    ],
)
def test_science_tolerance_boundary(gold, pred, status):
    from ringrl.rewards.grading import SCIENCE_REL_TOL

    assert SCIENCE_REL_TOL == 1e-2  # the values above are computed for this tolerance
    assert grade_science({"answer": gold}, box(pred)).status == status
