"""Grading real benchmark items with the real verifiers (``ringrl.rewards.RewardPool``).

HumanEval and MBPP: reference solutions pass, wrong ones fail; MATH-500: boxed gold
answers are correct. The data is found the way the CLI finds it (``$RINGRL_DATA_DIR`` or
``shared/data`` beside the checkout); skipped, with that reason, only when there is none.
"""

from __future__ import annotations

import json

import pytest
from eval_helpers import real_data_dir

from ringrl.eval import evaluate_responses, load_benchmark, score_benchmark
from ringrl.rewards import RewardPool

N = 4  # HumanEval problems: enough to cover several entry points, small on 2 cores


def test_humaneval_canonical_pass_and_wrong_fail() -> None:
    root = real_data_dir()
    raw = [json.loads(line) for line in (root / "humaneval.jsonl").read_text().splitlines()[:N]]
    rows = load_benchmark("humaneval", limit=N).rows
    responses = {}
    for r in raw:
        fenced = f"```python\n{r['prompt']}{r['canonical_solution']}```"
        bare = r["canonical_solution"]  # the verifier prepends the prompt to a bare completion
        wrong = f"```python\n{r['prompt']}    return None\n```"
        responses[r["id"]] = [fenced, bare, wrong]
    with RewardPool(workers=2, timeout=5.0, code_timeout=10.0) as pool:
        ev = score_benchmark(rows, responses, pool, name="humaneval")
    by_sample = {(s.id, s.sample): s.status for s in ev.records}
    for r in raw:
        assert by_sample[(r["id"], 0)] == "correct", (r["id"], "fenced canonical")
        assert by_sample[(r["id"], 1)] == "correct", (r["id"], "bare canonical")
        assert by_sample[(r["id"], 2)] == "wrong", (r["id"], "wrong")
    assert ev.result.pass_at_1 == pytest.approx(2 / 3)


def test_mbpp_reference_passes_and_wrong_fails() -> None:
    root = real_data_dir()
    raw = [json.loads(line) for line in (root / "mbpp_sanitized.jsonl").read_text().splitlines()[:N]]
    rows = load_benchmark("mbpp", limit=N).rows
    responses = {
        r["id"]: [f"Here it is:\n```python\n{r['code']}\n```", "```python\ndef unrelated():\n    pass\n```", "no code"]
        for r in raw
    }
    with RewardPool(workers=2, timeout=5.0, code_timeout=10.0) as pool:
        ev = score_benchmark(rows, responses, pool, name="mbpp")
    statuses = [[s.status for s in ev.records if s.id == r["id"]] for r in raw]
    assert all(st[0] == "correct" and st[1] != "correct" and st[2] == "no_answer" for st in statuses), statuses
    assert ev.result.pass_at_1 == pytest.approx(1 / 3)
    assert ev.result.no_answer_fraction == pytest.approx(1 / 3)


def test_math500_gold_answers_are_correct() -> None:
    real_data_dir()
    rows = load_benchmark("math500", limit=6).rows
    responses = {r["id"]: [f"The answer is $\\boxed{{{r['answer']}}}$.", "I do not know."] for r in rows}
    with RewardPool(workers=2, timeout=5.0, code_timeout=10.0) as pool:
        d = evaluate_responses(rows, responses, pool, name="math500")
    assert d["pass_at_1"] == pytest.approx(0.5)
    assert d["pass_at_k"]["2"] == pytest.approx(1.0)
    assert d["no_answer_fraction"] == pytest.approx(0.5)
