"""Token log-probs, entropy, KL k3 and the clipped policy loss against closed forms."""

import math

import pytest
import torch
import torch.nn.functional as F

from ringrl.algorithms.losses import kl_k3, policy_loss, token_entropy, token_logprobs


def _logits(B=2, T=3, V=5, seed=0):
    return torch.randn(B, T, V, generator=torch.Generator().manual_seed(seed))


def test_token_logprobs_matches_cross_entropy():
    logits_BTV = _logits()
    tokens_BT = torch.tensor([[0, 4, 2], [1, 1, 3]])
    ref_BT = -F.cross_entropy(logits_BTV.transpose(1, 2), tokens_BT, reduction="none")
    assert torch.allclose(token_logprobs(logits_BTV, tokens_BT), ref_BT, atol=1e-6)
    # bf16 path (row-wise upcast) against the float32 answer on the same rounded logits
    half = token_logprobs(logits_BTV.bfloat16(), tokens_BT)
    ref_half = -F.cross_entropy(logits_BTV.bfloat16().float().transpose(1, 2), tokens_BT, reduction="none")
    assert half.dtype == torch.float32 and torch.allclose(half, ref_half, atol=1e-6)


def test_entropy_closed_forms():
    assert torch.allclose(token_entropy(torch.zeros(2, 3, 7)), torch.full((2, 3), math.log(7)), atol=1e-6)
    # probs [1/2, 1/4, 1/4] -> 1.5 ln 2; a single finite logit (others -inf) -> 0
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]], [[1.0, 0.0, 0.0]]]))
    got = token_entropy(logits)
    assert got[0, 0].item() == pytest.approx(1.5 * math.log(2), abs=1e-6)
    assert got[1, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(token_entropy(torch.zeros(1, 2, 7).bfloat16()), torch.full((1, 2), math.log(7)), atol=1e-6)


def test_entropy_gradient_matches_reference():
    logits = _logits().requires_grad_(True)
    token_entropy(logits).sum().backward()
    other = _logits().requires_grad_(True)
    logp = F.log_softmax(other, -1)
    (-(logp.exp() * logp).sum(-1)).sum().backward()
    assert torch.allclose(logits.grad, other.grad, atol=1e-6)


def test_kl_k3_by_hand_and_expectation_is_exact_kl():
    # d = ln .25 - ln .5 = -ln 2: exp(d) - d - 1 = 0.5 + ln 2 - 1
    got = kl_k3(torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]]))
    assert got.item() == pytest.approx(0.5 + math.log(2) - 1, abs=1e-7)
    assert kl_k3(torch.zeros(2, 2), torch.zeros(2, 2)).abs().max().item() == 0.0
    # E_{x~p}[k3] = KL(p || q), by enumeration of a 4-way categorical
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    q = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    expectation = (p * kl_k3(p.log()[None], q.log()[None])[0]).sum()
    exact = (p * (p / q).log()).sum()
    assert expectation.item() == pytest.approx(exact.item(), abs=1e-12)
    assert (kl_k3(p.log()[None], q.log()[None]) >= 0).all()


# Each token is one clip branch; eps_low=0.2, eps_high=0.28 (asymmetric, clip-higher).
#        r     A    branch                              surrogate          d surr / d logprob
CASES = [
    (1.50, +1.0),  # A>0, r > 1+eps_high: clipped high     1.28               0
    (0.50, -1.0),  # A<0, r < 1-eps_low:  clipped low      -0.8               0
    (1.10, +2.0),  # inside                               2.2                A r = 2.2
    (1.50, -1.0),  # A<0, r > 1+eps_high: min keeps r A    -1.5               -1.5
    (0.50, +1.0),  # A>0, r < 1-eps_low:  min keeps r A    0.5                0.5
    (1.25, +1.0),  # inside only because eps_high=0.28     1.25               1.25
]
SURR = [1.28, -0.8, 2.2, -1.5, 0.5, 1.25]
DSURR = [0.0, 0.0, 2.2, -1.5, 0.5, 1.25]
W = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def _case_tensors():
    n = len(CASES)
    old_BT = torch.full((n, 2), -1.0)
    lp_BT = old_BT + torch.log(torch.tensor([[r, 1.0] for r, _ in CASES]))
    lp_BT[:, 1] = float("nan")  # position 1 is padding: weight 0, must not leak NaN
    adv_B = torch.tensor([a for _, a in CASES])
    w_BT = torch.tensor([[w, 0.0] for w in W])
    return lp_BT.requires_grad_(True), old_BT, adv_B, w_BT


def test_policy_loss_every_clip_branch():
    lp_BT, old_BT, adv_B, w_BT = _case_tensors()
    loss, m = policy_loss(lp_BT, old_BT, adv_B, w_BT, eps_low=0.2, eps_high=0.28)
    assert loss.item() == pytest.approx(-sum(w * s for w, s in zip(W, SURR)), abs=1e-6)
    loss.backward()
    expected_grad = torch.tensor([[-w * d, 0.0] for w, d in zip(W, DSURR)])
    assert torch.allclose(lp_BT.grad, expected_grad, atol=1e-6)
    assert m["clip_fraction"].item() == pytest.approx(2 / 6)
    assert m["clip_fraction_low"].item() == pytest.approx(1 / 6)
    assert m["clip_fraction_high"].item() == pytest.approx(1 / 6)
    assert m["ratio"].item() == pytest.approx(sum(r for r, _ in CASES) / 6, abs=1e-6)
    assert m["tokens"].item() == 6
    assert "kl" not in m and "entropy" not in m


def test_policy_loss_symmetric_eps_clips_the_last_case():
    lp_BT, old_BT, adv_B, w_BT = _case_tensors()
    loss, m = policy_loss(lp_BT, old_BT, adv_B, w_BT, eps_low=0.2, eps_high=0.2)
    surr = [1.2, -0.8, 2.2, -1.5, 0.5, 1.2]
    assert loss.item() == pytest.approx(-sum(w * s for w, s in zip(W, surr)), abs=1e-6)
    assert m["clip_fraction_high"].item() == pytest.approx(2 / 6)


def test_policy_loss_kl_and_entropy_terms():
    lp_BT = torch.log(torch.tensor([[0.5, 0.5]])).requires_grad_(True)
    old_BT = lp_BT.detach().clone()  # r = 1
    ref_BT = torch.log(torch.tensor([[0.25, 0.5]]))
    ent_BT = torch.tensor([[2.0, 1.0]])
    w_BT = torch.tensor([[0.5, 0.25]])
    adv_B = torch.tensor([1.0])
    beta, alpha = 0.1, 0.01
    loss, m = policy_loss(
        lp_BT, old_BT, adv_B, w_BT, beta=beta, ref_logprobs_BT=ref_BT, entropy_BT=ent_BT, alpha_entropy=alpha
    )
    kl0 = 0.5 + math.log(2) - 1
    expected = -(0.5 * (1 - beta * kl0 + alpha * 2.0) + 0.25 * (1 - 0 + alpha * 1.0))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert m["kl"].item() == pytest.approx(kl0 / 2, abs=1e-6)
    assert m["entropy"].item() == pytest.approx(1.5)
    # entropy rewards exploration: more entropy, lower loss
    loss_hi, _ = policy_loss(lp_BT, old_BT, adv_B, w_BT, entropy_BT=ent_BT + 1, alpha_entropy=alpha)
    loss_lo, _ = policy_loss(lp_BT, old_BT, adv_B, w_BT, entropy_BT=ent_BT, alpha_entropy=alpha)
    assert loss_hi.item() < loss_lo.item()
    # d/d lp of the k3 term: beta * w * (1 - exp(ref - lp)) -> token 0: 0.1*0.5*(1-0.5)
    loss_kl, _ = policy_loss(lp_BT, old_BT, torch.zeros(1), w_BT, beta=beta, ref_logprobs_BT=ref_BT)
    (g,) = torch.autograd.grad(loss_kl, lp_BT)
    assert torch.allclose(g, torch.tensor([[0.1 * 0.5 * 0.5, 0.0]]), atol=1e-7)


def test_policy_loss_token_advantages_and_bad_args():
    lp_BT, old_BT, adv_B, w_BT = _case_tensors()
    a, _ = policy_loss(lp_BT, old_BT, adv_B, w_BT)
    b, _ = policy_loss(lp_BT, old_BT, adv_B[:, None].expand(-1, 2), w_BT)
    assert a.item() == pytest.approx(b.item())
    with pytest.raises(ValueError):
        policy_loss(lp_BT, old_BT, adv_B, w_BT, beta=0.1)
    with pytest.raises(ValueError):
        policy_loss(lp_BT, old_BT, adv_B, w_BT, alpha_entropy=0.1)
    with pytest.raises(ValueError):
        policy_loss(lp_BT, old_BT, adv_B, w_BT, eps_low=1.0)
