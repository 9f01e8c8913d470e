"""Sampling with transformers ``generate``: batched, left-padded, seeded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Completion:
    """One sampled response."""

    text: str  # decoded response, special tokens removed
    token_ids: list[int]  # response tokens, the end-of-sequence token included when produced
    logprobs: list[float]  # engine log-probs of token_ids under softmax(logits / temperature)
    entropies: list[float]  # entropy (nats) of the sampling distribution softmax(logits / temperature) at each token
    finished: bool  # True when the response ended with an end-of-sequence token


class HFEngine:
    """Rollouts through ``model.generate``; ``batch_size`` prompts per generate call."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        eos = model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        if tokenizer.eos_token_id is not None:
            eos_ids = [*eos_ids, tokenizer.eos_token_id]
        self.eos_ids = {int(e) for e in eos_ids if e is not None}

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """``n`` completions for each prompt (greedy when ``temperature == 0``)."""
        if seed is not None:
            torch.manual_seed(seed)
        was_training = self.model.training
        self.model.eval()
        out: list[list[Completion]] = []
        per_call = max(1, self.batch_size // max(n, 1))
        try:
            for start in range(0, len(prompts), per_call):
                out.extend(
                    self._generate_chunk(prompts[start : start + per_call], n, temperature, top_p, max_new_tokens)
                )
        finally:
            self.model.train(was_training)
        return out

    def _generate_chunk(self, prompts, n, temperature, top_p, max_new_tokens) -> list[list[Completion]]:
        device = next(self.model.parameters()).device
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        sample = temperature > 0
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            num_return_sequences=n,
            return_dict_in_generate=True,
            output_logits=True,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids),
        )
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        res = self.model.generate(**enc, **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        seqs_NT = res.sequences[:, prompt_len:]
        logits_NTV = torch.stack(res.logits, dim=1).float()
        if sample:
            logits_NTV = logits_NTV / temperature
        logp_NTV = torch.log_softmax(logits_NTV, dim=-1)
        tok_logp_NT = logp_NTV.gather(-1, seqs_NT.unsqueeze(-1)).squeeze(-1)
        ent_NT = -(logp_NTV.exp() * logp_NTV).sum(-1)
        groups: list[list[Completion]] = []
        for i in range(seqs_NT.shape[0]):
            ids = seqs_NT[i].tolist()
            length, finished = len(ids), False
            for t, tok in enumerate(ids):
                if tok in self.eos_ids:
                    length, finished = t + 1, True
                    break
            ids = ids[:length]
            comp = Completion(
                text=self.tokenizer.decode(ids, skip_special_tokens=True),
                token_ids=ids,
                logprobs=tok_logp_NT[i, :length].tolist(),
                entropies=ent_NT[i, :length].tolist(),
                finished=finished,
            )
            if i % n == 0:
                groups.append([])
            groups[-1].append(comp)
        return groups
