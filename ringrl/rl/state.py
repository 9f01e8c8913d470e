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
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from ringrl.algorithms.types import Sample
from ringrl.utils.checkpoint import save_checkpoint


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
) -> Path:
    """``checkpoints/NAME``: the policy (weights in ``save_dtype``), the trainer state and
    ``optimizer.pt``; the float32 master weights too when ``save_dtype`` loses precision."""
    extra = {
        "optimizer.pt": {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }
    }
    return save_checkpoint(
        run_dir / "checkpoints" / name,
        model,
        tokenizer,
        state.to_json(),
        extra,
        save_dtype=save_dtype,
        keep_masters=True,
    )


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The most advanced complete ``step-N`` (or ``final``) checkpoint with a trainer state."""
    best, best_step = None, -1
    for d in (Path(run_dir) / "checkpoints").glob("*"):
        f = d / "trainer_state.json"
        if d.name.startswith(".") or not f.is_file() or not (d / "optimizer.pt").is_file():
            continue
        step = json.loads(f.read_text())["step"]
        if step > best_step:
            best, best_step = d, step
    return best


def load_rl_state(ckpt: Path, optimizer: Any, scheduler: Any) -> TrainerState:
    state = TrainerState.from_json(json.loads((ckpt / "trainer_state.json").read_text()))
    blob = torch.load(
        ckpt / "optimizer.pt", weights_only=False, map_location="cpu"
    )  # the optimizer moves its state to each parameter's device
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(blob["python_rng"])
    return state


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` periodic ``step-N`` checkpoints."""
    steps = sorted(
        (int(d.name.split("-")[1]), d)
        for d in (Path(run_dir) / "checkpoints").glob("step-*")
        if d.name.split("-")[1].isdigit()
    )
    for _, d in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(d, ignore_errors=True)


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric lines past ``step`` (written after the checkpoint a resume starts from)."""
    p = Path(run_dir) / "metrics.jsonl"
    if not p.is_file():
        return
    keep = [line for line in p.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    p.write_text("".join(line + "\n" for line in keep))
