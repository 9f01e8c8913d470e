"""Checkpoints in Hugging Face format, written atomically, never with non-finite weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ringrl.utils.io import atomic_dir


class NonFiniteWeights(RuntimeError):
    """Raised instead of writing a checkpoint whose weights contain NaN or infinity."""


def all_finite(model: Any) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def save_checkpoint(
    path: Path,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any] | None = None,
    extra_files: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` and ``tokenizer`` (safetensors) plus ``trainer_state.json`` and any
    ``extra_files`` (name -> object saved with ``torch.save``) under a temporary name,
    then rename into ``path``. A checkpoint that loads is always complete."""
    if not all_finite(model):
        raise NonFiniteWeights(f"refusing to write {path}: the model has non-finite weights")
    with atomic_dir(Path(path)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if trainer_state is not None:
            (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2))
        for name, obj in (extra_files or {}).items():
            torch.save(obj, tmp / name)
    return Path(path)


def quiet_transformers() -> None:
    """No download/shard progress bars from transformers inside our own progress display."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # pragma: no cover - older transformers
        pass


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
