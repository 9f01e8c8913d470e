"""Generation seam for evaluation: a ``Generator`` protocol and a plain transformers adapter.

Evaluation needs only "n responses per prompt". Anything with

    generate(prompts, n, *, temperature, top_p, max_new_tokens, seed) -> list[list[X]]

works, where each ``X`` is a string or an object with ``text`` (and, optionally,
``token_ids``, so response lengths are counted in tokens): the rollout engine's
``Completion``, this module's :class:`Generated`, or a scripted fake in tests.

:class:`TransformersGenerator` is the default: the rollout engine RL samples with
(:class:`ringrl.rollout.HFEngine`, its own loop over the KV cache), sampling exactly
``softmax(logits / temperature)`` under top-p (top-k off, as in the paper), greedy when
``temperature == 0``, one seed per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Generator(Protocol):
    """Anything that samples ``n`` responses for each prompt."""

    def generate(
        self, prompts: list[str], n: int, *, temperature: float, top_p: float, max_new_tokens: int, seed: int
    ) -> Sequence[Sequence[Any]]: ...


@dataclass(frozen=True)
class Generated:
    """One generated response: its text and the generated token ids (eos included when produced)."""

    text: str
    token_ids: list[int] = field(default_factory=list)


def response_text(item: Any) -> str:
    """The text of a generator output (a string or anything with ``.text``)."""
    return item if isinstance(item, str) else str(item.text)


def response_tokens(item: Any) -> int | None:
    """The generated token count of an output when it carries ``token_ids``, else None."""
    ids = None if isinstance(item, str) else getattr(item, "token_ids", None)
    return None if ids is None else len(ids)


class TransformersGenerator:
    """:class:`Generator` over a Hugging Face causal LM and its tokenizer: the rollout engine
    (:class:`ringrl.rollout.HFEngine`) that RL samples with, returning :class:`Generated`."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 1 << 30):
        """``batch_size``: sequences decoded together (default: the whole call; the eval runner
        already sends ``EvalConfig.batch_size`` prompts per call)."""
        from ringrl.rollout import HFEngine

        self.engine = HFEngine(model, tokenizer, batch_size=batch_size, add_special_tokens=None)
        self.model = model
        self.tokenizer = tokenizer

    def generate(
        self, prompts: list[str], n: int, *, temperature: float, top_p: float, max_new_tokens: int, seed: int
    ) -> list[list[Generated]]:
        """``n`` responses for each prompt (greedy at ``temperature == 0``: one decode, repeated ``n`` times)."""
        groups = self.engine.generate(
            prompts, n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
        )
        return [[Generated(c.text, c.token_ids) for c in g] for g in groups]


def load_model(path: str | Path, device: str | None = None, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a Hugging Face causal LM directory (``ringrl.models.load_policy``),
    in eval mode. Anything but a loadable causal LM directory is a UserError."""
    from ringrl.models.loading import load_policy

    model, tokenizer = load_policy(
        str(path), device=device, trust_remote_code=trust_remote_code, trust_key="--trust-remote-code"
    )
    model.eval()
    return model, tokenizer
