"""The algorithms' records compared whole (every stat, the name and the denominator in
words), config bounds with the key each error names, and the MoE terms' defaults and
mask against hand-computed values. Written to kill the mutants benchmarks/mutation.sh
found surviving in ringrl/algorithms/ (see docs/testing.md)."""

from __future__ import annotations

import math

import pytest
import torch

from ringrl.algorithms.c3po import c3po_needs_more, form_c3po_batch, permutation
from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.dapo import dapo_keep_groups, dapo_needs_more, form_dapo_batch
from ringrl.algorithms.formers import get_fill_policy
from ringrl.algorithms.grpo import form_grpo_batch
from ringrl.algorithms.microbatch import pack_by_tokens, split_by_tokens
from ringrl.algorithms.moe import moe_aux_loss
from ringrl.algorithms.types import ScoredGroup
from ringrl.errors import ConfigError

from .helpers import IdentityOrder, group


@pytest.mark.parametrize(
    "cfg, key, message",
    [
        (FormerConfig(budget_tokens=0), "budget_tokens", "must be >= 1, got 0"),
        (FormerConfig(max_age=-1), "max_age", "must be >= 0, got -1"),
        (FormerConfig(leftover="keep"), "leftover", "must be 'drop' or 'carry', got 'keep'"),  # type: ignore[arg-type]
        (FormerConfig(fill="more"), "fill", "must be 'sample_more' or 'train_fewer', got 'more'"),  # type: ignore[arg-type]
    ],
)
def test_former_config_errors_name_the_key(cfg: FormerConfig, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert e.value.key == key and str(e.value) == f"config key '{key}': {message}"


def test_former_config_bounds_are_valid() -> None:
    FormerConfig(budget_tokens=1, max_age=0, leftover="carry").validate()
    FormerConfig(budget_tokens=1, max_age=0, leftover="drop").validate()
    FormerConfig(fill="sample_more").validate()
    FormerConfig(fill="train_fewer").validate()


def test_c3po_refill_stops_exactly_when_the_pool_reaches_phi() -> None:
    """``c3po_needs_more``: ``prompts`` more while carry + groups hold fewer than Phi tokens; 0 at
    Phi and above, and 0 always with ``fill=train_fewer``."""
    groups = [group(0, [3, 2]), group(1, [4])]  # 9 tokens
    carry = group(9, [2]).samples  # 2 more: the pool holds 11
    for phi, want in ((10, 0), (11, 0), (12, 7)):
        assert c3po_needs_more(groups, carry, FormerConfig(budget_tokens=phi), 7) == want, phi
    assert c3po_needs_more(groups, [], FormerConfig(budget_tokens=10), 7) == 7  # 9 < 10 without the carry
    assert c3po_needs_more(groups, [], FormerConfig(budget_tokens=9), 7) == 0
    assert c3po_needs_more([], [], FormerConfig(budget_tokens=1), 3) == 3
    assert c3po_needs_more(groups, carry, FormerConfig(budget_tokens=12, fill="train_fewer"), 7) == 0


def dapo_pool() -> list[ScoredGroup]:
    return [
        group("a", [2, 2], rewards=[0.0, 1.0]),  # informative
        group("b", [2, 2], rewards=[1.0, 1.0]),  # all equal
        group("c", [2, 2], rewards=[1.0, 0.0]),  # informative
        group("d", [2], rewards=[1.0]),  # one sample: nothing to compare
        group("e", [2, 2, 2], rewards=[0.5, 0.5, 0.25]),  # informative
    ]


def test_dapo_refill_counts_the_informative_groups_still_missing() -> None:
    pool, cfg = dapo_pool(), FormerConfig()
    assert [dapo_needs_more(pool, [], cfg, n) for n in (5, 4, 3, 2, 1, 0)] == [2, 1, 0, 0, 0, 0]
    assert dapo_needs_more([], [], cfg, 4) == 4
    assert dapo_needs_more(pool[:2], group(9, [1, 1]).samples, cfg, 4) == 3  # carry is not a group
    assert dapo_needs_more([], [], FormerConfig(dynamic_sampling=False), 4) == 0


def test_dapo_keeps_at_most_prompts_informative_groups_then_the_rest() -> None:
    pool, cfg = dapo_pool(), FormerConfig()
    ids = lambda gs: [g.group_id for g in gs]  # noqa: E731
    assert ids(dapo_keep_groups(pool, cfg, 2)) == ["a", "c", "b", "d"]
    assert ids(dapo_keep_groups(pool, cfg, 3)) == ["a", "c", "e", "b", "d"]
    assert ids(dapo_keep_groups(pool, cfg, 9)) == ["a", "c", "e", "b", "d"]
    assert ids(dapo_keep_groups(pool, cfg, 0)) == ["b", "d"]
    assert ids(dapo_keep_groups(pool, FormerConfig(dynamic_sampling=False), 2)) == ["a", "b", "c", "d", "e"]


def test_fill_policies_by_former_name() -> None:
    below_phi = [group(0, [1, 1])]  # 2 tokens, far below the default Phi
    cfg = FormerConfig()
    grpo = get_fill_policy("grpo")
    assert grpo.needs_more(below_phi, [], cfg, 5) == 0  # one rollout round per step
    assert grpo.keep(dapo_pool(), cfg, 1) == dapo_pool()  # every group, in order
    assert get_fill_policy("c3po").needs_more(below_phi, [], cfg, 5) == 5
    assert get_fill_policy("c3po").keep(dapo_pool(), cfg, 1) == dapo_pool()
    dapo = get_fill_policy("dapo")
    assert dapo.needs_more(dapo_pool(), [], cfg, 4) == 1
    assert [g.group_id for g in dapo.keep(dapo_pool(), cfg, 1)] == ["a", "b", "d"]
    with pytest.raises(ConfigError) as e:
        get_fill_policy("ppo")
    assert e.value.key == "algo" and str(e.value) == (
        "config key 'algo': unknown algorithm 'ppo'; choose one of c3po, grpo, dapo"
    )


def test_grpo_batch_record() -> None:
    fb = form_grpo_batch([group(0, [2, 4])], group(9, [3]).samples, FormerConfig(), None)
    assert (fb.algo, fb.leftover, fb.denominator) == ("grpo", [], "groups * K * |y_i| (per response, Eq. 1)")
    assert fb.stats == {"tokens": 6, "responses": 2, "shortfall_tokens": 0, "dropped_groups": 0, "dropped_responses": 1}


def test_dapo_batch_record() -> None:
    g = group(0, [2, 0, 3], rewards=[0.0, 1.0, 1.0])  # an empty response is not trained
    fb = form_dapo_batch([g, group(1, [4, 4], rewards=[1.0, 1.0])], group(9, [3, 3]).samples, FormerConfig(), None)
    assert (fb.algo, fb.leftover, fb.denominator) == ("dapo", [], "T_total = 5 (step's tokens)")
    assert [(s.sample.index, s.n_tokens) for s in fb.selected] == [(0, 2), (2, 3)]
    assert fb.stats == {
        "tokens": 5,
        "responses": 2,
        "shortfall_tokens": 0,
        "dropped_groups": 1,
        "dropped_responses": 2 + 2,  # the uninformative group's two and the two carried ones
    }


def test_c3po_empty_pool() -> None:
    fb = form_c3po_batch([], [], FormerConfig(budget_tokens=4), IdentityOrder())
    assert fb.selected == [] and fb.leftover == []
    assert fb.stats["shortfall_tokens"] == 4 and fb.stats["tokens"] == 0
    fb = form_c3po_batch([group(0, [0, 0])], [], FormerConfig(budget_tokens=4, leftover="carry"), IdentityOrder())
    assert fb.selected == [] and fb.leftover == [] and fb.stats["pool_responses"] == 2


def test_permutation_rejects_other_rngs_by_name() -> None:
    with pytest.raises(TypeError) as e:
        permutation(3, "seed")
    assert str(e.value) == "rng must be random.Random, numpy.random.Generator or int, got str"
    with pytest.raises(TypeError, match="got bool"):
        permutation(3, True)


@pytest.mark.parametrize("split", [split_by_tokens, pack_by_tokens])
def test_micro_batch_token_bound(split) -> None:
    assert split([1, 1], 1) == [[0], [1]]  # max_tokens = 1 is valid
    with pytest.raises(ValueError) as e:
        split([1], 0)
    assert str(e.value) == "max_tokens must be >= 1, got 0"


def test_moe_aux_loss_defaults_mask_and_metric_names() -> None:
    # one layer, 3 tokens, 2 experts, top-1; the third token is padding with extreme logits
    logits_TE = torch.tensor([[2.0, 0.0], [0.0, 2.0], [9.0, -9.0]])
    mask_T = torch.tensor([1, 1, 0])
    loss, m = moe_aux_loss([logits_TE], 1, mask_T)
    assert loss.item() == 0.0  # both alphas default to 0
    assert set(m) == {"moe/balance_loss", "moe/z_loss", "moe/max_expert_load", "moe/expert_load"}
    # by hand over the two real tokens: P = (0.5, 0.5), F = (0.5, 0.5) -> B = 2 * 0.5 = 1
    assert m["moe/balance_loss"].item() == pytest.approx(1.0)
    lse = math.log(math.exp(2.0) + 1.0)
    assert m["moe/z_loss"].item() == pytest.approx(lse**2)
    assert m["moe/expert_load"].tolist() == [[0.5, 0.5]] and m["moe/max_expert_load"].item() == 0.5
    loss, _ = moe_aux_loss([logits_TE], 1, mask_T, alpha_balance=0.1, alpha_zloss=0.01)
    assert loss.item() == pytest.approx(0.1 * 1.0 + 0.01 * lse**2)
    unmasked, mu = moe_aux_loss([logits_TE], 1)
    assert mu["moe/expert_load"][0].tolist() == pytest.approx([2 / 3, 1 / 3])  # the padding counts without a mask


def test_c3po_batch_record() -> None:
    carried = group(9, [4], age=1).samples
    fb = form_c3po_batch(
        [group(0, [3, 5, 2])], carried, FormerConfig(budget_tokens=9, leftover="carry", max_age=1), IdentityOrder()
    )
    # pool order: carried (4), then 3, 5, 2; Phi = 9 -> 4 + 3 + 2 of the 5; the 2 is left over
    assert (fb.algo, fb.denominator) == ("c3po", "Phi = 9 (constant)")
    assert [(s.sample.group_id, s.n_tokens) for s in fb.selected] == [(9, 4), (0, 3), (0, 2)]
    assert [(s.group_id, s.index, s.age) for s in fb.leftover] == [(0, 2, 1)]
    assert fb.stats == {
        "tokens": 9,
        "responses": 3,
        "budget_tokens": 9,
        "shortfall_tokens": 0,
        "cut_tokens": 3,
        "pool_tokens": 14,
        "pool_responses": 4,
        "carried_in": 1,
        "carried_trained": 1,
        "leftover_responses": 1,
        "dropped_responses": 0,
        "dropped_groups": 0,
    }


def test_select_budget_and_balance_errors() -> None:
    from ringrl.algorithms.c3po import select_budget
    from ringrl.algorithms.microbatch import balance_across_ranks

    with pytest.raises(ValueError) as e:
        select_budget([1], 0)
    assert str(e.value) == "budget_tokens must be >= 1, got 0"
    with pytest.raises(ValueError) as e:
        select_budget([2, -1], 5)
    assert str(e.value) == "negative length -1"
    (one,) = balance_across_ranks([3, 1, 2], 1)  # one rank is valid and gets everything
    assert sorted(one) == [0, 1, 2]
    with pytest.raises(ValueError) as e:
        balance_across_ranks([1], 0)
    assert str(e.value) == "world_size must be >= 1, got 0"


def test_unknown_algorithm_error() -> None:
    from ringrl.algorithms.formers import get_batch_former

    with pytest.raises(ConfigError) as e:
        get_batch_former("ppo")
    assert e.value.key == "algo"
    assert str(e.value) == "config key 'algo': unknown algorithm 'ppo'; choose one of c3po, grpo, dapo"


def test_grpo_advantages_defaults_dtype_and_flat_groups() -> None:
    import statistics

    from ringrl.algorithms.advantages import assign_advantages, grpo_advantages

    # default eps = 1e-6: A = +-0.5 / (std + 1e-6) with the unbiased std sqrt(0.5)
    adv = grpo_advantages(torch.tensor([[0, 1]]))  # integer rewards are promoted
    want = 0.5 / (math.sqrt(0.5) + 1e-6)
    assert adv.dtype == torch.float32 and adv[0].tolist() == pytest.approx([-want, want], rel=1e-6)
    # a flat group is exactly 0 even when its float mean is not exactly its value, whatever the other groups hold
    adv = grpo_advantages(torch.tensor([[0.1, 0.1, 0.1], [0.0, 0.2, 0.1]], dtype=torch.float64))
    assert adv[0].tolist() == [0.0, 0.0, 0.0]
    assert adv[1].tolist() == pytest.approx([-1 / (0.1 + 1e-6) * 0.1, 0.1 / (0.1 + 1e-6), 0.0], rel=1e-12)
    # assign_advantages: float64, default eps, each group on its own
    rewards = [0.1, 0.7, 0.3]
    (g,) = assign_advantages([group(0, [1, 1, 1], rewards=rewards)])
    mean, std = statistics.fmean(rewards), statistics.stdev(rewards)
    assert [s.advantage for s in g.samples] == pytest.approx([(r - mean) / (std + 1e-6) for r in rewards], rel=1e-12)


def test_kl_k3_clamps_both_ways() -> None:
    from ringrl.algorithms.losses import MAX_LOG_RATIO, kl_k3

    lp = torch.tensor([[0.0, 0.0, 0.0]])
    ref = torch.tensor([[30.0, -30.0, 1.0]])  # d = ref - lp
    m = MAX_LOG_RATIO
    want = [math.exp(m) - m - 1, math.exp(-m) + m - 1, math.exp(1.0) - 2.0]
    assert kl_k3(lp, ref)[0].tolist() == pytest.approx(want, rel=1e-6)


def test_policy_loss_argument_checks() -> None:
    from ringrl.algorithms.losses import policy_loss

    lp, old, adv, w = torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2)
    policy_loss(lp, old, adv, w, eps_low=0.0, eps_high=0.0)  # both bounds may be 0
    for eps_low, eps_high in ((-0.1, 0.2), (0.2, -0.1), (1.0, 0.2)):
        with pytest.raises(ValueError) as e:
            policy_loss(lp, old, adv, w, eps_low=eps_low, eps_high=eps_high)
        assert str(e.value) == f"need 0 <= eps_low < 1 and eps_high >= 0, got {eps_low}, {eps_high}"
    with pytest.raises(ValueError) as e:
        policy_loss(lp, old, adv, w, beta=0.1)
    assert str(e.value) == "beta != 0 needs ref_logprobs_BT"
    with pytest.raises(ValueError) as e:
        policy_loss(lp, old, adv, w, alpha_entropy=0.1)
    assert str(e.value) == "alpha_entropy != 0 needs entropy_BT"


def _loss(lp: list[float], old: list[float], adv: list[float], **kw):
    from ringrl.algorithms.losses import policy_loss

    n = len(lp)
    return policy_loss(
        torch.tensor([lp]), torch.tensor([old]), torch.tensor([adv]), torch.ones(1, n), **kw
    )  # per-token advantages [1, n]


def test_clip_fractions_are_strict_and_need_a_signed_advantage() -> None:
    # ratio exactly 1 with zero clip range: on the bounds, not past them
    _, m = _loss([0.0, 0.0], [0.0, 0.0], [-1.0, 1.0], eps_low=0.0, eps_high=0.0)
    assert m["clip_fraction"].item() == 0.0
    # ratio 1 is inside [0.8, 1.2]
    _, m = _loss([0.0], [0.0], [-1.0], eps_low=0.2, eps_high=0.2)
    assert m["clip_fraction_low"].item() == 0.0
    # far outside the band, but with advantage 0 or of the other sign: the clip removes no gradient
    _, m = _loss([-1.0, 1.0, -1.0, 1.0], [0.0] * 4, [0.0, 0.0, 0.5, -0.5])
    assert m["clip_fraction_low"].item() == 0.0 and m["clip_fraction_high"].item() == 0.0
    _, m = _loss([-1.0, 1.0], [0.0] * 2, [-0.5, 0.5])
    assert m["clip_fraction_low"].item() == 0.5 and m["clip_fraction_high"].item() == 0.5


def test_ratio_metric_and_log_ratio_clamp() -> None:
    from ringrl.algorithms.losses import MAX_LOG_RATIO

    _, m = _loss([0.5], [0.0], [1.0])  # one token: the mean is the value itself
    assert m["ratio"].item() == pytest.approx(math.exp(0.5)) and m["tokens"].item() == 1.0
    _, m = _loss([30.0], [0.0], [1.0], eps_high=1e12)
    assert m["ratio"].item() == pytest.approx(math.exp(MAX_LOG_RATIO), rel=1e-5)
    _, m = _loss([-30.0], [0.0], [1.0])
    assert m["ratio"].item() == pytest.approx(math.exp(-MAX_LOG_RATIO), rel=1e-5)


def test_loss_dtype_follows_the_log_probs() -> None:
    from ringrl.algorithms.losses import policy_loss

    loss, _ = policy_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, dtype=torch.float64), torch.ones(1, 2))
    assert loss.dtype == torch.float32


def test_kl_and_entropy_terms_at_coefficient_one() -> None:
    from ringrl.algorithms.losses import kl_k3, policy_loss

    lp, old = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.0, -2.0]])
    ref, ent = torch.tensor([[-1.5, -1.0]]), torch.tensor([[0.3, 0.7]])
    w, adv = torch.tensor([[0.5, 0.5]]), torch.tensor([1.0])
    base, _ = policy_loss(lp, old, adv, w)
    with_kl, _ = policy_loss(lp, old, adv, w, beta=1.0, ref_logprobs_BT=ref)
    assert with_kl.item() == pytest.approx(base.item() + 0.5 * kl_k3(lp, ref).sum().item())
    with_ent, _ = policy_loss(lp, old, adv, w, alpha_entropy=1.0, entropy_BT=ent)
    assert with_ent.item() == pytest.approx(base.item() - 0.5 * (0.3 + 0.7))


def test_moe_terms_accept_batched_logits_and_check_shapes() -> None:
    from ringrl.algorithms.moe import expert_load, load_balance_loss, router_z_loss

    g = torch.Generator().manual_seed(0)
    logits_BTE = torch.randn(2, 3, 5, generator=g)
    mask_BT = torch.tensor([[1, 1, 0], [1, 0, 0]])
    flat_TE = logits_BTE.reshape(6, 5)
    assert load_balance_loss([logits_BTE], 2, mask_BT).item() == pytest.approx(
        load_balance_loss([flat_TE], 2, mask_BT.reshape(6)).item()
    )
    assert router_z_loss([logits_BTE], mask_BT).item() == pytest.approx(router_z_loss([flat_TE], mask_BT).item())
    one = expert_load([torch.tensor([[0.0, 3.0, 1.0]])], 1)  # a single token, no mask
    assert one.tolist() == [[0.0, 1.0, 0.0]]
    with pytest.raises(ValueError) as e:
        expert_load([flat_TE], 2, torch.ones(4))
    assert str(e.value) == "mask has 4 elements but router logits have 6 tokens"
    with pytest.raises(ValueError) as e:
        expert_load([flat_TE], 6)
    assert str(e.value) == "top_k must be in [1, 5], got 6"


def test_moe_terms_move_the_mask_to_the_logits_device() -> None:
    """The attention mask may live on another device than the router logits (a CPU mask with GPU
    logits); the terms follow the logits. The meta device stands in for a GPU on a CPU-only
    machine: logits there and a CPU mask give meta results of the right shape, not an error."""
    from ringrl.algorithms.moe import expert_load, load_balance_loss, router_z_loss

    logits_TE = torch.zeros(6, 4, device="meta")
    mask_T = torch.tensor([1, 1, 0, 1, 0, 1])
    for out, shape in (
        (load_balance_loss([logits_TE], 2, mask_T), ()),
        (router_z_loss([logits_TE], mask_T), ()),
        (expert_load([logits_TE], 2, mask_T), (1, 4)),
    ):
        assert out.device.type == "meta" and tuple(out.shape) == shape
