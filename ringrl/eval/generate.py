"""Generation seam for evaluation: a ``Generator`` protocol and a plain transformers adapter.

Evaluation needs only "n responses per prompt". Anything with

    generate(prompts, n, *, temperature, top_p, max_new_tokens, seed) -> list[list[X]]

works, where each ``X`` is a string or an object with ``text`` (and, optionally,
``token_ids``, so response lengths are counted in tokens): the rollout engine's
``Completion``, this module's :class:`Generated`, or a scripted fake in tests.

:class:`TransformersGenerator` is the default: ``model.generate`` on left-padded
batches, sampling with temperature and top-p (top-k off, as in the paper), greedy
when ``temperature == 0``, one seed per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ringrl.errors import UserError


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
    """:class:`Generator` over a Hugging Face causal LM and its tokenizer (``model.generate``)."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            raise UserError("the tokenizer has neither a pad nor an eos token; generation cannot pad batches")
        eos = getattr(model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
        self.context = getattr(model.config, "max_position_embeddings", None)

    def generate(
        self, prompts: list[str], n: int, *, temperature: float, top_p: float, max_new_tokens: int, seed: int
    ) -> list[list[Generated]]:
        """``n`` responses for each prompt (one ``model.generate`` call for the whole list)."""
        import torch

        tok = self.tokenizer
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            # A chat-templated prompt already holds its special tokens.
            enc = tok(
                prompts, return_tensors="pt", padding=True, add_special_tokens=not getattr(tok, "chat_template", None)
            )
        finally:
            tok.padding_side = side
        device = next(self.model.parameters()).device
        input_ids = enc["input_ids"].to(device)  # [B, T]
        attention_mask = enc["attention_mask"].to(device)  # [B, T]
        prompt_len = input_ids.shape[1]
        budget = max_new_tokens if self.context is None else max(1, min(max_new_tokens, self.context - prompt_len))
        greedy = temperature == 0
        kwargs: dict[str, Any] = dict(
            max_new_tokens=budget,
            pad_token_id=self.pad_id,
            num_return_sequences=1 if greedy else n,
            do_sample=not greedy,
        )
        if not greedy:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)  # [B*m, T+L]
        gen = out[:, prompt_len:].tolist()
        per_prompt = 1 if greedy else n
        results: list[list[Generated]] = []
        for i in range(len(prompts)):
            group = [self._decode(gen[i * per_prompt + j]) for j in range(per_prompt)]
            results.append(group * n if greedy else group)
        return results

    def _decode(self, ids: list[int]) -> Generated:
        # Keep tokens up to and including the first eos; what follows is padding.
        for pos, t in enumerate(ids):
            if t in self.eos_ids:
                ids = ids[: pos + 1]
                break
        else:
            while ids and ids[-1] == self.pad_id and self.pad_id not in self.eos_ids:
                ids = ids[:-1]
        return Generated(self.tokenizer.decode(ids, skip_special_tokens=True), ids)


def load_model(path: str | Path, device: str | None = None, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a Hugging Face causal LM directory, in eval mode.

    Uses ``ringrl.models.load_policy`` when the package provides it; otherwise loads with
    ``AutoModelForCausalLM`` / ``AutoTokenizer``. Anything but a loadable causal LM
    directory is a UserError.
    """
    try:
        from ringrl.models import load_policy  # type: ignore[attr-defined]
    except ImportError:
        load_policy = None
    if load_policy is not None:
        model, tokenizer = load_policy(
            str(path), device=device, trust_remote_code=trust_remote_code, trust_key="--trust-remote-code"
        )
    else:
        p = Path(path)
        if not (p / "config.json").is_file():
            raise UserError(f"{p}: not a model directory (no config.json)")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(p))
            model = AutoModelForCausalLM.from_pretrained(str(p))
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{p}: cannot load a causal LM ({str(e).splitlines()[0]})") from None
        if device:
            model = model.to(device)
    model.eval()
    return model, tokenizer
