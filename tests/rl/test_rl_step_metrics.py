"""Step metrics cover every loss pass of the step; the mismatch is engine vs pi_old; the
train-inference correction reaches the loss; refill policies live with their formers."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from ringrl.algorithms import FormerConfig, c3po_needs_more, dapo_keep_groups, dapo_needs_more
from ringrl.algorithms.types import Sample, ScoredGroup
from ringrl.config import load_config
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import RLTrainer
from ringrl.rl.update import combine_step_metrics
from ringrl.rollout import HFEngine


def cfg_for(model_dir, out, *extra):
    return load_config(
        RLConfig,
        overrides=[
            f"model.path={model_dir}",
            "model.device=cpu",
            f"out={out}",
            "steps=1",
            "algo=grpo",
            "rollout.prompts_per_step=2",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=8",
            "data.train_size=16",
            "optim.warmup_ratio=0",
            "loss.beta=0.1",
            "progress=false",
            "threads=1",
            "tensorboard=false",
            *extra,
        ],
    )


def run(model_dir, out, score, *extra, engine=None):
    trainer = RLTrainer(cfg_for(model_dir, out, *extra), score=score, engine=engine)
    trainer.fit()
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_combine_step_metrics_by_hand():
    parts = [({"train/entropy": 2.0, "train/loss": 1.0}, 30), ({"train/entropy": 1.0, "train/loss": 3.0}, 10)]
    m = combine_step_metrics(parts)
    assert m["train/entropy"] == pytest.approx((2.0 * 30 + 1.0 * 10) / 40)
    assert m["train/loss"] == pytest.approx((1.0 * 30 + 3.0 * 10) / 40)


KEYS = ("train/entropy", "train/kl", "train/ratio", "moe/balance_loss", "moe/z_loss", "train/logprob_mismatch")


def test_metrics_aggregate_every_mini_batch_and_epoch(tmp_path, ringrl_moe_dir, ringrl_util):
    """With weights that do not move (lr 1e-30), a step split into 2 epochs x 2 mini-batches must
    report the same per-token means as one pass over the whole batch; the last mini-batch alone
    would not."""
    one = run(ringrl_moe_dir, tmp_path / "one", ringrl_util.parity_score, "optim.lr=1e-30")[0]
    split = run(
        ringrl_moe_dir,
        tmp_path / "split",
        ringrl_util.parity_score,
        "optim.lr=1e-30",
        "ppo_epochs=2",
        "mini_batches=2",
    )[0]
    assert one["train/tokens"] == split["train/tokens"]
    for k in KEYS:
        assert split[k] == pytest.approx(one[k], rel=1e-4, abs=1e-7), k


def test_mismatch_is_against_pi_old_with_several_updates(tmp_path, ringrl_moe_dir, ringrl_util):
    m = run(
        ringrl_moe_dir,
        tmp_path / "ppo",
        ringrl_util.parity_score,
        "optim.lr=1e-2",
        "ppo_epochs=2",
        "mini_batches=2",
        "steps=2",
    )
    for r in m:
        assert abs(r["train/ratio"] - 1) > 1e-3  # the weights moved between passes
        assert r["train/logprob_mismatch"] < 1e-5  # engine vs pi_old: the same weights, fp32
        assert r["train/correction_weight_mean"] == 1.0 and r["train/correction_masked_fraction"] == 0.0


class ShiftedEngine:
    """The real engine, reporting log-prob + shift at every even response position (a crafted gap)."""

    def __init__(self, inner: HFEngine, shift: float, every: int = 2):
        self.inner, self.shift, self.every, self.seen = inner, shift, every, []

    def generate(self, prompts, **kw):
        out = self.inner.generate(prompts, **kw)
        out = [
            [
                replace(
                    c, logprobs=[x + (self.shift if t % self.every == 0 else 0.0) for t, x in enumerate(c.logprobs)]
                )
                for c in g
            ]
            for g in out
        ]
        self.seen.extend(c for g in out for c in g)
        return out


@pytest.mark.parametrize("mode", ["icepop", "tis"])
def test_correction_reaches_the_loss(tmp_path, ringrl_moe_dir, ringrl_util, mode):
    from ringrl.models.loading import load_policy

    model, tok = load_policy(ringrl_moe_dir, "cpu")
    # icepop: k = exp(-1) = 0.37 < 0.5 on even positions -> dropped; tis: k = exp(0.5) = 1.65 < 2 kept as weight
    shift, every = (1.0, 2) if mode == "icepop" else (-0.5, 1)
    cfg = cfg_for(ringrl_moe_dir, tmp_path / mode, f"loss.correction={mode}")
    trainer = RLTrainer(cfg, score=ringrl_util.parity_score)
    engine = ShiftedEngine(HFEngine(trainer.model, trainer.tokenizer), shift, every)
    trainer.engine = engine
    trainer.fit()
    r = json.loads((tmp_path / mode / "metrics.jsonl").read_text().splitlines()[0])
    lengths = [len(c.token_ids) for c in engine.seen]
    if mode == "icepop":
        masked = sum((n + 1) // 2 for n in lengths) / sum(lengths)
        assert r["train/correction_masked_fraction"] == pytest.approx(masked, abs=1e-6)
        assert r["train/correction_weight_mean"] == pytest.approx(1 - masked, abs=1e-6)
    else:
        assert r["train/correction_masked_fraction"] == 0.0
        assert r["train/correction_weight_mean"] == pytest.approx(math.exp(0.5), rel=1e-4)
    assert r["train/logprob_mismatch"] == pytest.approx(abs(shift) * (masked if mode == "icepop" else 1), rel=1e-4)
    del model, tok


def group(gid, rewards, length=3):
    return ScoredGroup(gid, [Sample(gid, i, [1], [2] * length, reward=r) for i, r in enumerate(rewards)])


def test_refill_policies_by_hand():
    cfg = FormerConfig(budget_tokens=20)
    groups = [group("a", [0, 1], 4), group("b", [1, 1], 4)]  # 16 tokens in the pool
    assert c3po_needs_more(groups, [], cfg, 5) == 5
    assert c3po_needs_more(groups, [Sample("c", 0, [1], [2] * 4)], cfg, 5) == 0  # carry fills it
    assert c3po_needs_more(groups, [], replace(cfg, fill="train_fewer"), 5) == 0
    assert dapo_needs_more(groups, [], cfg, 3) == 2  # one informative group of 3 wanted
    assert dapo_needs_more(groups, [], replace(cfg, dynamic_sampling=False), 3) == 0
    more = [*groups, group("c", [0, 1]), group("d", [1, 0])]
    assert [g.group_id for g in dapo_keep_groups(more, cfg, 2)] == ["a", "c", "b"]


def test_trainer_names_no_algorithm():
    import inspect

    import ringrl.rl.trainer as t

    src = inspect.getsource(t.RLTrainer)
    assert "cfg.algo ==" not in src and "informative_groups" not in src and "budget_tokens" not in src
