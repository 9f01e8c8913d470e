"""Loading any local Hugging Face causal LM directory (dense or MoE) as a policy.

The embedded tiny MoE goes through exactly this path too. A directory that is not a
causal LM, or has no tokenizer, is a :class:`UserError` with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ringrl.errors import UserError


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{device}' requested but CUDA is not available")
    return device


def resolve_dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise UserError(f"dtype '{dtype}': expected one of {', '.join(table)}")
    return table[dtype]


def remote_code_files(path: str | Path) -> list[str]:
    """The files of ``path`` (config.json, tokenizer_config.json) whose ``auto_map`` points at Python
    code shipped in the directory (custom architectures such as Ling/Ring's BailingMoe)."""
    import json

    found = []
    for name in ("config.json", "tokenizer_config.json"):
        f = Path(path) / name
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and data.get("auto_map"):
            found.append(name)
    return found


def check_remote_code(path: str | Path, trust_remote_code: bool, key: str = "model.trust_remote_code") -> None:
    """A directory with custom code is refused unless ``trust_remote_code``; the one-line error names ``key``.

    (transformers is always called with an explicit ``trust_remote_code``, so it never asks on stdin.)"""
    files = remote_code_files(path)
    if files and not trust_remote_code:
        raise UserError(
            f"{path}: the model's code ships in its directory ({files[0]} 'auto_map'); "
            f"set {key}=true to run that code (only for a model you trust)"
        )


# files of which a tokenizer directory holds at least one (fast tokenizer, SentencePiece, BPE, WordPiece)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "tiktoken.model")


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    p = Path(path)
    if p.is_dir() and not any((p / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{p}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    try:
        tok = AutoTokenizer.from_pretrained(str(p), trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers raises many kinds here
        raise UserError(f"{p}: cannot load a tokenizer ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_policy(
    path: str | Path,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    trust_key: str = "model.trust_remote_code",
) -> tuple[Any, Any]:
    """(model, tokenizer) from a local HF directory; the model on ``device``, in the mode ``from_pretrained`` leaves it (eval).

    ``dtype`` is the dtype of the loaded parameters. A directory whose architecture is
    Python code beside the weights (``auto_map``) loads only with ``trust_remote_code``;
    otherwise it is a one-line error naming ``trust_key``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{p}: model directory not found")
    if not (p / "config.json").is_file():
        raise UserError(f"{p}: not a Hugging Face model directory (no config.json)")
    check_remote_code(p, trust_remote_code, trust_key)
    try:
        hf_cfg = AutoConfig.from_pretrained(str(p), trust_remote_code=trust_remote_code)
    except Exception as e:
        raise UserError(f"{p}: unreadable config.json ({str(e).splitlines()[0][:160]})") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    custom = trust_remote_code and "AutoModelForCausalLM" in (getattr(hf_cfg, "auto_map", None) or {})
    if not custom and hf_cfg.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise UserError(f"{p}: model type '{hf_cfg.model_type}' is not a causal language model")
    # some encoder families (BERT, RoBERTa, ...) have a causal class in the mapping too: a
    # directory saved as e.g. BertForMaskedLM would silently load as a (bidirectional) "policy"
    archs = list(getattr(hf_cfg, "architectures", None) or [])
    causal = {n for v in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() for n in ((v,) if isinstance(v, str) else v)}
    if archs and not any(a in causal or a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise UserError(f"{p}: architecture {', '.join(archs)} is not a causal language model")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    tokenizer = load_tokenizer(p, trust_remote_code)  # first: a directory without one fails before the weights load
    try:
        model = AutoModelForCausalLM.from_pretrained(str(p), dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise UserError(f"{p}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    model.to(dev)  # type: ignore[arg-type]  # transformers' typing of the wrapped .to reads it as unbound
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def source_dtype(path: str | Path) -> str:
    """The dtype recorded in ``path``/config.json (``dtype``, or the older ``torch_dtype``); float32 if none."""
    import json

    try:
        data = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return "float32"
    value = data.get("dtype") or data.get("torch_dtype") or "float32"
    return str(value).replace("torch.", "")


def resolve_save_dtype(save_dtype: str, source: str | Path):
    """``model.save_dtype`` -> torch dtype; ``auto`` is the dtype in the source directory's config.json."""
    import torch

    name = source_dtype(source) if save_dtype == "auto" else save_dtype
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    return table.get(name, torch.float32)


def load_for_training(
    cfg: Any, path: str | Path, device: str | None = None, dtype: str | None = None
) -> tuple[Any, Any]:
    """(model, tokenizer) for training from ``cfg`` (a :class:`ringrl.common_config.ModelConfig`).

    The parameters are float32 masters (so are the optimizer's moments): an update of 3e-6
    on a weight near 0.02 is far below bf16's resolution and would round away. ``cfg.dtype``
    (``dtype`` overrides it) is the *compute* dtype, applied by autocast in
    :mod:`ringrl.models.forward` and around generation; ``cfg.head_chunk_tokens`` and
    ``cfg.activation_checkpointing`` are applied here."""
    from ringrl.models.forward import set_compute

    dev = resolve_device(device or cfg.device)
    compute = resolve_dtype(dtype or cfg.dtype, dev)
    model, tokenizer = load_policy(path, dev, "float32", cfg.trust_remote_code)
    set_compute(model, compute, cfg.head_chunk_tokens)
    if cfg.activation_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise UserError(
                f"config key 'model.activation_checkpointing': {type(model).__name__} does not support "
                "gradient checkpointing"
            )
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.train()  # transformers checkpoints only in training mode (the model's dropout, if any, then applies)
    if cfg.lora.rank > 0:
        from ringrl.models.lora import apply_lora

        model = apply_lora(model, cfg.lora)  # only the adapters train (ringrl.models.lora)
    return model, tokenizer


def is_moe(model: Any) -> bool:
    """True when the model's config describes routed experts (its forward can return router logits).
    A DDP wrapper is looked through."""
    cfg = getattr(model, "module", model).config
    n = (
        getattr(cfg, "num_experts", None)
        or getattr(cfg, "num_local_experts", None)
        or getattr(cfg, "n_routed_experts", None)
    )
    return isinstance(n, int) and n > 1


def moe_top_k(model: Any) -> int:
    cfg = getattr(model, "module", model).config
    return int(getattr(cfg, "num_experts_per_tok", None) or getattr(cfg, "moe_topk", None) or 1)
