"""Checkpoints in Hugging Face format, written atomically, never with non-finite weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ringrl.errors import UserError
from ringrl.utils.io import atomic_dir

#: The float32 master weights, kept in a checkpoint whose HF weights were saved in a lower precision.
MASTER_WEIGHTS = "master_weights.pt"


class NonFiniteWeights(RuntimeError):
    """Raised instead of writing a checkpoint whose weights contain NaN or infinity."""


def all_finite(model: Any) -> bool:
    """Every parameter finite (for a sharded model: every rank's shard, agreed over the ranks)."""
    from ringrl.fsdp import local_all_finite

    return local_all_finite(model.parameters())


def save_checkpoint(
    path: Path,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any] | None = None,
    extra_files: dict[str, Any] | None = None,
    save_dtype: torch.dtype | None = None,
    keep_masters: bool = False,
    state_dict: dict[str, torch.Tensor] | None = None,
    move_in: dict[str, Path] | None = None,
) -> Path:
    """Save ``model`` and ``tokenizer`` (safetensors) plus ``trainer_state.json`` and any
    ``extra_files`` (name -> object saved with ``torch.save``) under a temporary name,
    then rename into ``path``. A checkpoint that loads is always complete.

    ``save_dtype`` (``model.save_dtype``): the dtype of the saved HF weights (and of
    config.json's ``dtype``); default the parameters' own. ``keep_masters``: when that
    loses precision, also write the float32 parameters to :data:`MASTER_WEIGHTS`, so that
    a resume (:func:`restore_weights`) continues from exactly the same weights.
    ``state_dict``: the weights to write instead of ``model``'s own (a sharded model's,
    gathered by :func:`ringrl.fsdp.full_state_dict`). ``move_in``: finished directories
    (name -> path) moved into the checkpoint before it appears (the sharded resume state)."""
    from ringrl.fsdp import local_all_finite

    if not local_all_finite(model.parameters() if state_dict is None else _floats(state_dict)):
        raise NonFiniteWeights(f"refusing to write {path}: the model has non-finite weights")
    from ringrl.models.lora import is_lora, merged_copy, save_adapter

    adapter = model if is_lora(model) else None
    if adapter is not None:  # a plain HF directory with the adapters merged in, the adapter alone beside it
        model, keep_masters = merged_copy(adapter), False
    own = next(iter(_floats(state_dict))).dtype if state_dict is not None else next(model.parameters()).dtype
    cast = save_dtype is not None and save_dtype != own
    with atomic_dir(Path(path)) as tmp:
        if cast or state_dict is not None:
            state = state_dict if state_dict is not None else model.state_dict()
            if cast:
                state = {k: (v.to(save_dtype) if v.is_floating_point() else v) for k, v in state.items()}
            model.save_pretrained(tmp, safe_serialization=True, state_dict=state)
            _fix_config(tmp / "config.json", model, save_dtype if cast else None)
            if keep_masters and cast:
                torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / MASTER_WEIGHTS)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if adapter is not None:
            save_adapter(adapter, tmp)
        if trainer_state is not None:
            (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2))
        for name, obj in (extra_files or {}).items():
            torch.save(obj, tmp / name)
        for name, src in (move_in or {}).items():
            Path(src).replace(tmp / name)
    return Path(path)


def save_resumable(
    path: Path,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    optimizer: Any,
    scheduler: Any,
    save_dtype: torch.dtype | None = None,
    staged: tuple[dict[str, Any] | None, dict[str, Path]] = (None, {}),
) -> Path:
    """A checkpoint a run resumes from exactly: the HF weights in ``save_dtype``, ``trainer_state.json``
    and ``optimizer.pt`` (optimizer, schedule and RNG states), plus the float32 masters when
    ``save_dtype`` loses precision. ``staged``: what :func:`ringrl.fsdp.stage_for_save` prepared for a
    sharded model (its gathered weights, and ``distcp/`` holding the masters and optimizer state)."""
    from ringrl.utils.rundir import resume_blob

    full, move_in = staged
    sharded = full is not None
    return save_checkpoint(
        path,
        model,
        tokenizer,
        trainer_state,
        {"optimizer.pt": resume_blob(None if sharded else optimizer, scheduler)},
        save_dtype=save_dtype,
        keep_masters=not sharded,
        state_dict=full,
        move_in=move_in,
    )


def _floats(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [v for v in state.values() if v.is_floating_point()]


def _fix_config(cfg_file: Path, model: Any, dtype: torch.dtype | None) -> None:
    """config.json as plain transformers expects it: ``dtype`` the saved one, ``architectures`` the
    model's own class (not the ``FSDP...`` subclass a sharded model has)."""
    from ringrl.fsdp import is_fsdp, original_class

    data = json.loads(cfg_file.read_text())
    if dtype is not None:
        data["dtype"] = str(dtype).replace("torch.", "")
    if is_fsdp(model):
        data["architectures"] = [original_class(model).__name__]
    cfg_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_weights(ckpt: Path, model: Any, trust_remote_code: bool = False) -> tuple[str, dict[str, Any]]:
    """What :func:`apply_weights` loads into ``model`` from checkpoint ``ckpt``, read without changing
    anything (a damaged file raises here): its float32 masters when it kept them
    (:data:`MASTER_WEIGHTS`), else its HF weights (exact when they were saved in float32); for a
    LoRA policy, the checkpoint's adapter (its base weights never change)."""
    from ringrl.fsdp import SHARDED_DIR, is_fsdp
    from ringrl.models.lora import is_lora, read_adapter

    if is_fsdp(model):  # the sharded resume state, read by every rank in apply_weights
        from ringrl.fsdp import check_sharded

        check_sharded(Path(ckpt))  # a damaged one raises here (an older checkpoint is then taken)
        return "sharded", {"ckpt": Path(ckpt)}
    if (Path(ckpt) / SHARDED_DIR).is_dir():  # written under fsdp: refused in apply_weights, on every rank
        return "sharded-for-ddp", {"ckpt": Path(ckpt)}
    if is_lora(model):
        return "adapter", read_adapter(Path(ckpt))
    masters = Path(ckpt) / MASTER_WEIGHTS
    if masters.is_file():
        return "state", torch.load(masters, map_location="cpu", weights_only=True)
    from ringrl.models.loading import load_policy

    saved, _ = load_policy(ckpt, "cpu", "float32", trust_remote_code)
    return "state", saved.state_dict()


def apply_weights(model: Any, weights: tuple[str, dict[str, Any]], optimizer: Any = None) -> None:
    """Load what :func:`read_weights` read into ``model``; for a sharded model also the ``optimizer``
    state (both live in the checkpoint's ``distcp/``; every rank calls this)."""
    kind, state = weights
    if kind == "sharded-for-ddp":
        raise UserError(
            f"resume: {state['ckpt']} was written with parallel.strategy=fsdp (its masters and optimizer state are "
            "sharded in distcp/); resume it with fsdp on the same number of ranks, or start a new run from its "
            "weights (model.path)"
        )
    if kind == "sharded":
        from ringrl.fsdp import load_sharded

        load_sharded(model, optimizer, state["ckpt"])
    elif kind == "adapter":
        from ringrl.models.lora import apply_adapter

        apply_adapter(model, state)
    else:
        model.load_state_dict(state)


def restore_weights(ckpt: Path, model: Any, trust_remote_code: bool = False) -> None:
    """The weights of checkpoint ``ckpt`` loaded into ``model`` (:func:`read_weights`)."""
    apply_weights(model, read_weights(ckpt, model, trust_remote_code))


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
