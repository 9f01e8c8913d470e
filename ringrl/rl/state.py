"""RL checkpoints and exact resume.

A checkpoint ``checkpoints/step-N/`` holds the policy in HF format plus
``trainer_state.json`` (step, prompt-stream position, non-finite skip count, elapsed
time, the C3PO carry-over pool) and ``optimizer.pt`` (optimizer, scheduler and RNG
states), plus ``master_weights.pt`` (the float32 parameters) when ``model.save_dtype``
saved the HF weights in a lower precision. Sampling and batch forming are seeded from ``(seed, step)``, so restoring
these is enough for a resumed run to reproduce the uninterrupted run's metrics.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from ringrl.algorithms.types import Sample
from ringrl.utils.checkpoint import save_resumable
from ringrl.utils.rundir import apply_resume_blob, prune_checkpoints, read_resume_blob

__all__ = [
    "TrainerState",
    "apply_resume_blob",
    "load_rl_state",
    "prune_checkpoints",
    "read_resume_blob",
    "save_rl_checkpoint",
]


@dataclasses.dataclass
class TrainerState:
    step: int = 0
    position: int = 0  # prompts consumed from the stream
    nonfinite_skips: int = 0
    elapsed: float = 0.0
    rl_tokens: int = 0  # tokens trained so far
    rollbacks: int = 0  # monitor rollbacks so far
    lr_scale: float = 1.0  # the configured lr times this (halved at each monitor rollback)
    carry: list[Sample] = dataclasses.field(default_factory=list)
    run_id: str = ""  # the run that wrote the checkpoint (resume uses only its own run's)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(
            dataclasses.replace(self, carry=[dataclasses.replace(s, routing=None) for s in self.carry])
        )
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainerState:
        carry = [Sample(**s) for s in d.pop("carry", [])]
        return cls(**d, carry=carry)


def save_rl_checkpoint(
    run_dir: Path,
    name: str,
    model: Any,
    tokenizer: Any,
    state: TrainerState,
    optimizer: Any,
    scheduler: Any,
    save_dtype: torch.dtype | None = None,
    staged: tuple[dict[str, Any] | None, dict[str, Path]] = (None, {}),
) -> Path:
    """``checkpoints/NAME``: the policy (weights in ``save_dtype``), the trainer state and
    ``optimizer.pt``; the float32 master weights too when ``save_dtype`` loses precision.
    A sharded model (``staged``: :func:`ringrl.fsdp.stage_for_save`) keeps its masters and
    optimizer state in ``distcp/`` instead (:func:`ringrl.utils.checkpoint.save_resumable`)."""
    return save_resumable(
        run_dir / "checkpoints" / name, model, tokenizer, state.to_json(), optimizer, scheduler, save_dtype, staged
    )


def load_rl_state(ckpt: Path, optimizer: Any, scheduler: Any) -> TrainerState:
    state = TrainerState.from_json(json.loads((ckpt / "trainer_state.json").read_text()))
    apply_resume_blob(read_resume_blob(ckpt), optimizer, scheduler)
    return state
