"""Experiment specs: every finding's pipeline is valid and covers every seed."""

from __future__ import annotations

import pytest

from ringrl.errors import UserError
from ringrl.pipeline.experiments import EXPERIMENTS, experiment_spec


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_is_a_valid_pipeline_over_the_seeds(name, tmp_path):
    spec = experiment_spec(name, str(tmp_path), seeds=[3, 7], smoke=True)
    rl = [s for s in spec.stages if s.kind == "rl"]
    assert rl and {s.config["seed"] for s in rl} == {3, 7}
    assert spec.stages[-1].kind == "report"
    assert all(s.config["steps"] <= 6 for s in rl)  # smoke sizes merged in


def test_c3po_vs_grpo_pairs_each_seed():
    spec = experiment_spec("c3po-vs-grpo", "out", seeds=[0, 1, 2])
    pairs = {(s.config["algo"], s.config["seed"]) for s in spec.stages if s.kind == "rl"}
    assert pairs == {(a, s) for a in ("c3po", "grpo") for s in (0, 1, 2)}
    assert all(s.source == "select" for s in spec.stages if s.kind == "rl")
    assert spec.stage("eval").options["models"] == ["select"] + [
        f"rl-{a}-seed{s}" for s in (0, 1, 2) for a in ("c3po", "grpo")
    ]


def test_two_stage_and_mixed_train_the_same_number_of_steps():
    spec = experiment_spec("two-stage-vs-mixed", "out", seeds=[0])
    steps = {s.name: s.config["steps"] for s in spec.stages if s.kind == "rl"}
    assert steps["stage1-seed0"] + steps["stage2-seed0"] == steps["mixed-seed0"]
    assert spec.stage("stage2-seed0").source == "stage1-seed0"
    mixed = spec.stage("mixed-seed0").config["data"]
    assert set(mixed["tasks"]) == {"math", "code", "logic"}
    # each task at the levels its own stage trained on, so only the schedule differs
    for st in ("stage1-seed0", "stage2-seed0"):
        data = spec.stage(st).config["data"]
        for task in data["tasks"]:
            own = data["levels"][task] if isinstance(data.get("levels"), dict) else data.get("levels")
            assert (mixed["levels"] or {}).get(task) == (sorted(own) if own else None)
    # and in the proportion the stages drew them: steps x L prompts, a stage's share split by its tasks
    s1, s2 = spec.stage("stage1-seed0").config, spec.stage("stage2-seed0").config
    p1 = s1["steps"] * s1["rollout"]["prompts_per_step"]
    p2 = s2["steps"] * s2["rollout"]["prompts_per_step"]
    assert mixed["weights"] == pytest.approx({"math": p1, "code": p2 / 2, "logic": p2 / 2})


def test_sft_epochs_starts_rl_from_every_epoch():
    spec = experiment_spec("sft-epochs", "out", seeds=[0])
    epochs = spec.stage("sft").config["epochs"]
    assert [s.options["epoch"] for s in spec.stages if s.kind == "select"] == list(range(1, epochs + 1))
    evaluated = spec.stage("eval").options["models"]
    assert all(f"epoch{e}" in evaluated and f"rl-epoch{e}-seed0" in evaluated for e in range(1, epochs + 1))


def test_unknown_experiment():
    with pytest.raises(UserError, match="unknown experiment"):
        experiment_spec("nope", "out", seeds=[0])
