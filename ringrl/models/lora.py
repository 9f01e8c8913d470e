"""LoRA through PEFT (``model.lora.*``): low-rank adapters on the attention and MLP projections.

With ``model.lora.rank > 0`` the loaded model is wrapped by ``peft.get_peft_model``: only the
adapter matrices train (float32, like every master weight), so gradients and AdamW state
exist for them alone. Everything else follows from that:

- **Reference model** (RL's KL term): the same model with its adapters disabled
  (:class:`AdapterDisabled`), so no second copy of the weights is held.
- **Checkpoints**: the directory itself is a plain Hugging Face model with the adapters merged
  into the base weights (loads with ``AutoModelForCausalLM``, no PEFT needed), and
  ``adapter/`` beside it holds the adapter alone (``PeftModel.from_pretrained`` format).
  Merging works on a copy, so saving costs a second copy of the model for a moment.
- **Resume**: the base weights are reloaded from ``model.path`` (they never change) and the
  adapter weights from ``adapter/``, exactly.
- **MoE models**: the default targets are the attention projections and the dense / shared-
  expert MLP projections. The routed experts of transformers' MoE families are fused 3-D
  parameters rather than ``nn.Linear`` modules, and the router is not targeted either, so
  both stay as the base model learned them (routing stays stable while the adapters train).
  Name other modules in ``model.lora.target_modules`` to adapt them.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringrl.config import doc
from ringrl.errors import ConfigError

ADAPTER_DIR = "adapter"
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraConfig:
    """``model.lora.*``: low-rank adapters (PEFT); rank 0 trains every parameter."""

    rank: int = doc("LoRA rank r (0: off, every parameter trains)", 0)
    alpha: int = doc("LoRA scaling alpha (the update is scaled by alpha / r)", 16)
    dropout: float = doc("dropout on the adapters' input", 0.0)
    target_modules: list[str] = doc(
        "module names to adapt (default: attention and MLP projections; MoE routed experts and routers stay frozen)",
        default_factory=lambda: list(DEFAULT_TARGETS),
    )

    def validate(self) -> None:
        if self.rank < 0:
            raise ConfigError("model.lora.rank", f"must be >= 0, got {self.rank}")
        if self.rank == 0:
            return
        if importlib.util.find_spec("peft") is None:
            raise ConfigError("model.lora.rank", "LoRA needs the peft package: pip install 'ringrl[lora]'")
        if not self.alpha > 0:
            raise ConfigError("model.lora.alpha", f"must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ConfigError("model.lora.dropout", f"must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("model.lora.target_modules", "must name at least one module")


def is_lora(model: Any) -> bool:
    return hasattr(getattr(model, "module", model), "peft_config")


def apply_lora(model: Any, cfg: LoraConfig) -> Any:
    """``model`` wrapped with fresh adapters (float32), only they trainable."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in cfg.target_modules if t not in present]
    if len(missing) == len(cfg.target_modules):
        raise ConfigError("model.lora.target_modules", f"none of {cfg.target_modules} is a module of this model")
    peft_cfg = PeftLoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=[t for t in cfg.target_modules if t in present],
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def trainable_fraction(model: Any) -> tuple[int, float]:
    """(trainable parameters, their share of all parameters)."""
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train, train / max(1, total)


def describe_trainable(model: Any) -> str:
    """The start-up line of a LoRA run: what trains, of how much."""
    train, share = trainable_fraction(model)
    return f"LoRA: {train:,} trainable parameters ({100 * share:.3g}% of the model)"


class AdapterDisabled:
    """The base model of a LoRA policy, for the reference log-probs: calls run with the adapters
    off; every attribute is the policy's (no copy of the weights)."""

    def __init__(self, model: Any):
        self._model = model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._model.disable_adapter():
            return self._model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def merged_copy(model: Any) -> Any:
    """A plain transformers model with the adapters merged in (the policy is left as it is)."""
    return copy.deepcopy(getattr(model, "module", model)).merge_and_unload()


def save_adapter(model: Any, directory: Path) -> None:
    getattr(model, "module", model).save_pretrained(str(directory / ADAPTER_DIR), safe_serialization=True)


def read_adapter(ckpt: Path) -> dict[str, Any]:
    """The adapter weights of LoRA checkpoint ``ckpt`` (``adapter/adapter_model.safetensors``)."""
    from safetensors.torch import load_file

    f = Path(ckpt) / ADAPTER_DIR / "adapter_model.safetensors"
    if not f.is_file():
        from ringrl.errors import UserError

        raise UserError(f"{ckpt}: no {ADAPTER_DIR}/adapter_model.safetensors (not a LoRA checkpoint)")
    return dict(load_file(str(f)))


def apply_adapter(model: Any, state: dict[str, Any]) -> None:
    """Load adapter weights (:func:`read_adapter`) into the LoRA policy ``model`` (exact)."""
    from peft import set_peft_model_state_dict

    ckpt = "the checkpoint"
    result = set_peft_model_state_dict(getattr(model, "module", model), state)
    unexpected = list(getattr(result, "unexpected_keys", None) or [])
    if unexpected:
        from ringrl.errors import UserError

        raise UserError(f"{ckpt}: its adapter does not fit this model ({unexpected[0]} ...)")
