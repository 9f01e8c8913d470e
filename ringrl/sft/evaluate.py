"""Entropy and accuracy of a policy on its own sampled responses (checkpoint selection).

The paper selects the SFT checkpoint by the policy's entropy: the mean token entropy
of the policy's next-token distribution along responses it samples itself at
temperature 1.0 on held-out prompts. The same samples give pass@1 accuracy (one sample
per prompt by default, graded by the row's verifier).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ringrl.data.prompts import render_prompt
from ringrl.rollout import HFEngine

Grader = Callable[[Sequence[dict[str, Any]], Sequence[str]], list[float]]


@dataclass(frozen=True)
class PolicyEval:
    entropy: float  # token-weighted mean entropy (nats) over all sampled response tokens
    accuracy: float  # mean reward of the samples (pass@1 with one sample per prompt)
    mean_length: float  # tokens per sampled response
    problems: int
    samples: int


def evaluate_policy(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    grader: Grader,
    *,
    samples: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 512,
    batch_size: int = 96,
    seed: int = 0,
) -> PolicyEval:
    engine = HFEngine(model, tokenizer, batch_size=batch_size)
    prompts = [render_prompt(tokenizer, r) for r in rows]
    groups = engine.generate(prompts, n=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    flat_rows = [r for r, g in zip(rows, groups) for _ in g]
    comps = [c for g in groups for c in g]
    rewards = grader(flat_rows, [c.text for c in comps])
    n_tokens = sum(len(c.entropies) for c in comps)
    entropy = sum(sum(c.entropies) for c in comps) / max(1, n_tokens)
    return PolicyEval(
        entropy=entropy,
        accuracy=sum(rewards) / max(1, len(rewards)),
        mean_length=n_tokens / max(1, len(comps)),
        problems=len(rows),
        samples=len(comps),
    )
