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


# files of which a tokenizer directory holds at least one (fast tokenizer, SentencePiece, BPE, WordPiece)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "tiktoken.model")


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    p = Path(path)
    if p.is_dir() and not any((p / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{p}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    try:
        tok = AutoTokenizer.from_pretrained(str(p))
    except Exception as e:  # transformers raises many kinds here
        raise UserError(f"{p}: cannot load a tokenizer ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_policy(path: str | Path, device: str | None = None, dtype: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local HF directory; the model on ``device``, in the mode ``from_pretrained`` leaves it (eval)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{p}: model directory not found")
    if not (p / "config.json").is_file():
        raise UserError(f"{p}: not a Hugging Face model directory (no config.json)")
    try:
        hf_cfg = AutoConfig.from_pretrained(str(p))
    except Exception as e:
        raise UserError(f"{p}: unreadable config.json ({str(e).splitlines()[0][:160]})") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if hf_cfg.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise UserError(f"{p}: model type '{hf_cfg.model_type}' is not a causal language model")
    # some encoder families (BERT, RoBERTa, ...) have a causal class in the mapping too: a
    # directory saved as e.g. BertForMaskedLM would silently load as a (bidirectional) "policy"
    archs = list(getattr(hf_cfg, "architectures", None) or [])
    causal = {n for v in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() for n in ((v,) if isinstance(v, str) else v)}
    if archs and not any(a in causal or a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise UserError(f"{p}: architecture {', '.join(archs)} is not a causal language model")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    tokenizer = load_tokenizer(p)  # first: a directory without one fails before the weights load
    try:
        model = AutoModelForCausalLM.from_pretrained(str(p), dtype=torch_dtype)
    except Exception as e:
        raise UserError(f"{p}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    model.to(dev)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
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
    return bool(n) and n > 1


def moe_top_k(model: Any) -> int:
    cfg = getattr(model, "module", model).config
    return int(getattr(cfg, "num_experts_per_tok", None) or getattr(cfg, "moe_topk", None) or 1)
