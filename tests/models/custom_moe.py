"""Writes a tiny MoE whose architecture is Python code in its own directory (``auto_map``),
as Ling/Ring's BailingMoe ships: ``configuration_tinymoe.py`` + ``modeling_tinymoe.py``.

The modeling code is our own (not a transformers class under another name): a Llama
decoder whose MLPs are replaced by a top-k routed mixture of small experts. It exposes
its router logits the way ringrl expects of any MoE (transformers' convention):
``forward(..., output_router_logits=True)`` returns an output whose ``router_logits`` is
a tuple with one ``[batch * seq, num_experts]`` tensor per MoE layer, and the config
names its experts ``num_experts`` and its top-k ``num_experts_per_tok``.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIGURATION = """
from transformers import LlamaConfig


class TinyMoeConfig(LlamaConfig):
    model_type = "tinymoe"

    def __init__(self, num_experts=4, num_experts_per_tok=2, expert_size=16, **kwargs):
        self.num_experts = num_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.expert_size = expert_size
        super().__init__(**kwargs)
"""

MODELING = '''
import torch
import torch.nn as nn
from transformers import LlamaForCausalLM
from transformers.modeling_outputs import MoeCausalLMOutputWithPast

from .configuration_tinymoe import TinyMoeConfig


class TinyMoeBlock(nn.Module):
    """Top-k routed experts; keeps its last router logits [B*T, E] for the model's output."""

    def __init__(self, config):
        super().__init__()
        h, e = config.hidden_size, config.num_experts
        self.top_k = config.num_experts_per_tok
        self.gate = nn.Linear(h, e, bias=False)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(h, config.expert_size, bias=False), nn.SiLU(), nn.Linear(config.expert_size, h, bias=False))
            for _ in range(e)
        )
        self.router_logits = None

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        logits = self.gate(flat)
        self.router_logits = logits
        weights, idx = torch.softmax(logits.float(), dim=-1).topk(self.top_k, dim=-1)
        weights = (weights / weights.sum(-1, keepdim=True)).to(flat.dtype)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            w = (weights * (idx == e)).sum(-1)
            rows = w > 0
            if rows.any():
                out[rows] = out[rows] + w[rows, None] * expert(flat[rows])
        return out.view_as(x)


class TinyMoeForCausalLM(LlamaForCausalLM):
    config_class = TinyMoeConfig

    def __init__(self, config):
        super().__init__(config)
        for layer in self.model.layers:
            layer.mlp = TinyMoeBlock(config)
        self.post_init()

    def forward(self, *args, output_router_logits=False, **kwargs):
        out = super().forward(*args, **kwargs)
        if not output_router_logits:
            return out
        router_logits = tuple(layer.mlp.router_logits for layer in self.model.layers)
        return MoeCausalLMOutputWithPast(**dict(out.items()), router_logits=router_logits)
'''


def write_custom_moe(out: Path, tokenizer_dir: Path) -> Path:
    """The custom-code MoE, randomly initialised (seed 0), with ``tokenizer_dir``'s tokenizer, saved to ``out``."""
    import importlib.util
    import sys

    import torch
    from transformers import AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    (out / "configuration_tinymoe.py").write_text(CONFIGURATION)
    (out / "modeling_tinymoe.py").write_text(MODELING)
    # build it once from the files themselves (as a package, for the relative import)
    pkg = f"tinymoe_{abs(hash(str(out)))}"
    spec = importlib.util.spec_from_file_location(pkg, out / "__init__.py", submodule_search_locations=[str(out)])
    (out / "__init__.py").write_text("")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[pkg] = module
    conf = importlib.import_module(f"{pkg}.configuration_tinymoe")
    modeling = importlib.import_module(f"{pkg}.modeling_tinymoe")
    (out / "__init__.py").unlink()
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = conf.TinyMoeConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        num_experts=4,
        num_experts_per_tok=2,
        expert_size=16,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = modeling.TinyMoeForCausalLM(cfg)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    data = json.loads((out / "config.json").read_text())
    data["auto_map"] = {
        "AutoConfig": "configuration_tinymoe.TinyMoeConfig",
        "AutoModelForCausalLM": "modeling_tinymoe.TinyMoeForCausalLM",
    }
    data["architectures"] = ["TinyMoeForCausalLM"]
    (out / "config.json").write_text(json.dumps(data, indent=2))
    return out
