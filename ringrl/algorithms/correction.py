"""Train-inference correction: per-token weights from the gap between trainer and engine.

The rollout engine and the trainer compute the same policy with different kernels (KV
cache vs full forward, other batch shapes, bf16, and in MoE models possibly another
routing), so the probability the engine sampled a token with, pi_engine, can differ from
the trainer's pi_old of the same weights. Per token

    k = pi_old_train(y_t) / pi_engine(y_t) = exp(log pi_old_train - log pi_engine)

and ``loss.correction`` turns k into a weight that multiplies the token's loss weight:

- ``none``: 1 (the default; k is only logged as ``train/logprob_mismatch``).
- ``tis`` (truncated importance sampling, as in verl and slime): ``min(k, high)``, high 2.0;
  the sampled data are reweighted toward the trainer's policy, with the weight capped so
  one token cannot dominate.
- ``icepop`` (Ring-1T, Inclusion AI): 1 when ``low <= k <= high`` (default 0.5 and 5.0),
  else 0: a token whose two probabilities disagree too much is dropped from the gradient.
  Its weight becomes 0 but the former's denominator does not change (C3PO still divides
  by Phi).

Comparisons are made on log k against ``log(low)`` / ``log(high)`` (the same order as on k,
without rounding through ``exp``); log k is clamped to +-MAX_LOG_RATIO as the PPO ratio is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ringrl.algorithms.losses import MAX_LOG_RATIO

CORRECTIONS = ("none", "tis", "icepop")
#: default (low, high) per mode; low is unused by tis
DEFAULT_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "none": (None, None),
    "tis": (None, 2.0),
    "icepop": (0.5, 5.0),
}


@torch.no_grad()
def correction_weights(
    old_logprobs_BT: Tensor,
    engine_logprobs_BT: Tensor,
    mode: str,
    low: float | None = None,
    high: float | None = None,
) -> Tensor:
    """Per-token weight ``[B, T]`` (float32, no grad) for ``mode`` in none | tis | icepop.

    ``low`` / ``high`` default to :data:`DEFAULT_BOUNDS` of the mode.
    """
    if mode not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {mode!r}")
    if mode == "none":
        return torch.ones_like(old_logprobs_BT, dtype=torch.float32)
    d_low, d_high = DEFAULT_BOUNDS[mode]
    low = d_low if low is None else low
    high = d_high if high is None else high
    log_k_BT = (old_logprobs_BT.float() - engine_logprobs_BT.float()).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    assert high is not None
    if mode == "tis":
        return torch.exp(log_k_BT.clamp(max=math.log(high)))
    assert low is not None
    keep_BT = (log_k_BT >= math.log(low)) & (log_k_BT <= math.log(high))
    return keep_BT.float()
