"""Settings of the batch formers (``rl.former`` in the RL config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ringrl.config import doc
from ringrl.errors import ConfigError


@dataclass(frozen=True)
class FormerConfig:
    budget_tokens: int = doc("C3PO token budget Phi: tokens trained per optimizer step (Eq. 2, 3); paper 409600", 4096)
    leftover: Literal["drop", "carry"] = doc(
        "C3PO responses not selected this step: drop them (paper) or carry them into the next step's pool", "drop"
    )
    max_age: int = doc("C3PO carry: a response may be trained at most this many steps after its rollout", 1)
    fill: Literal["sample_more", "train_fewer"] = doc(
        "C3PO when a step's pool has fewer than Phi tokens: sample more prompts (up to max_fill_rounds), or train on fewer",
        "sample_more",
    )
    dynamic_sampling: bool = doc("DAPO: leave out groups whose rewards are all equal (they have zero advantage)", True)

    def validate(self) -> None:
        if self.budget_tokens < 1:
            raise ConfigError("budget_tokens", f"must be >= 1, got {self.budget_tokens}")
        if self.max_age < 0:
            raise ConfigError("max_age", f"must be >= 0, got {self.max_age}")
        if self.fill not in ("sample_more", "train_fewer"):
            raise ConfigError("fill", f"must be 'sample_more' or 'train_fewer', got {self.fill!r}")
        if self.leftover not in ("drop", "carry"):
            raise ConfigError("leftover", f"must be 'drop' or 'carry', got {self.leftover!r}")
