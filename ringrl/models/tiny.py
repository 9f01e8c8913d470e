"""The embedded default: a tiny Ling-style MoE and a tokenizer, built from scratch.

The model is a transformers-native ``Qwen2MoeForCausalLM``: every layer has a shared
expert plus fine-grained routed experts with top-k routing, the same shape of MoE as
Ling-lite (the MoE family the Ring-lite paper trains), at about a million parameters. The
tokenizer is a byte-level BPE trained with the ``tokenizers`` library on the embedded
task corpus, with digits split one per token (so arithmetic is learnable) and a
ChatML chat template. Both are saved with ``save_pretrained`` (safetensors) and load
with plain ``AutoModelForCausalLM`` / ``AutoTokenizer``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ringrl.config import doc

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
DIGIT_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the embedded MoE (defaults: about 1.3M parameters)."""

    vocab_size: int = doc("BPE vocabulary size (byte alphabet + merges + specials)", 512)
    hidden_size: int = doc("model width", 128)
    num_layers: int = doc("decoder layers, every one an MoE layer", 4)
    num_heads: int = doc("attention heads", 4)
    num_kv_heads: int = doc("key/value heads (grouped-query attention)", 2)
    num_experts: int = doc("routed experts per layer", 8)
    experts_per_token: int = doc("top-k routing", 2)
    expert_size: int = doc("intermediate size of each routed expert (fine-grained: small)", 64)
    shared_expert_size: int = doc("intermediate size of the shared expert", 128)
    max_positions: int = doc("maximum sequence length", 1024)
    seed: int = doc("initialisation seed", 0)

    def validate(self) -> None:
        from ringrl.errors import ConfigError

        if self.hidden_size % self.num_heads:
            raise ConfigError("model.tiny.hidden_size", "must be divisible by num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError("model.tiny.num_kv_heads", "must divide num_heads")
        if not 1 <= self.experts_per_token <= self.num_experts:
            raise ConfigError("model.tiny.experts_per_token", "must be between 1 and num_experts")


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512):
    """Byte-level BPE over ``corpus`` with single-digit tokens; returns a PreTrainedTokenizerFast."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # GPT-2's split pattern with one digit per piece (a leading space stays attached: " 4")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(DIGIT_SPLIT), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        additional_special_tokens=["<|endoftext|>", "<|im_start|>"],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_model(cfg: TinyModelConfig, tokenizer):
    """A freshly initialised Qwen2-MoE (shared expert + routed experts, top-k) for ``tokenizer``."""
    import torch
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    hf_cfg = Qwen2MoeConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.shared_expert_size,
        moe_intermediate_size=cfg.expert_size,
        shared_expert_intermediate_size=cfg.shared_expert_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        num_experts=cfg.num_experts,
        num_experts_per_tok=cfg.experts_per_token,
        decoder_sparse_step=1,
        norm_topk_prob=True,
        max_position_embeddings=cfg.max_positions,
        output_router_logits=False,
        router_aux_loss_coef=0.0,  # ringrl adds Eq. 5/6 itself with its own coefficients
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(cfg.seed)
    model = Qwen2MoeForCausalLM(hf_cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build_tiny(out_dir: Path, corpus: Iterable[str], cfg: TinyModelConfig | None = None) -> Path:
    """Train the tokenizer on ``corpus``, build the model, save both to ``out_dir`` (atomically)."""
    from ringrl.utils.io import atomic_dir

    cfg = cfg or TinyModelConfig()
    tokenizer = train_tokenizer(corpus, cfg.vocab_size)
    model = build_model(cfg, tokenizer)
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
