"""pass@k at its edges (no correct sample, all correct, n - c just below, at and above k,
k = 1 and k = n) against exact fractions, and every field of the benchmark summary,
the empty one included (kills the mutants benchmarks/mutation.sh found surviving)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from ringrl.eval.metrics import BenchmarkResult, SampleRecord, pass_at_k, summarize


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


@pytest.mark.parametrize("n,k", [(10, 3), (7, 7), (6, 1)])
def test_pass_at_k_around_n_minus_c_equal_k(n: int, k: int) -> None:
    """The shortcut ``n - c < k`` returns 1; at ``n - c == k`` exactly one k-subset has no correct sample."""
    for c in range(n + 1):
        got = pass_at_k(n, c, k)
        assert got == pytest.approx(float(exact(n, c, k)), abs=1e-12), (n, c, k)
        if n - c < k:
            assert got == 1.0
        if n - c == k:
            assert got == pytest.approx(1 - 1 / math.comb(n, k), abs=1e-12) and got < 1.0
    assert pass_at_k(n, 0, k) == 0.0  # no correct sample
    assert pass_at_k(n, n, k) == 1.0  # all correct


def test_pass_at_k_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"need 0 <= c <= n, got n=4, c=5"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match=r"need 1 <= k <= n, got n=4, k=0"):
        pass_at_k(4, 2, 0)
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 4, 1) == 1.0  # the bounds themselves are valid


def test_summarize_empty_is_all_zero() -> None:
    r = summarize("aime", [], "characters", unknown_ids=3)
    assert r == BenchmarkResult("aime", 0, 0, 0, 0.0, {}, 0.0, 0.0, "characters", 0.0, {}, 3)
    assert r.to_dict() == {
        "name": "aime",
        "problems": 0,
        "samples": 0,
        "samples_per_problem": 0,
        "pass_at_1": 0.0,
        "pass_at_k": {},
        "mean_reward": 0.0,
        "mean_length": 0.0,
        "length_unit": "characters",
        "no_answer_fraction": 0.0,
        "status_counts": {},
        "unknown_ids": 3,
    }


def test_summary_without_no_answer_samples_and_its_name() -> None:
    recs = [
        SampleRecord("gsm8k", "p1", 0, "r", 1.0, "correct", 4),
        SampleRecord("gsm8k", "p1", 1, "r", 0.0, "wrong", 6),
    ]
    r = summarize("gsm8k", recs, "tokens")
    assert r.name == "gsm8k" and r.to_dict()["name"] == "gsm8k"
    assert r.unknown_ids == 0  # the default: every response id was in the benchmark
    assert r.no_answer_fraction == 0.0
    assert r.status_counts == {"correct": 1, "wrong": 1}
    assert r.pass_at_k == {1: 0.5, 2: 1.0}
    assert recs[0].to_dict() == {
        "benchmark": "gsm8k",
        "id": "p1",
        "sample": 0,
        "response": "r",
        "reward": 1.0,
        "status": "correct",
        "length": 4,
        "detail": "",
    }
