"""C3PO batch forming: a fixed token budget Phi per optimizer step (the Ring-lite paper, Eq. 2, 3).

Order of operations (the paper's): advantages on full groups -> pool the responses ->
seeded random order -> greedy selection until the cumulative token count first reaches
Phi, cutting the tail of the last response -> every kept token weighs 1/Phi. Then the
loss is ``-(1/Phi) sum_{i in S} sum_t 1[y_it in Psi] (...)`` (Eq. 2), the optimizer sees
exactly Phi tokens each step, and the denominator is a constant known before the
backward pass: any micro-batch or data-parallel split sums to the same gradient.

Leftovers (``FormerConfig.leftover``), the responses not selected this step:

- ``"drop"`` (default): discarded. Exactly the paper: Eq. 3 selects from the step's own
  responses B, so every trained response comes from the current policy's rollout and
  the ratio's pi_old is one step old at most.
- ``"carry"``: put back into the next step's pool with ``age + 1``; a response whose age
  would exceed ``max_age`` is dropped. It saves rollout compute when a step produces much
  more than Phi tokens, at the cost of training slightly off-policy responses (their
  ratio stays against the policy that generated them: the trainer keeps their
  ``old_logprobs``; their advantage stays the one computed in their own group). The
  carried samples compete with the new ones in the same random order, so no length or
  age bias enters the selection. ``max_age = 0`` behaves as ``"drop"``.

Shortfall: when the pool holds fewer than Phi tokens the former trains on all of them,
still divides by the constant Phi (the per-token weight never changes, so the gradient
scale stays comparable across steps), and reports ``shortfall_tokens``. Topping the
pool up first is :func:`c3po_needs_more` (``fill: sample_more``), which the trainer asks
between rollout rounds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.types import FormedBatch, Sample, ScoredGroup, SelectedSample


def select_budget(lengths: Sequence[int], budget_tokens: int) -> list[int]:
    """Eq. 3: tokens taken from each response, in the given order, under budget Phi.

    Responses are taken whole until the cumulative count first reaches Phi
    (sum of the first N-1 < Phi <= sum of the first N); the N-th keeps only the prefix
    that fills Phi exactly; the rest take 0. If all lengths sum to less than Phi, every
    response is taken whole (a shortfall).

    >>> select_budget([3, 4, 5], 5)
    [3, 2, 0]
    """
    if budget_tokens < 1:
        raise ValueError(f"budget_tokens must be >= 1, got {budget_tokens}")
    taken, remaining = [], budget_tokens
    for n in lengths:
        if n < 0:
            raise ValueError(f"negative length {n}")
        k = min(n, remaining)
        taken.append(k)
        remaining -= k
    return taken


def permutation(n: int, rng: Any) -> list[int]:
    """A random order of ``range(n)`` from ``rng``: ``random.Random``, ``numpy.random.Generator``
    or an int seed (a fresh ``random.Random(seed)``, e.g. ``seed + step`` for stateless resume)."""
    if isinstance(rng, int) and not isinstance(rng, bool):
        rng = random.Random(rng)
    if isinstance(rng, random.Random):
        order = list(range(n))
        rng.shuffle(order)
        return order
    if hasattr(rng, "permutation"):
        return [int(i) for i in rng.permutation(n)]
    raise TypeError(f"rng must be random.Random, numpy.random.Generator or int, got {type(rng).__name__}")


def form_c3po_batch(groups: list[ScoredGroup], carry: list[Sample], cfg: FormerConfig, rng: Any) -> FormedBatch:
    """Select Phi = ``cfg.budget_tokens`` tokens from ``carry`` + this step's samples (Eq. 2, 3).

    Denominator: the constant Phi; every kept token weighs 1/Phi.
    Stats: ``tokens`` (kept, = Phi unless shortfall), ``responses``, ``budget_tokens``,
    ``shortfall_tokens``, ``cut_tokens`` (cut from the last response), ``pool_tokens``,
    ``pool_responses``, ``carried_in``, ``carried_trained`` (selected with age > 0),
    ``leftover_responses`` (carried to the next step), ``dropped_responses`` (not
    trained and not carried), ``dropped_groups`` (always 0).
    """
    phi = cfg.budget_tokens
    pool = list(carry) + [s for g in groups for s in g.samples]
    ordered = [pool[i] for i in permutation(len(pool), rng)]
    taken = select_budget([s.n_response for s in ordered], phi)
    n_used = max((i + 1 for i, k in enumerate(taken) if k > 0), default=0)
    if sum(taken) < phi:  # shortfall: the whole pool is used, zero-length ones included
        n_used = len(ordered)
    weight = 1.0 / phi
    selected = [SelectedSample(s, k, weight) for s, k in zip(ordered[:n_used], taken[:n_used]) if k > 0]
    rest = ordered[n_used:]
    leftover = [replace(s, age=s.age + 1) for s in rest if s.age + 1 <= cfg.max_age] if cfg.leftover == "carry" else []
    kept = sum(taken)
    pool_tokens = sum(s.n_response for s in pool)
    stats = {
        "tokens": kept,
        "responses": len(selected),
        "budget_tokens": phi,
        "shortfall_tokens": max(0, phi - pool_tokens),
        "cut_tokens": sum(s.n_response for s in ordered[:n_used]) - kept,
        "pool_tokens": pool_tokens,
        "pool_responses": len(pool),
        "carried_in": len(carry),
        "carried_trained": sum(1 for s in selected if s.sample.age > 0),
        "leftover_responses": len(leftover),
        "dropped_responses": len(rest) - len(leftover),
        "dropped_groups": 0,
    }
    return FormedBatch("c3po", selected, leftover, f"Phi = {phi} (constant)", stats)


def c3po_needs_more(groups: list[ScoredGroup], carry: list[Sample], cfg: FormerConfig, prompts: int) -> int:
    """Refill policy: ``prompts`` more prompts while the pool (``carry`` + ``groups``) holds fewer
    than Phi tokens and ``cfg.fill == "sample_more"``; otherwise 0 (stop sampling)."""
    if cfg.fill != "sample_more":
        return 0
    pool = sum(s.n_response for g in groups for s in g.samples) + sum(s.n_response for s in carry)
    return 0 if pool >= cfg.budget_tokens else prompts
