"""Typed records that flow between the RL stages (DESIGN.md, "Data flow of one RL step").

rollout + reward  -> Sample, grouped by prompt into ScoredGroup
advantages        -> Sample.advantage filled on the full group
batch former      -> FormedBatch: SelectedSample (kept tokens + per-token weight)
                     and the leftover Samples (C3PO carry-over pool)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One sampled response to one prompt, with its reward and (group) advantage."""

    group_id: int | str
    """Id of the prompt's group; unique across steps when samples are carried over."""
    index: int
    """Position of the sample within its group (0..K-1)."""
    prompt_ids: list[int]
    response_ids: list[int]
    rollout_logprobs: list[float] | None = None
    """Log-probs the rollout engine reported for ``response_ids`` (for the mismatch metric)."""
    reward: float = 0.0
    advantage: float = 0.0
    """GRPO advantage, computed on the full group before any budget cut."""
    age: int = 0
    """Optimizer steps since the sample was generated (0 = this step's rollout)."""
    finished: bool = True
    """True when the response ended with EOS, False when cut by max new tokens."""
    domain: str = "math"
    old_logprobs: list[float] | None = None
    """Trainer log-probs under the policy that generated the sample (pi_old). The trainer
    may set them once; a sample carried to a later step must keep them, so that its ratio
    is still taken against the policy that generated it."""
    routing: Any = None
    """MoE routing the engine saw while sampling (``[L, T, k]`` int tensor over the prompt and
    the fed response tokens), replayed in the training forward under ``rollout.routing_replay``.
    Not kept across a resume (a carried sample then routes freely)."""

    @property
    def n_response(self) -> int:
        return len(self.response_ids)


@dataclass(frozen=True)
class ScoredGroup:
    """The K samples drawn for one prompt, with rewards."""

    group_id: int | str
    samples: list[Sample]

    @property
    def rewards(self) -> list[float]:
        return [s.reward for s in self.samples]


@dataclass(frozen=True)
class SelectedSample:
    """A sample chosen for the loss: its first ``n_tokens`` response tokens are trained,
    each with weight ``token_weight`` (the denominator, fixed before any backward pass)."""

    sample: Sample
    n_tokens: int
    token_weight: float

    @property
    def response_ids(self) -> list[int]:
        """The trained prefix of the response."""
        return self.sample.response_ids[: self.n_tokens]

    @property
    def weights(self) -> list[float]:
        """Per-token weights of the trained prefix (tokens past it weigh 0)."""
        return [self.token_weight] * self.n_tokens


@dataclass(frozen=True)
class FormedBatch:
    """What a batch former returns: the loss is ``sum(weight * per-token objective)``."""

    algo: str
    selected: list[SelectedSample]
    leftover: list[Sample]
    """Samples to put back into the next step's pool (C3PO ``leftover: carry``), ages +1."""
    denominator: str
    """The denominator in words, e.g. ``"Phi = 4096 (constant)"``."""
    stats: Mapping[str, float] = field(default_factory=dict)
    """``tokens`` (trained tokens), ``responses``, ``shortfall_tokens``, ``dropped_groups``,
    and former-specific counts; see each former's docstring."""

    @property
    def n_tokens(self) -> int:
        return sum(s.n_tokens for s in self.selected)
