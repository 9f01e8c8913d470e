"""``ringrl experiment c3po-vs-grpo --stress``: a task whose correct answers may be short or long,
and longer, hotter RL for both algorithms from one SFT start."""

from __future__ import annotations

import pytest

from ringrl.errors import UserError
from ringrl.pipeline.experiments import STRESS_RL, experiment_spec
from ringrl.tasks import make_split
from ringrl.tasks.styles import is_short


def test_two_styles_both_correct_and_stable():
    rows = make_split("arithmetic-styles", "train", 300, seed=0, levels=(1, 2))
    short = [r for r in rows if is_short(r["prompt"])]
    assert 0.4 < len(short) / len(rows) < 0.6  # both styles, about half each
    for r in rows:
        assert r["response"].endswith(f"\\boxed{{{r['answer']}}}.")  # both end in the right answer
        if is_short(r["prompt"]):
            assert r["response"] == f"The answer is \\boxed{{{r['answer']}}}."
        else:
            assert r["response"].count("\n") >= 3  # the worked derivation
    again = make_split("arithmetic-styles", "train", 300, seed=0, levels=(1, 2))
    assert [r["response"] for r in again] == [r["response"] for r in rows]


def test_stress_spec():
    spec = experiment_spec("c3po-vs-grpo", "/tmp/stress", [0, 1], stress=True)
    names = [s.name for s in spec.stages]
    assert names == [
        "sft",
        "select",
        "rl-c3po-seed0",
        "rl-grpo-seed0",
        "rl-c3po-seed1",
        "rl-grpo-seed1",
        "eval",
        "report",
    ]
    sft = spec.stage("sft").config
    assert sft["data"]["tasks"] == ["arithmetic-styles"]
    assert spec.stage("select").options == {"epoch": sft["epochs"]}
    for s in spec.stages[2:6]:
        assert s.config["steps"] == STRESS_RL["steps"] and s.config["optim"]["lr"] == STRESS_RL["optim"]["lr"]
        assert s.config["rollout"]["max_new_tokens"] == 400 and s.config["data"]["tasks"] == ["arithmetic-styles"]
    assert {s.config["algo"] for s in spec.stages[2:6]} == {"c3po", "grpo"}


def test_stress_only_for_c3po_vs_grpo():
    with pytest.raises(UserError, match="--stress applies to c3po-vs-grpo only"):
        experiment_spec("sft-epochs", "/tmp/x", [0], stress=True)
