"""C3PO ``leftover: carry``: responses not selected go back to the pool with their age; their
PPO ratio must stay against the policy that generated them (ringrl/algorithms/c3po.py)."""

from __future__ import annotations

import pytest

from ringrl.config import load_config
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import RLTrainer


@pytest.fixture()
def trainer(tmp_path, ringrl_moe_dir, ringrl_util):
    cfg = load_config(
        RLConfig,
        overrides=[
            f"model.path={ringrl_moe_dir}",
            "model.device=cpu",
            f"out={tmp_path / 'carry'}",
            "steps=3",
            "rollout.prompts_per_step=2",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=8",
            "former.budget_tokens=20",
            "former.leftover=carry",
            "former.max_age=1",
            "data.train_size=16",
            "optim.lr=1e-2",
            "loss.beta=0",
            "progress=false",
            "tensorboard=false",
        ],
    )
    t = RLTrainer(cfg, score=ringrl_util.parity_score)
    yield t
    t.close()


def test_leftovers_carry_with_age_and_are_trained_later(trainer):
    m1 = trainer.step()
    carry = trainer.state.carry
    assert carry and all(s.age == 1 for s in carry)
    assert m1["batch/leftover_responses"] == len(carry) and m1["train/tokens"] == 20
    m2 = trainer.step()
    assert m2["batch/carried_in"] == len(carry) and m2["train/tokens"] == 20
    assert all(s.age == 1 for s in trainer.state.carry)  # max_age=1: the age-1 leftovers are dropped, not aged to 2


def test_carried_samples_keep_the_generating_policys_logprobs(trainer):
    trainer.step()
    carry = trainer.state.carry
    assert carry
    for s in carry:
        assert s.old_logprobs is not None
        # pi_old is the policy that sampled the response: its log-probs match the engine's (same weights, fp32)
        assert len(s.old_logprobs) >= s.n_response
        assert max(abs(a - b) for a, b in zip(s.old_logprobs, s.rollout_logprobs)) < 1e-3
