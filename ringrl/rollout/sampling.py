"""One decoding step as pure tensor functions: the sampling distribution, a draw, and what is kept.

The distribution sampled is exactly ``softmax(logits / temperature)`` restricted to the
``top_k`` most likely tokens (0: all) and then to the smallest set of most likely tokens
whose mass reaches ``top_p`` (1.0: all), renormalised. Nothing else changes it: no
repetition penalty, no suppressed tokens, nothing from a model's ``generation_config``.
``temperature == 0`` is greedy (argmax).

What a step keeps per sequence is the sampled token, its log-prob under
``softmax(logits / temperature)`` (the policy the trainer recomputes and optimises; with
``top_p < 1`` or ``top_k`` the truncation is a sampling restriction, not part of the
reported log-prob, as in verl and TRL) and the entropy of that same distribution, all in
float32 from one ``[N, V]`` step: never a stacked ``[N, T, V]``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def restrict(logits_NV: Tensor, top_p: float = 1.0, top_k: int = 0) -> Tensor:
    """``logits_NV`` with every token outside the top-k / top-p set at ``-inf`` (float32).

    Top-p keeps, in descending probability, every token whose *preceding* cumulative mass
    is below ``top_p`` (so the most likely token always stays, and the kept set is the
    smallest whose mass reaches ``top_p``). Ties at the boundary are broken by the sort.
    """
    z_NV = logits_NV.float()
    V = z_NV.shape[-1]
    if 0 < top_k < V:
        kth_N1 = torch.topk(z_NV, top_k, dim=-1).values[..., -1:]
        z_NV = z_NV.masked_fill(z_NV < kth_N1, float("-inf"))
    if top_p < 1.0:
        sorted_NV, order_NV = torch.sort(z_NV, dim=-1, descending=True)
        probs_NV = torch.softmax(sorted_NV, dim=-1)
        before_NV = torch.cumsum(probs_NV, dim=-1) - probs_NV  # mass strictly before each token
        drop_NV = before_NV >= top_p
        drop_NV[..., 0] = False
        z_NV = z_NV.masked_fill(torch.zeros_like(drop_NV).scatter(-1, order_NV, drop_NV), float("-inf"))
    return z_NV


def sample_step(
    logits_NV: Tensor,
    temperature: float,
    top_p: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One token per row -> ``(tokens_N, logprobs_N, entropies_N)``.

    ``logprobs_N`` / ``entropies_N`` are of ``softmax(logits / temperature)`` (``softmax(logits)``
    when greedy), in float32. The draw is an exponential race, ``argmax_v p_v / E_v`` with
    ``E_v ~ Exp(1)``, which picks ``v`` with probability ``p_v`` exactly and needs no host sync.
    """
    z_NV = logits_NV.float()
    if temperature > 0:
        z_NV = z_NV / temperature
    logp_NV = torch.log_softmax(z_NV, dim=-1)
    p_NV = logp_NV.exp()
    ent_N = -torch.where(p_NV > 0, p_NV * logp_NV, 0.0).sum(-1)
    if temperature > 0:
        if top_p < 1.0 or top_k > 0:
            p_NV = torch.softmax(restrict(z_NV, top_p, top_k), dim=-1)
        e_NV = torch.empty_like(p_NV).exponential_(generator=generator).clamp_min_(1e-30)
        tok_N = (p_NV / e_NV).argmax(-1)
    else:
        tok_N = z_NV.argmax(-1)
    return tok_N, logp_NV.gather(-1, tok_N.unsqueeze(-1)).squeeze(-1), ent_N
