"""MoE router terms of the Ring-lite RL loss (the Ring-lite paper, Eq. 5 and 6).

Every function takes ``router_logits``: one tensor per MoE layer, shaped ``[T, E]``
(Hugging Face Qwen2-MoE / Mixtral / OLMoE return ``[B*T, E]`` per layer; any
``[..., E]`` is flattened to ``[T, E]``), and an optional ``mask_T`` (bool or 0/1,
``T`` elements in any shape, e.g. ``attention_mask_BT``) that selects the real tokens,
so padding never counts. Router probabilities are ``softmax`` over all ``E`` routed
experts (as the routers of those models compute them before top-k), in float32.

Both terms are means over the tokens of the batch, hence independent of batch size.
They are non-linear in the batch (a product of two means, a mean of squares is not),
so unlike the policy loss they are not additive over micro-batches: compute them per
micro-batch, as MoE trainers usually do, and weight each micro-batch's value by its
share of the step's trained tokens so that the coefficients mean the same at any split.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _flat(router_logits_TE: Tensor, mask_T: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``[..., E]`` logits -> ``[T, E]`` float32; mask -> bool ``[T]`` (or None)."""
    logits_TE = router_logits_TE.reshape(-1, router_logits_TE.shape[-1]).float()
    if mask_T is None:
        return logits_TE, None
    keep_T = mask_T.reshape(-1).to(device=logits_TE.device) != 0
    if keep_T.numel() != logits_TE.shape[0]:
        raise ValueError(f"mask has {keep_T.numel()} elements but router logits have {logits_TE.shape[0]} tokens")
    return logits_TE, keep_T


def _masked_mean_T(values_TX: Tensor, keep_T: Tensor | None) -> Tensor:
    """Mean over the token dim (0) of real tokens; 0 when there are none."""
    if keep_T is None:
        n = values_TX.shape[0]
        return values_TX.sum(0) / max(n, 1)
    w_T = keep_T.to(values_TX.dtype)
    w_TX = w_T.reshape(-1, *([1] * (values_TX.dim() - 1)))
    return (values_TX * w_TX).sum(0) / w_T.sum().clamp_min(1.0)


def _expert_fraction_E(logits_TE: Tensor, top_k: int, keep_T: Tensor | None) -> Tensor:
    """F_e: fraction of the T * top_k routing slots assigned to expert e (no grad), [E]."""
    num_experts = logits_TE.shape[-1]
    if not 1 <= top_k <= num_experts:
        raise ValueError(f"top_k must be in [1, {num_experts}], got {top_k}")
    topk_TK = logits_TE.detach().topk(top_k, dim=-1).indices  # [T, k]
    onehot_TE = torch.zeros_like(logits_TE, dtype=torch.float32).scatter_(-1, topk_TK, 1.0)
    return _masked_mean_T(onehot_TE, keep_T) / top_k  # [E], sums to 1 (0 if no tokens)


def load_balance_loss(router_logits: Sequence[Tensor], top_k: int, mask_T: Tensor | None = None) -> Tensor:
    """Switch-style load balance B (Eq. 5), mean over MoE layers.

    Per layer, over the M real tokens::

        P_e = (1/M) sum_t softmax(z_t)_e            mean router probability of expert e
        F_e = (1/(M*top_k)) #{slots routed to e}    fraction of the M*top_k routing slots
        B   = N_e * sum_e P_e F_e

    Denominator: M (tokens) for P_e and M*top_k (slots) for F_e, so B does not depend
    on batch size and equals 1 when routing is perfectly balanced (F_e = P_e = 1/N_e),
    whatever top_k. The paper's form (1/N_e) sum_e P_e F_e N_e with F_e a count equals
    ours times M*top_k/N_e; Hugging Face's ``load_balancing_loss_func`` equals ours
    times top_k (it pools the layers' tokens instead of averaging the layers).
    Gradient flows through P_e only (F_e comes from a top-k). No layers -> 0.
    """
    per_layer = []
    for logits in router_logits:
        logits_TE, keep_T = _flat(logits, mask_T)
        probs_E = _masked_mean_T(torch.softmax(logits_TE, dim=-1), keep_T)  # P_e, [E]
        frac_E = _expert_fraction_E(logits_TE, top_k, keep_T)  # F_e, [E]
        per_layer.append(logits_TE.shape[-1] * (probs_E * frac_E).sum())
    if not per_layer:
        return torch.zeros(())
    return torch.stack(per_layer).mean()


def router_z_loss(router_logits: Sequence[Tensor], mask_T: Tensor | None = None) -> Tensor:
    """Router z-loss Z = (1/M) sum_t (logsumexp_j z_tj)^2 (Eq. 6), mean over MoE layers.

    Denominator: M, the number of real tokens (batch-size independent). No layers -> 0.
    """
    per_layer = []
    for logits in router_logits:
        logits_TE, keep_T = _flat(logits, mask_T)
        lse_T = torch.logsumexp(logits_TE, dim=-1)  # [T]
        per_layer.append(_masked_mean_T(lse_T.square(), keep_T))
    if not per_layer:
        return torch.zeros(())
    return torch.stack(per_layer).mean()


@torch.no_grad()
def expert_load(router_logits: Sequence[Tensor], top_k: int, mask_T: Tensor | None = None) -> Tensor:
    """F_e per layer: fraction of routing slots each expert received, ``[layers, E]``.

    Rows sum to 1 (0 with no real tokens); ``.max()`` is ``moe/max_expert_load``.
    """
    rows = []
    for logits in router_logits:
        logits_TE, keep_T = _flat(logits, mask_T)
        rows.append(_expert_fraction_E(logits_TE, top_k, keep_T))
    if not rows:
        return torch.zeros(0, 0)
    return torch.stack(rows)


def moe_aux_loss(
    router_logits: Sequence[Tensor],
    top_k: int,
    mask_T: Tensor | None = None,
    *,
    alpha_balance: float = 0.0,
    alpha_zloss: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """alpha_balance * B + alpha_zloss * Z (Eq. 5, 6), with detached metrics.

    Metrics: ``moe/balance_loss``, ``moe/z_loss``, ``moe/max_expert_load`` and the
    per-layer load ``moe/expert_load`` ([layers, E]). Dense models (no router logits)
    give a zero loss and zero metrics.
    """
    balance = load_balance_loss(router_logits, top_k, mask_T)
    z = router_z_loss(router_logits, mask_T)
    load_LE = expert_load(router_logits, top_k, mask_T)
    loss = alpha_balance * balance + alpha_zloss * z
    metrics = {
        "moe/balance_loss": balance.detach(),
        "moe/z_loss": z.detach(),
        "moe/max_expert_load": load_LE.max() if load_LE.numel() else torch.zeros(()),
        "moe/expert_load": load_LE,
    }
    return loss, metrics
