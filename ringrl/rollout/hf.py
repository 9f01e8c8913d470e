"""The rollout and evaluation engine: our own sampling loop over a transformers model's KV cache.

Per chunk of prompts: tokenise (left-padded), one prefill pass over the *distinct* prompts
(only the last position's logits), the cache repeated ``n`` times, then one decode pass
per new token over the sequences still running. A sequence that produced an end-of-
sequence id leaves the running batch at once (its rows are dropped from the cache), so
later steps cost only the unfinished ones. Sampling happens on the model's device
(:func:`ringrl.rollout.sampling.sample_step`); per token only the sampled id, its
log-prob and the entropy are kept, in preallocated ``[N, max_new_tokens]`` buffers read
back once at the end.

The sampled distribution is exactly ``softmax(logits / temperature)`` restricted by
``top_p`` / ``top_k``. A model's ``generation_config.json`` contributes its end-of-sequence
ids and nothing else: settings such as ``repetition_penalty``, ``suppress_tokens`` or its
own ``temperature`` are ignored, with one warning when the engine is built.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ringrl.rollout.sampling import sample_step


@dataclass(frozen=True)
class Completion:
    """One sampled response."""

    text: str  # decoded response, special tokens removed
    token_ids: list[int]  # response tokens, the end-of-sequence token included when produced
    logprobs: list[float]  # engine log-probs of token_ids under softmax(logits / temperature)
    entropies: list[float]  # entropy (nats) of softmax(logits / temperature) at each token
    finished: bool  # True when the response ended with an end-of-sequence token
    prompt_ids: list[int] = field(default_factory=list)  # the prompt's tokens as the engine fed them
    routing: Any = None  # MoE routing seen while sampling: [L, len(prompt_ids) + len(token_ids) - 1, k] int16


class Engine(Protocol):
    """What the RL trainer and evaluation need from a rollout engine (transformers here; vLLM or
    SGLang would implement the same call): ``n`` completions for each prompt, greedy at
    ``temperature == 0``, sampled from exactly ``softmax(logits / temperature)`` under
    ``top_p`` / ``top_k``, with the sampled tokens' log-probs of that distribution."""

    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        seed: int | None = None,
        top_k: int = 0,
    ) -> list[list[Completion]]: ...


#: generation_config.json keys that would change the sampling distribution under ``generate``,
#: with their neutral value (None: any value set counts).
SAMPLING_KEYS: dict[str, Any] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": None,
    "top_h": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "min_length": 0,
    "min_new_tokens": None,
    "exponential_decay_length_penalty": None,
    "guidance_scale": 1.0,
}


def ignored_sampling_settings(generation_config: Any) -> dict[str, Any]:
    """The settings of a ``GenerationConfig`` that ``generate`` would apply and this engine ignores."""
    out = {}
    for key, neutral in SAMPLING_KEYS.items():
        value = getattr(generation_config, key, None)
        if value is None or value == neutral or value == []:
            continue
        out[key] = value
    return out


def _padding_mask_suffices(config: Any) -> bool:
    """True when a decode step may pass the padding mask as a ready 4D mask: full attention in
    every layer (no sliding window to apply) and SDPA, which takes a boolean "may attend" mask."""
    if getattr(config, "_attn_implementation", None) != "sdpa":  # eager adds a float mask; flash wants 2D
        return False
    types = getattr(config, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return getattr(config, "sliding_window", None) is None or getattr(config, "use_sliding_window", True) is False


class HFEngine:
    """:class:`Engine` over a transformers causal LM; ``batch_size`` sequences decode together.

    ``add_special_tokens``: how prompts are tokenised (None: only when the tokenizer has no
    chat template, since a chat-templated prompt already holds its special tokens).
    ``record_routing``: keep, per completion, the top-k experts every MoE layer chose for each
    fed token (:mod:`ringrl.models.routing`), for routing replay in the training forward.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 64,
        add_special_tokens: bool | None = False,
        record_routing: bool = False,
    ):
        self.model = model
        self.record_routing = record_routing
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        self.add_special_tokens = (
            not getattr(tokenizer, "chat_template", None) if add_special_tokens is None else add_special_tokens
        )
        gen_cfg = getattr(model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        eos_ids = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        if tokenizer.eos_token_id is not None:
            eos_ids.append(tokenizer.eos_token_id)
        self.eos_ids = {int(e) for e in eos_ids if e is not None}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            from ringrl.errors import UserError

            raise UserError("the tokenizer has neither a pad nor an eos token; generation cannot pad batches")
        self.pad_id = int(pad)
        self.mask_4d = _padding_mask_suffices(model.config)
        self.context = getattr(model.config, "max_position_embeddings", None)
        params = inspect.signature(model.forward).parameters
        # transformers >= 5.x names the KV cache argument ``cache`` (``past_key_values`` before)
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        ignored = ignored_sampling_settings(gen_cfg) if gen_cfg is not None else {}
        if ignored:
            warnings.warn(
                "the model's generation_config sets "
                + ", ".join(f"{k}={v!r}" for k, v in ignored.items())
                + "; ringrl ignores them and samples softmax(logits / temperature) under top_p/top_k only",
                stacklevel=2,
            )

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        seed: int | None = None,
        top_k: int = 0,
    ) -> list[list[Completion]]:
        """``n`` completions for each prompt. Greedy when ``temperature == 0``: one decode per
        prompt, returned ``n`` times."""
        if n < 1 or not prompts:
            return [[] for _ in prompts]
        device = next(self.model.parameters()).device
        gen = torch.Generator(device=device)
        if seed is not None:
            gen.manual_seed(seed)
        else:
            gen.seed()
        m = 1 if temperature == 0 else n
        was_training = self.model.training
        self.model.eval()
        out: list[list[Completion]] = []
        per_call = max(1, self.batch_size // max(m, 1))
        try:
            for start in range(0, len(prompts), per_call):
                chunk = prompts[start : start + per_call]
                out.extend(self._chunk(chunk, m, temperature, top_p, top_k, max_new_tokens, gen, device))
        finally:
            self.model.train(was_training)
        return [g * n if m == 1 and n > 1 else g for g in out]

    def _chunk(self, prompts, m, temperature, top_p, top_k, max_new_tokens, gen, device) -> list[list[Completion]]:
        if not self.record_routing:
            return self._sample(prompts, m, temperature, top_p, top_k, max_new_tokens, gen, device, None)
        from ringrl.models.routing import record

        with record(self.model) as rec:
            return self._sample(prompts, m, temperature, top_p, top_k, max_new_tokens, gen, device, rec)

    def _sample(
        self, prompts, m, temperature, top_p, top_k, max_new_tokens, gen, device, rec
    ) -> list[list[Completion]]:
        from transformers import DynamicCache

        from ringrl.models.loading import is_moe

        tok = self.tokenizer
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=self.add_special_tokens)
        finally:
            tok.padding_side = side
        ids_PS = enc["input_ids"].to(device)  # [P, S] left-padded distinct prompts
        attn_PS = enc["attention_mask"].to(device)
        P, S = ids_PS.shape
        budget = max_new_tokens if self.context is None else max(1, min(max_new_tokens, self.context - S))
        extra: dict[str, Any] = {"output_router_logits": False} if is_moe(self.model) else {}
        cache = DynamicCache(config=self.model.config)
        extra[self._cache_kwarg] = cache
        pos_PS = (attn_PS.cumsum(-1) - 1).clamp_min(0)
        out = self.model(
            input_ids=ids_PS,
            attention_mask=attn_PS,
            position_ids=pos_PS,
            use_cache=True,
            logits_to_keep=1,
            **extra,
        )
        logits_NV = out.logits[:, -1]
        if rec is not None:  # [L, P*S, k] -> [L, P, S, k]: each prompt's routing (its samples share it)
            prefill_LPSk = rec.call(0).unflatten(1, (P, S))
            rec.clear()
        if m > 1:  # the n samples of a prompt share its prefill
            cache.batch_repeat_interleave(m)
            logits_NV = logits_NV.repeat_interleave(m, 0)
            attn_PS = attn_PS.repeat_interleave(m, 0)
            pos_PS = pos_PS.repeat_interleave(m, 0)
        N = P * m
        tokens_NT = torch.full((N, budget), self.pad_id, dtype=torch.long, device=device)
        logp_NT = torch.zeros((N, budget), dtype=torch.float32, device=device)
        ent_NT = torch.zeros((N, budget), dtype=torch.float32, device=device)
        length_N = torch.full((N,), budget, dtype=torch.long, device=device)
        eos_E = torch.tensor(sorted(self.eos_ids), dtype=torch.long, device=device)
        rows_A = torch.arange(N, device=device)  # the running sequences' rows in the buffers
        if rec is not None:  # decode routing: [L, N, T, k], the token fed at step t is response token t
            route_LNTk = torch.full(
                (prefill_LPSk.shape[0], N, budget, prefill_LPSk.shape[-1]), -1, dtype=prefill_LPSk.dtype, device=device
            )
        attn_AS = attn_PS
        next_pos_A1 = pos_PS[:, -1:] + 1
        for t in range(budget):
            tok_A, lp_A, ent_A = sample_step(logits_NV, temperature, top_p, top_k, gen)
            tokens_NT[rows_A, t] = tok_A
            logp_NT[rows_A, t] = lp_A
            ent_NT[rows_A, t] = ent_A
            if t == budget - 1:
                break
            done_A = torch.isin(tok_A, eos_E) if eos_E.numel() else torch.zeros_like(tok_A, dtype=torch.bool)
            if bool(done_A.any()):
                length_N[rows_A[done_A]] = t + 1
                keep_A = (~done_A).nonzero().squeeze(-1)
                if keep_A.numel() == 0:
                    break
                cache.batch_select_indices(keep_A)
                rows_A, tok_A = rows_A[keep_A], tok_A[keep_A]
                attn_AS, next_pos_A1 = attn_AS[keep_A], next_pos_A1[keep_A]
            attn_AS = torch.cat([attn_AS, attn_AS.new_ones((attn_AS.shape[0], 1))], dim=-1)
            out = self.model(
                input_ids=tok_A.unsqueeze(-1),
                # one query per row: the padding mask alone, already 4D (transformers then builds no mask)
                attention_mask=attn_AS[:, None, None, :].bool() if self.mask_4d else attn_AS,
                position_ids=next_pos_A1,
                use_cache=True,
                **extra,
            )
            logits_NV = out.logits[:, -1]
            next_pos_A1 = next_pos_A1 + 1
            if rec is not None:
                route_LNTk[:, rows_A, t] = rec.call(0)
                rec.clear()
        tokens, logps, ents = tokens_NT.tolist(), logp_NT.tolist(), ent_NT.tolist()
        lengths = length_N.tolist()
        n_real_P = [int(n) for n in enc["attention_mask"].sum(-1)]
        prompt_rows = [row[S - n_real :] for row, n_real in zip(ids_PS.tolist(), n_real_P)]
        routing: list[Any] = [None] * N
        if rec is not None:  # prompt tokens, then the response tokens that were fed (all but the last)
            pre, dec = prefill_LPSk.cpu(), route_LNTk.cpu()
            for i in range(N):
                p = i // m
                routing[i] = torch.cat([pre[:, p, S - n_real_P[p] :], dec[:, i, : max(0, lengths[i] - 1)]], dim=1)
        groups: list[list[Completion]] = []
        for i in range(N):
            k = lengths[i]
            ids = tokens[i][:k]
            if i % m == 0:
                groups.append([])
            groups[-1].append(
                Completion(
                    text=tok.decode(ids, skip_special_tokens=True),
                    token_ids=ids,
                    logprobs=logps[i][:k],
                    entropies=ents[i][:k],
                    finished=bool(ids) and ids[-1] in self.eos_ids,
                    prompt_ids=prompt_rows[i // m],
                    routing=routing[i],
                )
            )
        return groups
