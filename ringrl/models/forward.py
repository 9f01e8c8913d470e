"""Forward passes of the policy: the model's own logits, and the bounded-memory token pass.

:func:`token_stats` is what training uses. It runs the model body once and then the
output head, log-softmax, gathered log-prob and entropy over chunks of ``chunk_tokens``
tokens, in float32, so that no ``[B, T, V]`` logits tensor ever exists: peak memory is
about two float32 ``[chunk, V]`` buffers plus the activations. Backward recomputes each
chunk's logits and turns them into their gradient in place (:class:`_LinearHeadStats`), so
it never holds ``[B, T, V]`` either. The result and its gradients equal the unchunked
computation's to float32 rounding (tested at 1e-6).

How the body's last hidden state is obtained without changing any model code: a forward
pre-hook on the model's output embeddings (``get_output_embeddings()``, the LM head)
keeps the hidden state the head receives and lets the head run on the last position
only. The model's own last-position logits then check once that the head is a plain
linear map of that hidden state (models that post-process their logits, e.g. with
soft-capping, must use ``chunk_tokens=0``: the model's own full logits).

Compute dtype: training keeps float32 master weights and runs the forward under
``torch.autocast`` to the compute dtype recorded by :func:`set_compute`
(:func:`compute_autocast`); log-softmax, entropy and every loss reduction are float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from ringrl.algorithms.losses import _entropy_rows
from ringrl.errors import UserError
from ringrl.models.loading import is_moe

_COMPUTE_ATTR = "_ringrl_compute_dtype"
_CHUNK_ATTR = "_ringrl_head_chunk_tokens"
_HEAD_OK_ATTR = "_ringrl_head_checked"

#: Tokens per output-head chunk when the model records none (``model.head_chunk_tokens``).
DEFAULT_HEAD_CHUNK_TOKENS = 512


def unwrap(model: Any) -> Any:
    """The model itself under a DDP wrapper."""
    return getattr(model, "module", model)


def set_compute(model: Any, dtype: torch.dtype | None = None, head_chunk_tokens: int | None = None) -> None:
    """Record on ``model`` its compute dtype (its parameters stay in their own dtype: the
    masters) and the tokens per output-head chunk of :func:`token_stats` (``model.dtype``
    and ``model.head_chunk_tokens``; a deep copy, e.g. the reference model, keeps them)."""
    if dtype is not None:
        setattr(unwrap(model), _COMPUTE_ATTR, dtype)
    if head_chunk_tokens is not None:
        setattr(unwrap(model), _CHUNK_ATTR, head_chunk_tokens)


def compute_dtype(model: Any) -> torch.dtype:
    """The recorded compute dtype, else the parameters' dtype."""
    m = unwrap(model)
    return getattr(m, _COMPUTE_ATTR, None) or next(m.parameters()).dtype


def compute_autocast(model: Any) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to the model's compute dtype when it differs from its parameters' dtype
    (bf16 compute over fp32 masters), else nothing. Wrap forwards and generation in it."""
    from ringrl.fsdp import compute_device

    m = unwrap(model)
    want = getattr(m, _COMPUTE_ATTR, None)
    p = next(m.parameters())
    if want is None or want == p.dtype:
        return contextlib.nullcontext()
    return torch.autocast(device_type=compute_device(m).type, dtype=want)


def _kwargs(
    model: Any,
    input_ids_BT: torch.Tensor,
    attention_mask_BT: torch.Tensor,
    position_ids_BT: torch.Tensor | None,
    router: bool = True,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"input_ids": input_ids_BT, "attention_mask": attention_mask_BT, "use_cache": False}
    if position_ids_BT is not None:
        kwargs.update(attention_mask=None, position_ids=position_ids_BT)
    if is_moe(model):
        kwargs["output_router_logits"] = router
    return kwargs


def _router(model: Any, out: Any, router: bool = True) -> tuple[torch.Tensor, ...]:
    return tuple(getattr(out, "router_logits", None) or ()) if router and is_moe(model) else ()


def forward(
    model: Any,
    input_ids_BT: torch.Tensor,
    attention_mask_BT: torch.Tensor,
    position_ids_BT: torch.Tensor | None = None,
    router: bool = True,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(logits_BTV, router_logits)``; router_logits is one ``[B*T, E]`` tensor per MoE layer, or ``()``.

    The full-vocabulary logits: fine for small models and tests; training uses
    :func:`token_stats`. With ``position_ids_BT`` the rows are *packed*: several
    sequences end to end, each numbering its positions from 0. The attention mask is
    then left to transformers, which builds a block-diagonal causal mask from the
    position restarts, so no token sees another sequence. ``router=False``: a pass that
    needs no router terms (the reference model, pi_old) asks the model not to collect them."""
    with compute_autocast(model):
        out = model(**_kwargs(model, input_ids_BT, attention_mask_BT, position_ids_BT, router))
    return out.logits, _router(model, out, router)


@dataclass
class TokenStats:
    """Per-target-token quantities, aligned with ``input_ids[:, 1:]``; 0 off the selected targets."""

    logprobs_BT: torch.Tensor  # [B, T-1] float32, log softmax(logits / temperature) at the target
    entropy_BT: torch.Tensor  # [B, T-1] float32, entropy of softmax(logits / temperature)
    router_logits: tuple[torch.Tensor, ...]  # one [B*T, E] per MoE layer, or ()


class _LinearHeadStats(torch.autograd.Function):
    """``(logprob_N, entropy_N)`` of ``softmax((h W^T + b) / T)`` over token chunks, with a hand-written backward.

    Saved for backward: the hidden states, the weights and two floats per token (the
    log-normaliser and the entropy); each chunk's ``[C, V]`` logits are recomputed in
    backward and turned into their gradient in place, so forward and backward each hold
    about two float32 ``[C, V]`` buffers at a time. With ``z = logits / T``, ``p = softmax(z)``
    and ``mu = sum_v p_v z_v = lse - H``::

        d logp_t / dz = onehot_t - p          dH / dz = -p (z - mu)

    The matmuls run in ``compute_dtype`` (the autocast dtype, or the weights' own); every
    softmax quantity and the weight-gradient accumulation are float32.
    """

    @staticmethod
    def forward(ctx, hidden_NH, weight_VH, bias_V, targets_N, temperature, chunk, compute_dtype):
        N = hidden_NH.shape[0]
        w = weight_VH.to(compute_dtype)
        b = None if bias_V is None else bias_V.to(compute_dtype)
        lp_N = torch.empty(N, dtype=torch.float32, device=hidden_NH.device)
        ent_N = torch.empty_like(lp_N)
        lse_N = torch.empty_like(lp_N)
        with torch.autocast(hidden_NH.device.type, enabled=False):
            for s in range(0, N, chunk):
                z_CV = torch.nn.functional.linear(hidden_NH[s : s + chunk].to(compute_dtype), w, b).float()
                if temperature != 1.0:
                    z_CV.div_(temperature)
                lse_C = torch.logsumexp(z_CV, dim=-1)
                lp_N[s : s + chunk] = z_CV.gather(-1, targets_N[s : s + chunk, None]).squeeze(-1) - lse_C
                logp_CV = z_CV.sub_(lse_C[:, None])  # in place: z is not needed any more
                ent_N[s : s + chunk] = -(logp_CV.exp() * logp_CV).sum(-1)
                lse_N[s : s + chunk] = lse_C
        ctx.save_for_backward(hidden_NH, weight_VH, bias_V, targets_N, lse_N, ent_N)
        ctx.temperature, ctx.chunk, ctx.compute_dtype = temperature, chunk, compute_dtype
        return lp_N, ent_N

    @staticmethod
    def backward(ctx, g_lp_N, g_ent_N):
        hidden_NH, weight_VH, bias_V, targets_N, lse_N, ent_N = ctx.saved_tensors
        T, chunk, cdt = ctx.temperature, ctx.chunk, ctx.compute_dtype
        N = hidden_NH.shape[0]
        g_lp_N = torch.zeros_like(lse_N) if g_lp_N is None else g_lp_N.float()
        g_ent_N = torch.zeros_like(lse_N) if g_ent_N is None else g_ent_N.float()
        w = weight_VH.to(cdt)
        b = None if bias_V is None else bias_V.to(cdt)
        g_h = torch.empty_like(hidden_NH) if ctx.needs_input_grad[0] else None
        g_w = torch.zeros(weight_VH.shape, dtype=torch.float32, device=weight_VH.device)
        g_b = None if bias_V is None else torch.zeros(bias_V.shape, dtype=torch.float32, device=bias_V.device)
        with torch.autocast(hidden_NH.device.type, enabled=False):
            for s in range(0, N, chunk):
                sl = slice(s, s + chunk)
                h_CH = hidden_NH[sl].to(cdt)
                z_CV = torch.nn.functional.linear(h_CH, w, b).float()
                if T != 1.0:
                    z_CV.div_(T)
                lse_C, mu_C = lse_N[sl, None], (lse_N[sl] - ent_N[sl])[:, None]
                p_CV = (z_CV - lse_C).exp_()
                # dL/dz = -p * (g_lp + g_ent (z - mu)) + g_lp onehot, built in z's buffer
                g_CV = z_CV.sub_(mu_C).mul_(g_ent_N[sl, None]).add_(g_lp_N[sl, None]).mul_(p_CV).neg_()
                del p_CV
                g_CV.scatter_add_(1, targets_N[sl, None], g_lp_N[sl, None])
                if T != 1.0:
                    g_CV.div_(T)
                if g_b is not None:
                    g_b += g_CV.sum(0)
                g_cdt = g_CV.to(cdt)
                if g_h is not None:
                    g_h[sl] = (g_cdt @ w).to(hidden_NH.dtype)
                g_w.add_(g_cdt.t() @ h_CH)
        g_b = None if g_b is None else g_b.to(bias_V.dtype)
        return g_h, g_w.to(weight_VH.dtype), g_b, None, None, None, None


def head_stats(
    head: Any,
    hidden_NH: torch.Tensor,
    targets_N: torch.Tensor,
    temperature: float = 1.0,
    chunk_tokens: int = DEFAULT_HEAD_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logprob_N, entropy_N)`` float32 of ``softmax(head(hidden) / temperature)`` over chunks of tokens.

    ``head``: the LM head (an ``nn.Linear``: :class:`_LinearHeadStats`, bounded memory in
    forward and backward), or any callable ``[C, H] -> [C, V]`` (e.g. the identity over
    precomputed logits), then each chunk is activation-checkpointed instead. Logits are
    upcast to float32 before the division by the temperature, so the result is the
    unchunked one's.
    """
    N = hidden_NH.shape[0]
    if N == 0:  # keep the graph connected (a zero-token micro-batch still back-propagates)
        zero_N = hidden_NH.sum(-1).float() * 0.0
        # through the head's weights too: under FSDP every rank must give every parameter a gradient
        for p in (getattr(head, "weight", None), getattr(head, "bias", None)):
            if isinstance(p, torch.Tensor) and p.requires_grad:
                zero_N = zero_N + p.sum().float() * 0.0
        return zero_N, zero_N
    step = N if chunk_tokens <= 0 else chunk_tokens
    weight = getattr(head, "weight", None)
    if isinstance(head, torch.nn.Linear) and weight is not None:
        dev = hidden_NH.device.type
        cdt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else weight.dtype
        return _LinearHeadStats.apply(hidden_NH, weight, head.bias, targets_N, float(temperature), step, cdt)

    def chunk(h_CH: torch.Tensor, t_C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z_CV = head(h_CH).float() / temperature
        lp_C = z_CV.gather(-1, t_C.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z_CV, dim=-1)
        return lp_C, _entropy_rows(z_CV)

    grad = torch.is_grad_enabled() and hidden_NH.requires_grad
    lps, ents = [], []
    for s in range(0, N, step):
        h_CH, t_C = hidden_NH[s : s + step], targets_N[s : s + step]
        lp_C, ent_C = checkpoint(chunk, h_CH, t_C, use_reentrant=False) if grad else chunk(h_CH, t_C)
        lps.append(lp_C)
        ents.append(ent_C)
    return torch.cat(lps), torch.cat(ents)


def token_stats(
    model: Any,
    input_ids_BT: torch.Tensor,
    attention_mask_BT: torch.Tensor,
    position_ids_BT: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    targets_mask_BT: torch.Tensor | None = None,
    chunk_tokens: int | None = None,
    router: bool = True,
) -> TokenStats:
    """Log-probs and entropies of the next tokens ``input_ids[:, 1:]`` under ``model``, in bounded memory.

    Only the targets where ``targets_mask_BT`` ([B, T-1], default: the attention mask's)
    is true go through the output head; the rest are 0. ``chunk_tokens`` > 0 is the
    number of tokens per head chunk; 0 takes the model's own full logits instead (for
    models whose logits are not a plain linear head); None: the model's recorded setting
    (:func:`set_compute`). Runs under :func:`compute_autocast`. ``router=False``: no router
    logits are collected (passes that need no MoE terms).
    """
    if chunk_tokens is None:
        chunk_tokens = getattr(unwrap(model), _CHUNK_ATTR, DEFAULT_HEAD_CHUNK_TOKENS)
    if targets_mask_BT is None:
        targets_mask_BT = attention_mask_BT[:, 1:] != 0
    sel_BT = targets_mask_BT.to(input_ids_BT.device).bool()
    targets_N = input_ids_BT[:, 1:][sel_BT]
    kwargs = _kwargs(model, input_ids_BT, attention_mask_BT, position_ids_BT, router)
    head = unwrap(model).get_output_embeddings() if chunk_tokens > 0 else None
    with compute_autocast(model):
        if head is not None:  # a model without output embeddings falls back to its own full logits
            hidden_BTH, out = _body(model, head, kwargs)
            hidden_NH = hidden_BTH[:, :-1][sel_BT]  # [N, H]
            lp_N, ent_N = head_stats(head, hidden_NH, targets_N, temperature, chunk_tokens)
        else:
            out = model(**kwargs)
            logits_NV = out.logits[:, :-1][sel_BT]  # [N, V]
            lp_N, ent_N = head_stats(lambda z: z, logits_NV, targets_N, temperature, 0)
    shape = targets_mask_BT.shape
    lp_BT = torch.zeros(shape, dtype=torch.float32, device=lp_N.device).masked_scatter(sel_BT, lp_N)
    ent_BT = torch.zeros(shape, dtype=torch.float32, device=ent_N.device).masked_scatter(sel_BT, ent_N)
    return TokenStats(lp_BT, ent_BT, _router(model, out, router))


def _body(model: Any, head: Any, kwargs: dict[str, Any]) -> tuple[torch.Tensor, Any]:
    """Run ``model`` with its head applied to the last position only; returns (hidden_BTH, output)."""
    kept: dict[str, torch.Tensor] = {}

    def pre_hook(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if "h" in kept or not args:
            return None
        kept["h"] = args[0]
        return (args[0][..., -1:, :], *args[1:])

    handle = head.register_forward_pre_hook(pre_hook)
    try:
        out = model(**kwargs)
    finally:
        handle.remove()
    if "h" not in kept or kept["h"].dim() != 3:
        raise UserError(
            "the model does not call its output embeddings module on the last hidden states; "
            "set model.head_chunk_tokens=0 (full logits)"
        )
    hidden_BTH = kept["h"]
    m = unwrap(model)
    if not getattr(m, _HEAD_OK_ATTR, False):
        with torch.no_grad():
            mine = head(hidden_BTH[:, -1:].detach()).float()
            theirs = out.logits[:, -1:].detach().float()
        if mine.shape != theirs.shape or not torch.allclose(mine, theirs, rtol=1e-3, atol=1e-3):
            raise UserError(
                "the model's logits are not its output head applied to the last hidden state "
                "(e.g. soft-capped or scaled); set model.head_chunk_tokens=0 (full logits)"
            )
        setattr(m, _HEAD_OK_ATTR, True)
    return hidden_BTH, out
