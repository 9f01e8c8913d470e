"""GRPO group advantages (the Ring-lite paper's RL objective): A_i = (R_i - mean R) / (std R + eps).

The std is the *unbiased* sample std (divisor K - 1), as ``torch.std``, TRL's
``GRPOTrainer`` and verl's ``compute_grpo_outcome_advantage`` use. A group whose
rewards are all equal (or that has a single sample) gets advantage 0 exactly.
Advantages are computed on full groups, before any batch former cuts tokens.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ringrl.algorithms.types import ScoredGroup


def grpo_advantages(rewards_GK: Tensor, eps: float = 1e-6) -> Tensor:
    """(R - mean) / (std + eps) within each group (row) of ``rewards_GK`` -> ``[G, K]``.

    Unbiased std over the K samples; rows with all-equal rewards, and K = 1, give 0.
    """
    rewards_GK = rewards_GK.to(torch.promote_types(rewards_GK.dtype, torch.float32))
    if rewards_GK.shape[-1] < 2:
        return torch.zeros_like(rewards_GK)
    mean_G1 = rewards_GK.mean(-1, keepdim=True)
    std_G1 = rewards_GK.std(-1, keepdim=True)  # unbiased (correction=1)
    flat_G1 = rewards_GK.amax(-1, keepdim=True) == rewards_GK.amin(-1, keepdim=True)
    adv_GK = (rewards_GK - mean_G1) / (std_G1 + eps)
    return torch.where(flat_G1, torch.zeros_like(adv_GK), adv_GK)


def assign_advantages(groups: list[ScoredGroup], eps: float = 1e-6) -> list[ScoredGroup]:
    """Copies of ``groups`` with every ``Sample.advantage`` set by :func:`grpo_advantages`.

    Groups may have different sizes; each is normalised on its own (float64).
    """
    out = []
    for g in groups:
        adv_K = grpo_advantages(torch.tensor([g.rewards], dtype=torch.float64), eps)[0].tolist() if g.samples else []
        out.append(replace(g, samples=[replace(s, advantage=a) for s, a in zip(g.samples, adv_K)]))
    return out
