"""Exact resume: stop a run after its step-2 checkpoint, resume it, and get the metrics of the
uninterrupted run for steps 3 and 4 (CPU, seeded)."""

from __future__ import annotations

import json

import pytest

from ringrl.config import load_config
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import RLTrainer

COMPARED = (
    "reward/mean",
    "reward/accuracy",
    "response_length/mean",
    "response_length/max",
    "response_length/std",
    "train/tokens",
    "train/responses",
    "train/grad_norm",
    "train/loss",
    "train/entropy",
    "train/kl",
    "train/clip_fraction",
    "train/logprob_mismatch",
    "train/lr",
    "moe/balance_loss",
    "moe/z_loss",
    "moe/max_expert_load",
    "rollout/responses",
    "rollout/extra_rounds",
)


def config(model_dir, out, algo, *extra):
    return load_config(
        RLConfig,
        overrides=[
            f"model.path={model_dir}",
            "model.device=cpu",
            f"out={out}",
            f"algo={algo}",
            "steps=4",
            "save_every=2",
            "rollout.prompts_per_step=2",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=8",
            "rollout.batch_size=16",
            "former.budget_tokens=20",
            "data.train_size=5",
            "optim.lr=1e-2",
            "optim.warmup_ratio=0.5",
            "optim.schedule=cosine",
            "loss.beta=0.1",
            "progress=false",
            "threads=1",
            "tensorboard=false",
            *extra,
        ],
    )


def metrics(out):
    return {r["step"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


class StopAtStep3(Exception):
    pass


@pytest.mark.parametrize(
    "algo, extra",
    [
        # carry: the leftover pool (with ages) must survive the restart; 5 rows: the prompt stream wraps an epoch
        ("c3po", ("former.leftover=carry", "former.max_age=2")),
        ("dapo", ("max_fill_rounds=2",)),  # dynamic sampling draws a variable number of prompts per step
    ],
)
def test_resume_reproduces_the_uninterrupted_run(tmp_path, ringrl_moe_dir, ringrl_util, algo, extra):
    whole = tmp_path / "whole"
    RLTrainer(config(ringrl_moe_dir, whole, algo, *extra), score=ringrl_util.parity_score).fit()

    part = tmp_path / "part"
    trainer = RLTrainer(config(ringrl_moe_dir, part, algo, *extra), score=ringrl_util.parity_score)
    real_step = trainer.step

    def step():
        if trainer.state.step == 2:  # the step-2 checkpoint is written; die before step 3
            raise StopAtStep3
        return real_step()

    trainer.step = step
    with pytest.raises(StopAtStep3):
        trainer.fit()
    assert sorted(p.name for p in (part / "checkpoints").iterdir()) == ["step-2"]
    assert sorted(metrics(part)) == [1, 2]
    state = json.loads((part / "checkpoints" / "step-2" / "trainer_state.json").read_text())
    if algo == "c3po":
        assert state["carry"], "the carry-over pool should be non-empty at step 2 (Phi < pool)"

    summary = RLTrainer(config(ringrl_moe_dir, part, algo, *extra, "resume=true"), score=ringrl_util.parity_score).fit()
    assert summary["resumed_from"].endswith("step-2") and summary["steps"] == 4
    a, b = metrics(whole), metrics(part)
    assert sorted(b) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        for k in COMPARED:
            assert b[step][k] == pytest.approx(a[step][k], rel=1e-6, abs=1e-6), (step, k)
    if algo == "c3po":
        assert any(b[s]["batch/carried_trained"] > 0 for s in (3, 4)) or any(
            b[s]["batch/carried_in"] > 0 for s in (3, 4)
        )
    # the final weights agree too
    wa = ringrl_util.load_weights(whole / "checkpoints" / "final")
    wb = ringrl_util.load_weights(part / "checkpoints" / "final")
    for n in wa:
        assert (wa[n] - wb[n]).abs().max() < 1e-5, n


def test_resume_without_checkpoint_starts_fresh(tmp_path, ringrl_moe_dir, ringrl_util):
    out = tmp_path / "fresh"
    summary = RLTrainer(
        config(ringrl_moe_dir, out, "grpo", "steps=1", "resume=true", "save_every=0"), score=ringrl_util.parity_score
    ).fit()
    assert summary["resumed_from"] is None and summary["steps"] == 1


def test_extending_a_finished_run_matches_the_longer_run(tmp_path, ringrl_moe_dir, ringrl_util):
    """steps=2 to the end, then steps=4 resume=true continues from ``final``. With the RL default
    constant schedule the lr does not depend on the total, so this equals one 4-step run."""
    extra = ("former.leftover=carry", "optim.warmup_ratio=0", "optim.schedule=constant", "save_every=0")
    RLTrainer(config(ringrl_moe_dir, tmp_path / "long", "c3po", *extra), score=ringrl_util.parity_score).fit()
    RLTrainer(config(ringrl_moe_dir, tmp_path / "ext", "c3po", *extra, "steps=2"), score=ringrl_util.parity_score).fit()
    summary = RLTrainer(
        config(ringrl_moe_dir, tmp_path / "ext", "c3po", *extra, "resume=true"), score=ringrl_util.parity_score
    ).fit()
    assert summary["resumed_from"].endswith("final") and summary["steps"] == 4
    a, b = metrics(tmp_path / "long"), metrics(tmp_path / "ext")
    assert sorted(b) == [1, 2, 3, 4]
    for step in (3, 4):
        for k in COMPARED:
            assert b[step][k] == pytest.approx(a[step][k], rel=1e-6, abs=1e-6), (step, k)


def test_periodic_checkpoints_are_pruned(tmp_path, ringrl_moe_dir, ringrl_util):
    out = tmp_path / "prune"
    RLTrainer(
        config(ringrl_moe_dir, out, "grpo", "save_every=1", "keep_checkpoints=2"), score=ringrl_util.parity_score
    ).fit()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["final", "step-2", "step-3"]
    assert json.loads((out / "checkpoints" / "step-3" / "trainer_state.json").read_text())["step"] == 3
