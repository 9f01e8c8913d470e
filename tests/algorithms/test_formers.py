"""Batch formers against hand-computed selections and weights (Eq. 1, 2, 3, token-mean)."""

import random

import numpy as np
import pytest
import torch

from ringrl.algorithms.c3po import form_c3po_batch, permutation, select_budget
from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.dapo import form_dapo_batch, informative_groups
from ringrl.algorithms.formers import BATCH_FORMERS, get_batch_former, token_weights
from ringrl.algorithms.grpo import form_grpo_batch
from ringrl.algorithms.losses import policy_loss
from ringrl.errors import ConfigError

from .helpers import IdentityOrder, group

# ---- Eq. 3: select_budget -------------------------------------------------------------


@pytest.mark.parametrize(
    "lengths, phi, expected",
    [
        ([3, 4, 5], 7, [3, 4, 0]),  # exact hit at the end of a response
        ([3, 4, 5], 5, [3, 2, 0]),  # cut inside the second response
        ([3, 4, 5], 12, [3, 4, 5]),  # exact hit on the whole pool
        ([3, 4], 10, [3, 4]),  # shortfall: everything, 3 tokens short
        ([9, 2, 1], 4, [4, 0, 0]),  # first response longer than Phi
        ([0, 3, 0, 2], 4, [0, 3, 0, 1]),  # empty responses take nothing
        ([], 4, []),
    ],
)
def test_select_budget_by_hand(lengths, phi, expected):
    assert select_budget(lengths, phi) == expected


def test_select_budget_invariant_on_random_lengths():
    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randint(0, 20) for _ in range(rng.randint(0, 10))]
        phi = rng.randint(1, 120)
        taken = select_budget(lengths, phi)
        assert sum(taken) == min(phi, sum(lengths))
        n = max((i + 1 for i, k in enumerate(taken) if k), default=0)
        assert all(k == length for k, length in zip(taken[: n - 1], lengths))  # whole before the last
        assert sum(lengths[: n - 1]) < phi or n == 0 or sum(lengths) <= phi
    with pytest.raises(ValueError):
        select_budget([1], 0)


# ---- C3PO former ------------------------------------------------------------------------


def test_c3po_hand_example_cut_and_drop():
    groups = [group(0, [5, 3]), group(1, [4, 6])]
    fb = form_c3po_batch(groups, [], FormerConfig(budget_tokens=10), IdentityOrder())
    assert [(s.sample.group_id, s.sample.index, s.n_tokens) for s in fb.selected] == [(0, 0, 5), (0, 1, 3), (1, 0, 2)]
    assert token_weights(fb.selected) == [[0.1] * 5, [0.1] * 3, [0.1] * 2]
    assert fb.selected[2].response_ids == [3, 4]  # the kept prefix of the cut response
    assert fb.leftover == []
    assert fb.stats["tokens"] == 10 and fb.stats["cut_tokens"] == 2 and fb.stats["shortfall_tokens"] == 0
    assert fb.stats["dropped_responses"] == 1 and fb.stats["responses"] == 3
    assert fb.denominator == "Phi = 10 (constant)"


def test_c3po_carry_ages_and_max_age():
    old = group(9, [4, 4], age=1).samples  # carried from the previous step
    groups = [group(0, [3, 5])]
    cfg = FormerConfig(budget_tokens=5, leftover="carry", max_age=1)
    # pool order: old0 (4), old1 (4), new0 (3), new1 (5); Phi = 5 -> old0 whole, old1 cut to 1
    fb = form_c3po_batch(groups, old, cfg, IdentityOrder())
    assert [(s.sample.group_id, s.n_tokens) for s in fb.selected] == [(9, 4), (9, 1)]
    assert fb.stats["carried_in"] == 2 and fb.stats["carried_trained"] == 2
    # new samples carried with age 1; none expired here
    assert [(s.group_id, s.index, s.age) for s in fb.leftover] == [(0, 0, 1), (0, 1, 1)]
    # next step: Phi = 2 takes 2 tokens of the first; the carried one (age 1 -> 2 > max_age) expires
    fb2 = form_c3po_batch(
        [group(1, [2])], fb.leftover, FormerConfig(budget_tokens=2, leftover="carry", max_age=1), IdentityOrder()
    )
    assert [(s.sample.group_id, s.n_tokens) for s in fb2.selected] == [(0, 2)]
    assert [(s.group_id, s.age) for s in fb2.leftover] == [(1, 1)]
    assert fb2.stats["dropped_responses"] == 1 and fb2.stats["leftover_responses"] == 1
    # max_age = 0 with carry behaves as drop
    fb3 = form_c3po_batch(groups, [], FormerConfig(budget_tokens=3, leftover="carry", max_age=0), IdentityOrder())
    assert fb3.leftover == [] and fb3.stats["dropped_responses"] == 1


def test_c3po_shortfall_keeps_constant_denominator():
    fb = form_c3po_batch([group(0, [3, 4])], [], FormerConfig(budget_tokens=10), IdentityOrder())
    assert fb.stats["tokens"] == 7 and fb.stats["shortfall_tokens"] == 3
    assert sum(map(sum, token_weights(fb.selected))) == pytest.approx(0.7)
    assert all(s.token_weight == 0.1 for s in fb.selected)


def test_c3po_budget_exact_and_weights_sum_on_random_pools():
    rng = random.Random(1)
    for trial in range(20):
        groups = [group(g, [rng.randint(0, 30) for _ in range(4)]) for g in range(3)]
        phi = rng.randint(1, 200)
        fb = form_c3po_batch(groups, [], FormerConfig(budget_tokens=phi), random.Random(trial))
        pool = sum(s.n_response for g in groups for s in g.samples)
        assert fb.stats["tokens"] == min(phi, pool) == fb.n_tokens
        assert sum(map(sum, token_weights(fb.selected))) == pytest.approx(fb.n_tokens / phi)
        assert all(s.token_weight == 1.0 / phi for s in fb.selected)
        cut = [s for s in fb.selected if s.n_tokens < s.sample.n_response]
        assert len(cut) <= 1 and (not cut or cut[0] is fb.selected[-1])


def test_c3po_seeded_order_is_deterministic_across_rng_kinds():
    groups = [group(g, [3, 7, 2, 9]) for g in range(4)]
    cfg = FormerConfig(budget_tokens=25)

    def ids(fb):
        return [(s.sample.group_id, s.sample.index, s.n_tokens) for s in fb.selected]

    a = ids(form_c3po_batch(groups, [], cfg, random.Random(7)))
    assert a == ids(form_c3po_batch(groups, [], cfg, random.Random(7)))
    assert a == ids(form_c3po_batch(groups, [], cfg, 7))  # int seed = random.Random(seed)
    assert a != ids(form_c3po_batch(groups, [], cfg, random.Random(8)))
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    assert ids(form_c3po_batch(groups, [], cfg, g1)) == ids(form_c3po_batch(groups, [], cfg, g2))
    assert sorted(permutation(6, random.Random(0))) == list(range(6))
    with pytest.raises(TypeError):
        permutation(3, "seed")


# ---- GRPO former (Eq. 1) -----------------------------------------------------------------


def test_grpo_weights_by_hand_and_eq1():
    groups = [group(0, [2, 4], adv=[1.0, -1.0]), group(1, [1, 3], adv=[0.5, -0.5])]
    fb = form_grpo_batch(groups, [], FormerConfig(), None)
    # 1 / (G * K * |y_i|) with G = K = 2
    assert [s.token_weight for s in fb.selected] == pytest.approx([1 / 8, 1 / 16, 1 / 4, 1 / 12])
    assert fb.stats["tokens"] == 10 and fb.stats["responses"] == 4 and fb.leftover == []
    # policy_loss with these weights equals Eq. 1 written out: -(1/G) sum_g (1/K) sum_i (1/|y_i|) sum_t o_it
    g = torch.Generator().manual_seed(0)
    lens = [2, 4, 1, 3]
    old_BT = torch.randn(4, 4, generator=g)
    lp_BT = old_BT + 0.3 * torch.randn(4, 4, generator=g)
    adv_B = torch.tensor([s.sample.advantage for s in fb.selected])
    w_BT = torch.zeros(4, 4)
    for b, ws in enumerate(token_weights(fb.selected)):
        w_BT[b, : len(ws)] = torch.tensor(ws)
    loss, _ = policy_loss(lp_BT, old_BT, adv_B, w_BT)
    r = (lp_BT - old_BT).exp()
    o = torch.minimum(r * adv_B[:, None], r.clamp(0.8, 1.2) * adv_B[:, None])
    per_resp = [o[b, :n].sum() / n for b, n in enumerate(lens)]
    eq1 = -((per_resp[0] + per_resp[1]) / 2 + (per_resp[2] + per_resp[3]) / 2) / 2
    assert loss.item() == pytest.approx(eq1.item(), abs=1e-6)


def test_grpo_ragged_groups_and_empty_responses():
    fb = form_grpo_batch([group(0, [2, 0, 2]), group(1, [4])], [], FormerConfig(), None)
    # G = 2; group 0 has K = 3 (the empty response counts in K but has no tokens)
    assert [s.token_weight for s in fb.selected] == pytest.approx([1 / 12, 1 / 12, 1 / 8])


# ---- DAPO former (token-mean) and dynamic sampling ---------------------------------------


def test_informative_groups():
    gs = [
        group(0, [1, 1, 1], rewards=[1.0, 1.0, 1.0]),
        group(1, [1, 1], rewards=[0.0, 1.0]),
        group(2, [1, 1], rewards=[0.0, 0.0]),
        group(3, [1], rewards=[1.0]),
    ]
    kept, dropped = informative_groups(gs)
    assert [g.group_id for g in kept] == [1] and [g.group_id for g in dropped] == [0, 2, 3]


def test_dapo_token_mean():
    gs = [group(0, [2, 4], rewards=[0.0, 1.0]), group(1, [3, 5], rewards=[1.0, 1.0]), group(2, [1, 2])]
    fb = form_dapo_batch(gs, [], FormerConfig(), None)
    # group 1 is uninformative: T_total = 2 + 4 + 1 + 2 = 9
    assert fb.stats["tokens"] == 9 and fb.stats["dropped_groups"] == 1 and fb.stats["dropped_responses"] == 2
    assert all(s.token_weight == pytest.approx(1 / 9) for s in fb.selected)
    assert sum(map(sum, token_weights(fb.selected))) == pytest.approx(1.0)
    fb_all = form_dapo_batch(gs, [], FormerConfig(dynamic_sampling=False), None)
    assert fb_all.stats["tokens"] == 17 and fb_all.selected[0].token_weight == pytest.approx(1 / 17)
    empty = form_dapo_batch([gs[1]], [], FormerConfig(), None)
    assert empty.selected == [] and empty.stats["tokens"] == 0


# ---- registry and config -----------------------------------------------------------------


def test_registry_and_config_validation():
    assert set(BATCH_FORMERS) == {"c3po", "grpo", "dapo"}
    assert get_batch_former("c3po") is form_c3po_batch
    with pytest.raises(ConfigError, match="algo"):
        get_batch_former("ppo")
    with pytest.raises(ConfigError, match="budget_tokens"):
        FormerConfig(budget_tokens=0).validate()
    with pytest.raises(ConfigError, match="max_age"):
        FormerConfig(max_age=-1).validate()
    FormerConfig().validate()
