"""The trainer's loss pass on a real tiny MoE: any token micro-batch split of a formed batch
gives the one-batch gradient, for every batch former (the denominator is fixed before backward)."""

from __future__ import annotations

import random

import pytest
import torch

from ringrl.algorithms import FormerConfig, get_batch_former
from ringrl.algorithms.types import Sample
from ringrl.rl.config import LossConfig
from ringrl.rl.update import accumulate_gradients, build_micro_batches


@pytest.fixture(scope="module")
def models(ringrl_moe_dir, ringrl_util):
    from ringrl.models import load_policy

    model, tok = load_policy(ringrl_moe_dir, device="cpu")
    return model, ringrl_util.perturbed_reference(model), tok


def grads_for(model, ref, mbs, loss_cfg):
    model.zero_grad(set_to_none=True)
    m = accumulate_gradients(model, ref, mbs, loss_cfg, temperature=1.0, moe_top_k=2)
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}, m


@pytest.mark.parametrize("algo", ["c3po", "grpo", "dapo"])
def test_micro_batch_split_gives_the_one_batch_gradient(models, algo, ringrl_util):
    model, ref, tok = models
    # router terms are per micro-batch statistics (not a sum over tokens): off here, so the split is exact
    loss_cfg = LossConfig(eps_low=0.2, eps_high=0.28, beta=0.1, alpha_entropy=1e-2, alpha_balance=0.0, alpha_zloss=0.0)
    batch = get_batch_former(algo)(
        ringrl_util.random_groups(1, len(tok)), [], FormerConfig(budget_tokens=60), random.Random(0)
    )
    assert batch.n_tokens > 0
    if algo == "c3po":
        assert batch.n_tokens == 60
    one = build_micro_batches(batch.selected, tok.pad_token_id, max_tokens=1 << 20)
    many = build_micro_batches(batch.selected, tok.pad_token_id, max_tokens=40)
    assert len(one) == 1 and len(many) >= 3
    assert sum(mb.n_tokens for mb in many) == one[0].n_tokens == batch.n_tokens
    g1, m1 = grads_for(model, ref, one, loss_cfg)
    g2, m2 = grads_for(model, ref, many, loss_cfg)
    assert g1.keys() == g2.keys() and len(g1) == len(list(model.parameters()))
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], atol=1e-6, rtol=1e-4, msg=n)
    assert any(float(g.abs().max()) > 0 for g in g1.values())
    for k in ("train/loss", "train/entropy", "train/kl", "train/clip_fraction", "train/logprob_mismatch"):
        assert m2[k] == pytest.approx(m1[k], rel=1e-4, abs=1e-6), k
    assert m1["train/clip_fraction"] > 0 and m1["train/kl"] > 0
    assert m1["train/logprob_mismatch"] > 0


@pytest.mark.parametrize("algo", ["c3po", "grpo", "dapo"])
def test_packed_micro_batches_give_the_padded_gradient(models, algo, ringrl_util):
    """Packed rows (sequences end to end, positions restarting) match one padded batch:
    the block-diagonal mask keeps every sequence to itself, and the MoE terms see no pads."""
    model, ref, tok = models
    loss_cfg = LossConfig(eps_low=0.2, eps_high=0.28, beta=0.1, alpha_entropy=1e-2, alpha_balance=0.0, alpha_zloss=0.0)
    batch = get_batch_former(algo)(
        ringrl_util.random_groups(1, len(tok)), [], FormerConfig(budget_tokens=60), random.Random(0)
    )
    padded = build_micro_batches(batch.selected, tok.pad_token_id, max_tokens=1 << 20)
    longest = max(len(s.sample.prompt_ids) + s.n_tokens for s in batch.selected)
    packed = build_micro_batches(batch.selected, tok.pad_token_id, max_tokens=2 * longest, pack=True)
    assert len(packed) >= 2 and all(mb.input_ids_BT.shape[0] == 1 for mb in packed)
    assert all(bool(mb.attention_mask_BT.all()) for mb in packed)  # no padding at all
    assert sum(mb.input_ids_BT.shape[1] for mb in packed) == sum(
        len(s.sample.prompt_ids) + s.n_tokens for s in batch.selected
    )
    assert any(int((mb.position_ids_BT == 0).sum()) >= 2 for mb in packed)  # several sequences in one row
    g1, m1 = grads_for(model, ref, padded, loss_cfg)
    g2, m2 = grads_for(model, ref, packed, loss_cfg)
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], atol=1e-6, rtol=1e-4, msg=n)
    for k in ("train/loss", "train/entropy", "train/kl", "train/clip_fraction", "train/logprob_mismatch"):
        assert m2[k] == pytest.approx(m1[k], rel=1e-4, abs=1e-6), k


def test_micro_batch_weights_sit_on_the_response_tokens(models):
    """Weights align with the shifted targets: position p-1+t predicts response token t."""
    _, _, tok = models
    s = Sample(
        "g", 0, [7, 8, 9], [10, 11, 12, 13], rollout_logprobs=[-1.0, -2.0, -3.0, -4.0], reward=1.0, advantage=0.5
    )
    from ringrl.algorithms.types import SelectedSample

    mb = build_micro_batches([SelectedSample(s, 3, 0.25)], tok.pad_token_id, 1 << 20)[0]
    assert mb.input_ids_BT.tolist() == [[7, 8, 9, 10, 11, 12]]  # the cut token 13 is not fed
    assert mb.weights_BT.tolist() == [[0.0, 0.0, 0.25, 0.25, 0.25]]
    assert mb.rollout_logprobs_BT.tolist() == [[0.0, 0.0, -1.0, -2.0, -3.0]]
    assert mb.advantages.tolist() == [0.5] and mb.n_tokens == 3 and mb.old_logprobs_BT is None
