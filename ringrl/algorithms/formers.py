"""Batch formers by name: ``grpo`` (Eq. 1), ``dapo`` (token-mean), ``c3po`` (Eq. 2, 3),
and each one's refill policy (``FILL_POLICIES``: sample more prompts before forming?).

Every former has one signature, ``(groups, carry, cfg, rng) -> FormedBatch``, and fixes
per-token weights so that the loss is a plain weighted sum (``losses.policy_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ringrl.algorithms.c3po import c3po_needs_more, form_c3po_batch
from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.dapo import dapo_keep_groups, dapo_needs_more, form_dapo_batch
from ringrl.algorithms.grpo import form_grpo_batch
from ringrl.algorithms.types import FormedBatch, Sample, ScoredGroup, SelectedSample
from ringrl.errors import ConfigError


class BatchFormer(Protocol):
    def __call__(self, groups: list[ScoredGroup], carry: list[Sample], cfg: FormerConfig, rng: Any) -> FormedBatch: ...


BATCH_FORMERS: dict[str, BatchFormer] = {
    "c3po": form_c3po_batch,
    "grpo": form_grpo_batch,
    "dapo": form_dapo_batch,
}


class NeedsMore(Protocol):
    """Refill policy: how many more prompts to sample before forming the batch (0: stop)."""

    def __call__(self, groups: list[ScoredGroup], carry: list[Sample], cfg: FormerConfig, prompts: int) -> int: ...


class KeepGroups(Protocol):
    """Which of the collected groups go to the former once refilling stopped."""

    def __call__(self, groups: list[ScoredGroup], cfg: FormerConfig, prompts: int) -> list[ScoredGroup]: ...


def never_more(groups: list[ScoredGroup], carry: list[Sample], cfg: FormerConfig, prompts: int) -> int:
    """GRPO's refill policy: one rollout round per step."""
    return 0


def keep_all(groups: list[ScoredGroup], cfg: FormerConfig, prompts: int) -> list[ScoredGroup]:
    return groups


@dataclass(frozen=True)
class FillPolicy:
    """A former's refill policy, kept next to it: ``needs_more`` between rollout rounds,
    ``keep`` on the collected groups afterwards."""

    needs_more: NeedsMore
    keep: KeepGroups = keep_all


FILL_POLICIES: dict[str, FillPolicy] = {
    "c3po": FillPolicy(c3po_needs_more),
    "grpo": FillPolicy(never_more),
    "dapo": FillPolicy(dapo_needs_more, dapo_keep_groups),
}


def get_fill_policy(name: str) -> FillPolicy:
    """The refill policy of the former registered under ``name``."""
    get_batch_former(name)  # unknown names: the same error
    return FILL_POLICIES[name]


def get_batch_former(name: str) -> BatchFormer:
    """The former registered under ``name``; unknown names raise ConfigError('algo')."""
    try:
        return BATCH_FORMERS[name]
    except KeyError:
        raise ConfigError("algo", f"unknown algorithm {name!r}; choose one of {', '.join(BATCH_FORMERS)}") from None


def token_weights(selected: list[SelectedSample]) -> list[list[float]]:
    """Per-token loss weights of each selected response's trained prefix (pad with 0)."""
    return [s.weights for s in selected]
