"""Routing replay wired through the RL step: the engine records each token's experts, the loss
pass replays them, and ``moe/routing_agreement`` is logged (1.0 by construction with replay on)."""

from __future__ import annotations

import pytest
import torch

from ringrl.models.routing import record, routing_agreement
from ringrl.rl.trainer import RLTrainer

from .test_rl_trainer import read_metrics, rl_config


def test_engine_records_the_routing_of_every_fed_token(ringrl_moe_dir):
    from ringrl.models.loading import load_policy
    from ringrl.rollout import HFEngine

    model, tok = load_policy(ringrl_moe_dir, "cpu", "float32")
    engine = HFEngine(model, tok, batch_size=8, record_routing=True)
    groups = engine.generate(["What is 1 + 2?", "Sort 3 1 2"], n=3, temperature=1.0, max_new_tokens=10, seed=0)
    for comps in groups:
        for c in comps:
            ids = torch.tensor([c.prompt_ids + c.token_ids])
            with torch.no_grad(), record(model) as rec:
                model(input_ids=ids)
            full_LTk = rec.call(0)
            # every token but the last sampled one was fed; in fp32 its routing equals a full forward's
            assert c.routing.shape == (full_LTk.shape[0], ids.shape[1] - 1, full_LTk.shape[-1])
            assert routing_agreement(c.routing, full_LTk[:, :-1]) == 1.0


@pytest.mark.parametrize("extra", [(), ("pack_sequences=true", "micro_batch_tokens=64"), ("mini_batches=2",)])
def test_replay_gives_agreement_one_and_composes(tmp_path, ringrl_moe_dir, ringrl_util, extra):
    out = tmp_path / "run"
    cfg = rl_config(ringrl_moe_dir, out, "rollout.routing_replay=true", "model.dtype=bfloat16", *extra)
    RLTrainer(cfg, score=ringrl_util.parity_score).fit()
    m = read_metrics(out)
    assert [r["moe/routing_agreement"] for r in m] == [1.0, 1.0, 1.0]
    assert all(r["moe/balance_loss"] > 0 and r["train/grad_norm"] > 0 for r in m)  # the MoE terms still train
    assert all(0.0 <= r["moe/router_agreement"] <= 1.0 for r in m)
    if "mini_batches=2" in extra:  # the second mini-batch trains after an update (lr 1e-2): its routers moved
        assert all(r["moe/router_agreement"] < 0.9 for r in m), [r["moe/router_agreement"] for r in m]


def test_replay_is_in_force_in_the_policy_pi_old_and_reference_passes(
    tmp_path, ringrl_moe_dir, ringrl_util, monkeypatch
):
    """A spy around ``replay``: every forward under it (the policy's loss pass, the pi_old pass of
    a second mini-batch, the reference model's pass) routes each token exactly as recorded."""
    import contextlib
    import inspect

    import ringrl.models.routing as routing

    real_replay, seen = routing.replay, []

    @contextlib.contextmanager
    def spy(model, indices, **kw):
        with routing.record(model, dtype=torch.long) as in_force, real_replay(model, indices, **kw) as handle:
            yield handle
        caller = inspect.stack()[2].function  # routing_pass (the policy) or sequence_logprobs
        seen.append((caller, model, [routing_agreement(handle.indices_LNk, c) for c in in_force.calls()]))

    monkeypatch.setattr(routing, "replay", spy)
    cfg = rl_config(ringrl_moe_dir, tmp_path / "run", "rollout.routing_replay=true", "mini_batches=2")
    trainer = RLTrainer(cfg, score=ringrl_util.parity_score)
    trainer.fit()
    policy, reference = trainer.model, trainer.ref_model
    assert reference is not None and reference is not policy
    kinds = {
        "policy": [a for c, m, a in seen if c == "routing_pass" and m is policy],
        "pi_old": [a for c, m, a in seen if c == "sequence_logprobs" and m is policy],
        "reference": [a for c, m, a in seen if c == "sequence_logprobs" and m is reference],
    }
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}  # every pass replayed at least once
    assert sum(map(len, kinds.values())) == len(seen)  # and no other
    assert all(agreement == [1.0] for v in kinds.values() for agreement in v)  # one forward each, as recorded


def test_agreement_is_logged_without_replay(tmp_path, ringrl_moe_dir, ringrl_util):
    out = tmp_path / "run"
    RLTrainer(rl_config(ringrl_moe_dir, out), score=ringrl_util.parity_score).fit()
    m = read_metrics(out)
    assert all(0.0 <= r["moe/routing_agreement"] <= 1.0 for r in m)
    assert m[0]["moe/routing_agreement"] == 1.0  # fp32, step 1: the trainer's weights are the engine's
    assert [r["moe/router_agreement"] for r in m] == [r["moe/routing_agreement"] for r in m]  # no replay: the same


def test_replay_on_a_dense_model_is_one_line(tmp_path, ringrl_dense_dir, capsys):
    from ringrl.cli import main

    code = main(["rl", f"model.path={ringrl_dense_dir}", f"out={tmp_path / 'r'}", "rollout.routing_replay=true"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("ringrl rl: error: config key 'rollout.routing_replay': the policy has no MoE")
    assert len(err.splitlines()) == 1
