"""Batch formers by name: ``grpo`` (Eq. 1), ``dapo`` (token-mean), ``c3po`` (Eq. 2, 3).

Every former has one signature, ``(groups, carry, cfg, rng) -> FormedBatch``, and fixes
per-token weights so that the loss is a plain weighted sum (``losses.policy_loss``).
"""

from __future__ import annotations

from typing import Any, Protocol

from ringrl.algorithms.c3po import form_c3po_batch
from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.dapo import form_dapo_batch
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


def get_batch_former(name: str) -> BatchFormer:
    """The former registered under ``name``; unknown names raise ConfigError('algo')."""
    try:
        return BATCH_FORMERS[name]
    except KeyError:
        raise ConfigError("algo", f"unknown algorithm {name!r}; choose one of {', '.join(BATCH_FORMERS)}") from None


def token_weights(selected: list[SelectedSample]) -> list[list[float]]:
    """Per-token loss weights of each selected response's trained prefix (pad with 0)."""
    return [s.weights for s in selected]
