"""Models: the embedded tiny MoE and tokenizer, and loading of any HF causal LM directory."""

from ringrl.models.loading import load_policy, load_tokenizer

__all__ = ["load_policy", "load_tokenizer"]
