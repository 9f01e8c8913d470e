"""DAPO batch forming: token-mean over the step's tokens, dynamic sampling (Yu et al. 2025).

    L = - (1/T_total) sum_i sum_t [ min(r A, clip(r, 1-eps_low, 1+eps_high) A) - ... ]

T_total is the number of response tokens of the step's (informative) groups, counted
here before any micro-batch runs; every token weighs 1/T_total. Clip-higher is the
loss's ``eps_low`` / ``eps_high`` (the trainer passes them from its config).

Dynamic sampling works at the sample level: groups whose rewards are all equal have
zero advantage and are left out (:func:`informative_groups`). Sampling more prompts
until enough groups are informative is :func:`dapo_needs_more` (the trainer asks it
between rollout rounds, with a cap on retries) and :func:`dapo_keep_groups` keeps the
first ``prompts`` informative groups; the token count per step still varies, which is
what C3PO fixes.
"""

from __future__ import annotations

from typing import Any

from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.types import FormedBatch, Sample, ScoredGroup, SelectedSample


def informative_groups(groups: list[ScoredGroup]) -> tuple[list[ScoredGroup], list[ScoredGroup]]:
    """Split groups into (kept, dropped): dropped ones have all rewards equal (or < 2 samples)."""
    kept: list[ScoredGroup] = []
    dropped: list[ScoredGroup] = []
    for g in groups:
        rewards = g.rewards
        (kept if len(rewards) >= 2 and min(rewards) != max(rewards) else dropped).append(g)
    return kept, dropped


def form_dapo_batch(groups: list[ScoredGroup], carry: list[Sample], cfg: FormerConfig, rng: Any) -> FormedBatch:
    """Token-mean: every token of the kept groups weighs 1/T_total.

    With ``cfg.dynamic_sampling`` the uninformative groups are left out first (a no-op
    when the trainer already filtered). ``carry`` and ``rng`` are unused. Stats:
    ``tokens`` (= T_total), ``responses``, ``shortfall_tokens`` (0), ``dropped_groups``,
    ``dropped_responses``.
    """
    kept, dropped = informative_groups(groups) if cfg.dynamic_sampling else (list(groups), [])
    samples = [s for g in kept for s in g.samples if s.n_response > 0]
    total = sum(s.n_response for s in samples)
    selected = [SelectedSample(s, s.n_response, 1.0 / total) for s in samples]
    stats = {
        "tokens": total,
        "responses": len(selected),
        "shortfall_tokens": 0,
        "dropped_groups": len(dropped),
        "dropped_responses": sum(len(g.samples) for g in dropped) + len(carry),
    }
    return FormedBatch("dapo", selected, [], f"T_total = {total} (step's tokens)", stats)


def dapo_needs_more(groups: list[ScoredGroup], carry: list[Sample], cfg: FormerConfig, prompts: int) -> int:
    """Refill policy: with dynamic sampling, how many informative groups are still missing out
    of ``prompts`` (that many more prompts are sampled); 0 without it."""
    if not cfg.dynamic_sampling:
        return 0
    return max(0, prompts - len(informative_groups(groups)[0]))


def dapo_keep_groups(groups: list[ScoredGroup], cfg: FormerConfig, prompts: int) -> list[ScoredGroup]:
    """After refilling: at most ``prompts`` informative groups, then the uninformative ones (the
    former drops those again and counts them)."""
    if not cfg.dynamic_sampling:
        return groups
    kept, dropped = informative_groups(groups)
    return kept[:prompts] + dropped
