"""Config sections shared by several stages: the model to load and the optimizer."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ringrl.config import doc
from ringrl.errors import ConfigError, UserError
from ringrl.models.lora import LoraConfig
from ringrl.models.tiny import TinyModelConfig


@dataclass(frozen=True)
class ModelConfig:
    """Which model to train: a local Hugging Face directory, or the embedded tiny MoE."""

    path: str | None = doc("local HF causal LM directory; null builds the embedded tiny MoE", None)
    device: str = doc("'auto' (CUDA when present), 'cpu' or 'cuda[:N]'", "auto")
    dtype: str = doc(
        "compute dtype, applied by autocast: 'auto' (bf16 on CUDA, fp32 on CPU), 'float32', 'bfloat16' or "
        "'float16' (no loss scaling: prefer bfloat16); weights and optimizer state are always float32 (the master weights)",
        "auto",
    )
    save_dtype: str = doc(
        "dtype of the weights in checkpoints: 'auto' (the dtype in the source model's config.json), 'float32' "
        "or 'bfloat16' (resume state keeps the float32 masters either way)",
        "auto",
    )
    trust_remote_code: bool = doc(
        "run Python code shipped in the model directory (config.json 'auto_map', e.g. Ling/Ring's BailingMoe); "
        "only for models you trust",
        False,
    )
    activation_checkpointing: bool = doc(
        "recompute each decoder layer's activations in backward (less memory, about a third more compute)", False
    )
    head_chunk_tokens: int = doc(
        "tokens per chunk of the output head + float32 log-softmax in the loss pass and SFT loss (memory about "
        "chunk x vocabulary x 8 bytes); 0: the model's own full [B, T, V] logits",
        512,
    )
    lora: LoraConfig = doc("LoRA adapters through PEFT (rank 0: train every parameter)", default_factory=LoraConfig)
    tiny: TinyModelConfig = doc(
        "shape of the embedded tiny MoE (used when path is null)", default_factory=TinyModelConfig
    )

    def validate(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError("device", f"must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        dtypes = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
        if self.dtype not in dtypes:
            raise ConfigError("dtype", f"must be one of {', '.join(dtypes)}, got {self.dtype!r}")
        if self.save_dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError("save_dtype", f"must be 'auto', 'float32' or 'bfloat16', got {self.save_dtype!r}")
        if self.head_chunk_tokens < 0:
            raise ConfigError("head_chunk_tokens", f"must be >= 0, got {self.head_chunk_tokens}")


@dataclass(frozen=True)
class ParallelConfig:
    """Data parallelism under ``torchrun`` (docs/scale.md): replicated (DDP) or sharded (FSDP2)."""

    strategy: str = doc(
        "'ddp': every rank holds the whole model, gradients and optimizer state; 'fsdp': PyTorch FSDP2 "
        "(fully_shard per decoder layer and the root) shards them over the ranks",
        "ddp",
    )
    reshard_after_forward: bool = doc(
        "fsdp: free each layer's gathered weights after its forward and gather them again in backward "
        "(less memory, one more all-gather per layer)",
        True,
    )
    cpu_offload: bool = doc(
        "fsdp on CUDA: keep the sharded parameters, gradients and optimizer state in host memory between uses", False
    )
    shard_size: int = doc(
        "fsdp: ranks each parameter is sharded over; 0: all ranks; a divisor of the world size below it: hybrid "
        "sharding (HSDP), sharded within groups of that many consecutive ranks (e.g. one node's GPUs) and "
        "replicated across the groups",
        0,
        ge=0,
    )

    def validate(self) -> None:
        if self.strategy not in ("ddp", "fsdp"):
            raise ConfigError("strategy", f"must be 'ddp' or 'fsdp', got {self.strategy!r}")
        if self.shard_size and self.strategy != "fsdp":
            raise ConfigError("shard_size", "needs parallel.strategy=fsdp")

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp"


def validate_parallel(parallel: ParallelConfig, model: ModelConfig) -> None:
    """Cross-section check of a stage config with ``parallel`` and ``model`` sections."""
    world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's; 1 on one process
    if parallel.shard_size and (parallel.shard_size > world or world % parallel.shard_size):
        raise ConfigError("parallel.shard_size", f"must divide the world size {world}, got {parallel.shard_size}")
    if parallel.cpu_offload:
        from ringrl.models.loading import resolve_device

        if not parallel.sharded:
            raise ConfigError(
                "parallel.cpu_offload", "needs parallel.strategy=fsdp (ddp keeps everything on the device)"
            )
        if not resolve_device(model.device).startswith("cuda"):
            raise ConfigError(
                "parallel.cpu_offload", "offloads to host memory from a CUDA device; the model is on the CPU already"
            )
    if parallel.sharded and model.lora.rank > 0:
        raise ConfigError(
            "parallel.strategy",
            "fsdp does not shard LoRA adapters; use parallel.strategy=ddp with model.lora.rank > 0 "
            "(the frozen base is small next to full fine-tuning's optimizer state)",
        )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warm-up then cosine (or constant) schedule."""

    lr: float = doc("peak learning rate", 3e-4, gt=0)
    weight_decay: float = doc("AdamW decoupled weight decay", 0.1, ge=0)
    betas: tuple[float, float] = doc("AdamW betas", (0.9, 0.95), ge=0, lt=1)
    eps: float = doc("AdamW epsilon (added to the denominator)", 1e-8, gt=0)
    warmup_ratio: float = doc("fraction of optimizer steps spent in linear warm-up", 0.01, ge=0, lt=1)
    schedule: str = doc("'cosine' (decay to min_lr_ratio * lr) or 'constant' after warm-up", "cosine")
    min_lr_ratio: float = doc("final learning rate of the cosine schedule, as a fraction of lr", 0.1, ge=0, le=1)
    grad_clip: float = doc("clip the global gradient norm to this value (0 disables)", 1.0, ge=0)

    def validate(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError("schedule", f"must be 'cosine' or 'constant', got {self.schedule!r}")


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based): linear warm-up, then cosine or constant."""
    import math

    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model, cfg: OptimConfig, total_steps: int):
    """AdamW (no decay on biases and norms) and a LambdaLR implementing :func:`lr_factor`."""
    import torch

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=cfg.betas,
        eps=cfg.eps,
    )
    warmup = max(1, round(cfg.warmup_ratio * total_steps)) if cfg.warmup_ratio > 0 else 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, warmup, cfg.schedule, cfg.min_lr_ratio)
    )
    return opt, sched


def optimizer_step(model, optimizer, grad_clip: float, loss: float | None = None) -> tuple[float, bool]:
    """Clip the global gradient norm (``grad_clip`` 0: no clipping), step and zero the gradients.

    Returns the norm before clipping and whether the update was applied: a non-finite
    norm (or ``loss``) skips it. After an update the weights are checked finite; if a step
    from a finite gradient made them non-finite (the hyperparameters are validated finite
    at config time, so this is a numeric blow-up) :class:`NonFiniteUpdate` stops the run
    rather than train on, or save, such weights. The learning-rate schedule is the caller's.
    """
    import torch

    from ringrl.distributed import drop_unreached_grads
    from ringrl.fsdp import full_value

    drop_unreached_grads(model)  # data parallel: what no rank ran on real data gets no update, as on one process
    params = [p for p in model.parameters() if p.grad is not None]
    clip = grad_clip if grad_clip > 0 else float("inf")
    # sharded (FSDP) gradients: the norm is a DTensor over all shards
    norm = float(full_value(torch.nn.utils.clip_grad_norm_(params, clip))) if params else 0.0
    checks = [norm] if loss is None else [norm, loss]
    ok = bool(torch.isfinite(torch.tensor(checks)).all())
    if ok:
        optimizer.step()
        if not weights_finite(params):
            raise NonFiniteUpdate(
                "the optimizer step made the weights non-finite from a finite gradient; stopping "
                "(no checkpoint is written with such weights: the last one is intact)"
            )
    optimizer.zero_grad(set_to_none=True)
    return norm, ok


class NonFiniteUpdate(UserError):
    """The weights became NaN or infinite in an optimizer step although the gradient was finite."""


def weights_finite(params) -> bool:
    """True when every tensor of ``params`` is finite (one reduction per tensor, one host sync; for
    sharded tensors every rank's shard, agreed over the ranks: :func:`ringrl.fsdp.local_all_finite`)."""
    from ringrl.fsdp import local_all_finite

    return local_all_finite(params)


def validate_task_mix(tasks: list[str], levels: Any, weights: dict[str, float] | None) -> None:
    """Config check of an embedded data section: per-task ``levels``/``weights`` name only ``tasks``."""
    for key, mapping in (("levels", levels), ("weights", weights)):
        unknown = sorted(set(mapping) - set(tasks)) if isinstance(mapping, dict) else []
        if unknown:
            raise ConfigError(f"data.{key}", f"'{unknown[0]}' is not one of data.tasks ({', '.join(tasks)})")
    if weights and (min(weights.values()) < 0 or sum(weights.get(t, 1.0) for t in tasks) <= 0):
        raise ConfigError("data.weights", "shares must be >= 0 with a positive sum")


def schedule_step(scheduler) -> None:
    """Advance the learning-rate schedule by one step, also after an update that was skipped
    for a non-finite gradient: the schedule counts steps, not applied updates. (torch warns
    when the optimizer has not stepped yet; here that is intended, so the warning is muted.)"""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`"
        )
        scheduler.step()
