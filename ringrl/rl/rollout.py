"""Rollout and reward: L prompts x K responses -> scored groups of :class:`Sample`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ringrl.algorithms.types import Sample, ScoredGroup
from ringrl.data.prompts import render_prompt
from ringrl.distributed import Dist, gather_objects
from ringrl.rl.config import RolloutConfig

Scorer = Callable[[Sequence[dict[str, Any]], Sequence[str]], list[float]]


@dataclass
class RolloutResult:
    groups: list[ScoredGroup]
    generated_tokens: int
    lengths: list[int]  # every response's token count
    rewards: list[float]
    rollout_seconds: float
    reward_seconds: float
    extra_rounds: int = 0  # rollout rounds beyond the first this step (refill: C3PO budget, DAPO groups)


def collect_groups(
    engine: Any, tokenizer: Any, rows: list[dict[str, Any]], score: Scorer, cfg: RolloutConfig, seed: int, tag: str
) -> RolloutResult:
    """Sample K responses for each row, score them, and group them by prompt."""
    t0 = time.perf_counter()
    prompts = [render_prompt(tokenizer, r) for r in rows]
    extra = {"top_k": cfg.top_k} if cfg.top_k else {}  # an engine without top-k still works when it is off
    completions = engine.generate(
        prompts,
        n=cfg.samples_per_prompt,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        seed=seed,
        **extra,
    )
    t1 = time.perf_counter()
    flat_rows = [r for r, comps in zip(rows, completions) for _ in comps]
    rewards = score(flat_rows, [c.text for comps in completions for c in comps])
    t2 = time.perf_counter()
    groups, k = [], 0
    for g, (row, prompt, comps) in enumerate(zip(rows, prompts, completions)):
        prompt_ids = None
        samples = []
        for i, c in enumerate(comps):
            if getattr(c, "prompt_ids", None):  # the engine's own tokenisation of the prompt
                prompt_ids = c.prompt_ids
            elif prompt_ids is None:
                prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            samples.append(
                Sample(
                    group_id=f"{tag}-{g}",
                    index=i,
                    prompt_ids=list(prompt_ids),
                    response_ids=list(c.token_ids),
                    rollout_logprobs=list(c.logprobs),
                    reward=float(rewards[k]),
                    finished=c.finished,
                    domain=str(row.get("domain", "")),
                    routing=getattr(c, "routing", None),
                )
            )
            k += 1
        groups.append(ScoredGroup(group_id=f"{tag}-{g}", samples=samples))
    lengths = [len(c.token_ids) for comps in completions for c in comps]
    return RolloutResult(groups, sum(lengths), lengths, list(rewards), t1 - t0, t2 - t1)


def merge(results: list[RolloutResult]) -> RolloutResult:
    return RolloutResult(
        groups=[g for r in results for g in r.groups],
        generated_tokens=sum(r.generated_tokens for r in results),
        lengths=[n for r in results for n in r.lengths],
        rewards=[x for r in results for x in r.rewards],
        rollout_seconds=sum(r.rollout_seconds for r in results),
        reward_seconds=sum(r.reward_seconds for r in results),
        extra_rounds=sum(r.extra_rounds for r in results),
    )


def gather_rollouts(mine: RolloutResult, dist: Dist) -> RolloutResult:
    """Every rank's slice of a rollout, in rank order, on every rank (``mine`` on one process).

    The ranks sampled in parallel, so the step waited for the slowest: seconds are the
    maximum over ranks, not the sum."""
    if not dist.enabled:
        return mine
    parts = gather_objects(mine, dist)
    out = merge(parts)
    out.rollout_seconds = max(r.rollout_seconds for r in parts)
    out.reward_seconds = max(r.reward_seconds for r in parts)
    return out
