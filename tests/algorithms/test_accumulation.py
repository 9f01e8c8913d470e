"""Accumulation equivalence (issue 4): for each batch former, the gradient of one batch
equals the sum of the gradients of any micro-batch split, on one process or split
across data-parallel ranks, because the denominator is fixed before any backward pass."""

import random

import pytest
import torch

from ringrl.algorithms.advantages import assign_advantages
from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.formers import get_batch_former
from ringrl.algorithms.losses import policy_loss, token_entropy, token_logprobs
from ringrl.algorithms.microbatch import balance_across_ranks, split_by_tokens
from ringrl.algorithms.types import Sample, ScoredGroup

V, D = 7, 4


def _policy():
    torch.manual_seed(0)
    return torch.nn.Embedding(V, D), torch.nn.Linear(D, V)


def _groups(seed):
    rng = random.Random(seed)
    groups = []
    for g in range(3):
        rewards = [float(rng.random() < 0.5) for _ in range(4)]
        rewards[0], rewards[1] = 1.0, 0.0  # informative
        groups.append(
            ScoredGroup(
                g,
                [
                    Sample(g, i, [rng.randrange(V)], [rng.randrange(V) for _ in range(rng.randint(1, 6))], reward=r)
                    for i, r in enumerate(rewards)
                ],
            )
        )
    groups.append(ScoredGroup(3, [Sample(3, i, [1], [2] * (i + 1), reward=1.0) for i in range(2)]))  # all equal
    return assign_advantages(groups)


def _loss(embed, head, selected, noise, full_response=False, with_metrics=False):
    """policy_loss on a padded micro-batch; `full_response` pads the cut tail with weight 0."""
    rows = [s.sample.response_ids if full_response else s.response_ids for s in selected]
    T = max(len(r) for r in rows)
    inputs_BT = torch.zeros(len(rows), T, dtype=torch.long)
    tokens_BT = torch.zeros(len(rows), T, dtype=torch.long)
    w_BT = torch.zeros(len(rows), T)
    old_BT = torch.zeros(len(rows), T)
    ref_BT = torch.zeros(len(rows), T)
    for b, (s, r) in enumerate(zip(selected, rows)):
        ctx = (s.sample.prompt_ids[-1:] + r)[: len(r)]
        inputs_BT[b, : len(r)] = torch.tensor(ctx)
        tokens_BT[b, : len(r)] = torch.tensor(r)
        w_BT[b, : s.n_tokens] = torch.tensor(s.weights)
        key = (s.sample.group_id, s.sample.index)
        old_BT[b, : len(r)] = noise[key][0][: len(r)]
        ref_BT[b, : len(r)] = noise[key][1][: len(r)]
    logits_BTV = head(embed(inputs_BT))
    lp_BT = token_logprobs(logits_BTV, tokens_BT)
    adv_B = torch.tensor([s.sample.advantage for s in selected])
    loss, metrics = policy_loss(
        lp_BT,
        lp_BT.detach() + old_BT,
        adv_B,
        w_BT,
        eps_low=0.2,
        eps_high=0.28,
        beta=0.05,
        ref_logprobs_BT=lp_BT.detach() + ref_BT,
        entropy_BT=token_entropy(logits_BTV),
        alpha_entropy=0.01,
    )
    return (loss, metrics) if with_metrics else loss


def _grad(params, loss_fn):
    for p in params:
        p.grad = None
    loss_fn().backward()
    return [p.grad.clone() for p in params]


def _ranks_then_micro_batches(lengths, world_size, max_tokens):
    """Data parallel: balance across ranks, then micro-batch within each rank."""
    out = []
    for rank in balance_across_ranks(lengths, world_size):
        out += [[rank[j] for j in mb] for mb in split_by_tokens([lengths[i] for i in rank], max_tokens)]
    return out


@pytest.mark.parametrize(
    "algo, cfg",
    [
        ("grpo", FormerConfig()),
        ("dapo", FormerConfig()),
        ("c3po", FormerConfig(budget_tokens=37)),  # cuts inside a response
        ("c3po", FormerConfig(budget_tokens=200)),  # shortfall
    ],
)
def test_micro_batch_split_sums_to_full_batch_gradient(algo, cfg):
    embed, head = _policy()
    params = list(embed.parameters()) + list(head.parameters())
    groups = _groups(seed=1)
    fb = get_batch_former(algo)(groups, [], cfg, random.Random(0))
    g = torch.Generator().manual_seed(2)
    # old/ref log-prob offsets large enough that every clip branch occurs
    noise = {
        (s.sample.group_id, s.sample.index): (0.4 * torch.randn(6, generator=g), 0.3 * torch.randn(6, generator=g))
        for s in fb.selected
    }
    sel = fb.selected
    full = _grad(params, lambda: _loss(embed, head, sel, noise, full_response=True))

    lengths = [s.n_tokens for s in sel]
    rng = random.Random(3)
    shuffled = list(range(len(sel)))
    rng.shuffle(shuffled)
    splits = [
        split_by_tokens(lengths, 6),
        split_by_tokens(lengths, 20),
        [[i] for i in range(len(sel))],
        [shuffled[:3], shuffled[3:]],
        _ranks_then_micro_batches(lengths, world_size=3, max_tokens=12),
    ]
    for split in splits:
        assert sorted(i for mb in split for i in mb) == list(range(len(sel)))
        total = [torch.zeros_like(p) for p in params]
        for mb in split:
            parts = _grad(params, lambda mb=mb: _loss(embed, head, [sel[i] for i in mb], noise))
            total = [t + p for t, p in zip(total, parts)]
        for a, b in zip(full, total):
            assert torch.allclose(a, b, atol=1e-6), (algo, split)
    assert any(p.abs().sum() > 0 for p in full)
    if algo == "c3po":
        assert fb.n_tokens == min(cfg.budget_tokens, sum(s.n_response for g in groups for s in g.samples))


def test_clip_branches_occur_and_per_micro_batch_mean_would_differ():
    """The fixture exercises clipping, and the test has power: re-normalising each micro-batch
    by its own token count (the token-mean bug) gives a different gradient."""
    from dataclasses import replace

    embed, head = _policy()
    params = list(embed.parameters()) + list(head.parameters())
    fb = get_batch_former("dapo")(_groups(seed=1), [], FormerConfig(), None)
    g = torch.Generator().manual_seed(2)
    noise = {
        (s.sample.group_id, s.sample.index): (0.4 * torch.randn(6, generator=g), 0.3 * torch.randn(6, generator=g))
        for s in fb.selected
    }
    sel = fb.selected
    _, m = _loss(embed, head, sel, noise, with_metrics=True)
    assert m["clip_fraction_low"] > 0 and m["clip_fraction_high"] > 0 and m["clip_fraction"] < 1
    full = _grad(params, lambda: _loss(embed, head, sel, noise))
    total = [torch.zeros_like(p) for p in params]
    for mb in split_by_tokens([s.n_tokens for s in sel], 10):
        n = sum(sel[i].n_tokens for i in mb)
        local = [
            replace(sel[i], token_weight=1.0 / n / len(split_by_tokens([s.n_tokens for s in sel], 10))) for i in mb
        ]
        parts = _grad(params, lambda local=local: _loss(embed, head, local, noise))
        total = [t + p for t, p in zip(total, parts)]
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(full, total))
