"""GRPO batch forming: every response, per-response length normalisation (the Ring-lite paper, Eq. 1).

    L_GRPO = - (1/G) sum_g (1/K_g) sum_i (1/|y_i|) sum_t [ ... ]

i.e. the mean over the G groups of Eq. 1. As a weighted token sum, token t of response
i in group g weighs 1/(G * K_g * |y_i|) (= 1/(N_resp * |y_i|) when every group has K
samples). The weights are fixed here, before any backward pass, so micro-batching does
not change the gradient. Long responses get a smaller per-token weight: the length
bias that token-level denominators (DAPO, C3PO) remove.
"""

from __future__ import annotations

from typing import Any

from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.types import FormedBatch, Sample, ScoredGroup, SelectedSample


def form_grpo_batch(groups: list[ScoredGroup], carry: list[Sample], cfg: FormerConfig, rng: Any) -> FormedBatch:
    """Every response of every group, token weight 1/(G * K_g * |y_i|) (Eq. 1).

    ``carry``, ``cfg`` and ``rng`` are unused (GRPO never carries samples; any passed are
    dropped and counted in ``dropped_responses``). Empty responses count in K_g but
    have no tokens. Stats: ``tokens``, ``responses``, ``shortfall_tokens`` (0),
    ``dropped_groups`` (0), ``dropped_responses``.
    """
    groups = [g for g in groups if g.samples]
    selected = [
        SelectedSample(s, s.n_response, 1.0 / (len(groups) * len(g.samples) * s.n_response))
        for g in groups
        for s in g.samples
        if s.n_response > 0
    ]
    stats = {
        "tokens": sum(s.n_tokens for s in selected),
        "responses": len(selected),
        "shortfall_tokens": 0,
        "dropped_groups": 0,
        "dropped_responses": len(carry),
    }
    return FormedBatch("grpo", selected, [], "groups * K * |y_i| (per response, Eq. 1)", stats)
