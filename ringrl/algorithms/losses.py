"""Token-level quantities and the clipped policy loss (the Ring-lite paper, Eq. 1, 2, 4).

Conventions: ``B`` responses, ``T`` (padded) response positions, ``V`` vocabulary.
``logits_BTV[:, t]`` is the distribution that predicts ``tokens_BT[:, t]``: shifting
the model's logits by one position is the caller's job. Results are float32.

One loss function serves GRPO (Eq. 1), C3PO (Eq. 2) and token-mean (DAPO): the
objective is a plain weighted *sum* over tokens, and the batch former fixes the
per-token weights (the denominators) before any backward pass. Hence the gradient
of a batch equals the sum of the gradients of any split into micro-batches.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Log-ratios (and the k3 log-difference) are clamped to +-MAX_LOG_RATIO before ``exp``
#: so that one pathological token cannot make the loss infinite (as verl does).
MAX_LOG_RATIO = 20.0

_EXACT = (torch.float32, torch.float64)


def token_logprobs(logits_BTV: Tensor, tokens_BT: Tensor) -> Tensor:
    """log pi(tokens_BT | context) -> ``[B, T]`` float32.

    Computed as ``gather(logits) - logsumexp(logits)`` without materialising a
    ``[B, T, V]`` log-softmax. Half-precision logits are upcast one row at a time,
    so the float32 copy is ``[T, V]``, never ``[B, T, V]``.
    """
    index_BT1 = tokens_BT.long().unsqueeze(-1)
    if logits_BTV.dtype in _EXACT:
        picked_BT = logits_BTV.gather(-1, index_BT1).squeeze(-1)
        return (picked_BT - torch.logsumexp(logits_BTV, dim=-1)).float()
    rows = []
    for logits_TV, index_T1 in zip(logits_BTV, index_BT1):
        logits_TV = logits_TV.float()
        rows.append(logits_TV.gather(-1, index_T1).squeeze(-1) - torch.logsumexp(logits_TV, dim=-1))
    return torch.stack(rows)


def _entropy_rows(logits_XV: Tensor) -> Tensor:
    """H = logsumexp(z) - sum_v p_v z_v; -inf logits (masked vocabulary) contribute 0."""
    probs_XV = torch.softmax(logits_XV, dim=-1)
    finite_XV = logits_XV.masked_fill(torch.isneginf(logits_XV), 0.0)
    return torch.logsumexp(logits_XV, dim=-1) - (probs_XV * finite_XV).sum(-1)


def token_entropy(logits_BTV: Tensor) -> Tensor:
    """Entropy in nats of ``softmax(logits_BTV)`` at each position -> ``[B, T]`` float32.

    Differentiable (the entropy bonus of Eq. 4 needs its gradient). Half-precision
    logits are upcast one row at a time.
    """
    if logits_BTV.dtype in _EXACT:
        return _entropy_rows(logits_BTV).float()
    return torch.stack([_entropy_rows(logits_TV.float()) for logits_TV in logits_BTV])


def kl_k3(logprobs_BT: Tensor, ref_logprobs_BT: Tensor) -> Tensor:
    """k3 estimator of KL(pi_theta || pi_ref) per sampled token -> ``[B, T]`` (>= 0).

    With d = log pi_ref - log pi_theta at the sampled token: ``exp(d) - d - 1``.
    Unbiased for KL(pi_theta || pi_ref) when tokens are drawn from pi_theta, and
    never negative. ``d`` is clamped to +-MAX_LOG_RATIO before ``exp``.
    """
    d_BT = (ref_logprobs_BT - logprobs_BT).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return torch.exp(d_BT) - d_BT - 1.0


def policy_loss(
    logprobs_BT: Tensor,
    old_logprobs_BT: Tensor,
    advantages_B: Tensor,
    weights_BT: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    beta: float = 0.0,
    ref_logprobs_BT: Tensor | None = None,
    entropy_BT: Tensor | None = None,
    alpha_entropy: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip policy loss with KL k3 and entropy terms (Eq. 1, 2, 4)::

        loss = - sum_{b,t} w_bt [ min(r A, clip(r, 1-eps_low, 1+eps_high) A)
                                  - beta KL_k3 + alpha_entropy H ]

    with r = exp(logprobs - old_logprobs) and A = ``advantages_B`` (one per response;
    a ``[B, T]`` tensor of token advantages is accepted too).

    Denominator: none here. ``weights_BT`` carry it, fixed by the batch former before
    any backward pass (C3PO: 1/Phi; GRPO: 1/(groups * K * |y_i|); token-mean:
    1/total tokens) and 0 on padding and on tokens cut by the budget. The entropy
    term has the sign that *rewards* exploration (higher entropy, lower loss).

    Metrics (detached, unweighted means over tokens with weight > 0, so that several
    micro-batches combine with ``tokens`` as their weight): ``clip_fraction`` (tokens
    whose gradient the clip removed), ``clip_fraction_low``, ``clip_fraction_high``,
    ``ratio``, ``kl`` (when ``ref_logprobs_BT`` is given), ``entropy`` (when
    ``entropy_BT`` is given), ``tokens`` (their count).
    """
    if eps_low < 0 or eps_high < 0 or eps_low >= 1:
        raise ValueError(f"need 0 <= eps_low < 1 and eps_high >= 0, got {eps_low}, {eps_high}")
    if beta != 0 and ref_logprobs_BT is None:
        raise ValueError("beta != 0 needs ref_logprobs_BT")
    if alpha_entropy != 0 and entropy_BT is None:
        raise ValueError("alpha_entropy != 0 needs entropy_BT")
    adv_BT = advantages_B.unsqueeze(-1) if advantages_B.dim() == 1 else advantages_B
    adv_BT = adv_BT.to(logprobs_BT.dtype)
    log_ratio_BT = (logprobs_BT - old_logprobs_BT).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio_BT = torch.exp(log_ratio_BT)
    surr_BT = torch.minimum(ratio_BT * adv_BT, ratio_BT.clamp(1 - eps_low, 1 + eps_high) * adv_BT)

    objective_BT = surr_BT
    kl_BT = None if ref_logprobs_BT is None else kl_k3(logprobs_BT, ref_logprobs_BT)
    if beta != 0 and kl_BT is not None:
        objective_BT = objective_BT - beta * kl_BT
    if alpha_entropy != 0 and entropy_BT is not None:
        objective_BT = objective_BT + alpha_entropy * entropy_BT

    active_BT = weights_BT != 0
    # where(), not a product: a NaN on a padded position must not leak into the sum.
    loss = -torch.where(active_BT, weights_BT * objective_BT, 0.0).sum()

    with torch.no_grad():
        n = active_BT.sum()
        denom = n.clamp_min(1).float()

        def mean(x_BT: Tensor) -> Tensor:
            return torch.where(active_BT, x_BT.float(), 0.0).sum() / denom

        low_BT = (ratio_BT < 1 - eps_low) & (adv_BT < 0)
        high_BT = (ratio_BT > 1 + eps_high) & (adv_BT > 0)
        metrics = {
            "clip_fraction": mean((low_BT | high_BT).float()),
            "clip_fraction_low": mean(low_BT.float()),
            "clip_fraction_high": mean(high_BT.float()),
            "ratio": mean(ratio_BT),
            "tokens": n.float(),
        }
        if kl_BT is not None:
            metrics["kl"] = mean(kl_BT)
        if entropy_BT is not None:
            metrics["entropy"] = mean(entropy_BT)
    return loss, metrics
