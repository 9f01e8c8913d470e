"""pass@k against the closed form and brute-force enumeration; the benchmark summary by hand."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from ringrl.eval.metrics import SampleRecord, pass_at_k, report_ks, summarize


def closed_form(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def brute_force(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_brute_force_and_closed_form(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            got = pass_at_k(n, c, k)
            assert got == pytest.approx(brute_force(n, c, k), abs=1e-12), (n, c, k)
            assert got == pytest.approx(closed_form(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_1_is_fraction_correct() -> None:
    assert pass_at_k(32, 8, 1) == pytest.approx(0.25)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # n - c < k: every 3-subset holds a correct sample


def test_pass_at_k_large_n_is_stable() -> None:
    # C(1024, 512) overflows a float; the product form stays exact to rounding.
    n, c, k = 1024, 3, 512
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize("n,c,k", [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_report_ks() -> None:
    assert report_ks(1) == [1]
    assert report_ks(5) == [1, 2, 4, 5]
    assert report_ks(32) == [1, 2, 4, 8, 16, 32]
    assert report_ks(0) == []


def rec(pid: str, j: int, status: str, length: int = 10) -> SampleRecord:
    return SampleRecord("b", pid, j, "r", 1.0 if status == "correct" else 0.0, status, length)


def test_summarize_by_hand() -> None:
    records = [
        *(rec("a", j, "correct") for j in range(4)),  # 4/4
        rec("b", 0, "correct"),
        rec("b", 1, "wrong"),
        rec("b", 2, "no_answer"),
        rec("b", 3, "correct"),  # 2/4
        rec("c", 0, "wrong", 30),
        rec("c", 1, "timeout", 30),
        rec("c", 2, "no_answer", 30),  # 0/3
    ]
    r = summarize("b", records, "tokens", unknown_ids=2)
    assert (r.problems, r.samples, r.samples_per_problem) == (3, 11, 3)
    assert r.pass_at_1 == pytest.approx((1 + 0.5 + 0) / 3)
    assert sorted(r.pass_at_k) == [1, 2, 3]
    assert r.pass_at_k[2] == pytest.approx((1 + closed_form(4, 2, 2) + 0) / 3)
    assert r.pass_at_k[3] == pytest.approx((1 + 1 + 0) / 3)
    assert r.mean_reward == pytest.approx(6 / 11)
    assert r.mean_length == pytest.approx((8 * 10 + 3 * 30) / 11)
    assert r.no_answer_fraction == pytest.approx(2 / 11)
    assert r.status_counts == {"correct": 6, "no_answer": 2, "timeout": 1, "wrong": 2}
    d = r.to_dict()
    assert d["pass_at_k"]["3"] == r.pass_at_k[3] and d["length_unit"] == "tokens" and d["unknown_ids"] == 2


def test_summarize_empty() -> None:
    r = summarize("b", [], "characters")
    assert (r.problems, r.samples, r.pass_at_k) == (0, 0, {})
