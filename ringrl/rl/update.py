"""The loss pass: a formed batch -> token-count micro-batches -> weighted-sum loss -> gradients.

The batch former fixed every token's weight before this runs (1/Phi for C3PO, the
step's token count for token-mean, 1/(N |y_i|) for GRPO), so each micro-batch's loss
is a plain weighted sum and the accumulated gradient is the same for any split: into
micro-batches on one process, or into token-balanced parts across data-parallel ranks
(:func:`rank_gradients`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ringrl.algorithms import (
    balance_across_ranks,
    moe_aux_loss,
    pack_by_tokens,
    policy_loss,
    split_by_tokens,
)
from ringrl.algorithms.correction import correction_weights
from ringrl.algorithms.types import SelectedSample
from ringrl.distributed import Dist, all_reduce_sum, idle_pass, reaching, sync_unless
from ringrl.fsdp import compute_device, is_fsdp, release
from ringrl.models.forward import token_stats, unwrap
from ringrl.rl.config import LossConfig


@dataclass
class MicroBatch:
    """Sequences as rows; the ``_BT`` tensors are aligned with the shifted targets ``input_ids[:, 1:]``.

    Padded: one sequence per row, right-padded. Packed: one row holding several sequences
    end to end, ``position_ids_BT`` restarting at 0 for each, and no padding at all."""

    input_ids_BT: torch.Tensor  # [B, T]
    attention_mask_BT: torch.Tensor  # [B, T]
    weights_BT: torch.Tensor  # [B, T-1] the former's per-token weight, 0 off the trained tokens
    advantages: torch.Tensor  # [B] one per response (padded), or [B, T-1] per token (packed)
    rollout_logprobs_BT: torch.Tensor  # [B, T-1] the engine's log-probs (0 where unknown)
    old_logprobs_BT: torch.Tensor | None  # [B, T-1] pi_old when known before the update
    n_tokens: int  # trained tokens
    position_ids_BT: torch.Tensor | None = None  # [B, T] packed rows only
    routing_LNk: torch.Tensor | None = None  # [L, B*T, k] the engine's MoE routing per position, -1: free
    idle: bool = False  # a zero-weight pass that only keeps data-parallel ranks in step


def build_micro_batches(
    selected: list[SelectedSample],
    pad_id: int,
    max_tokens: int,
    weight_scale: float = 1.0,
    pack: bool = False,
) -> list[MicroBatch]:
    """Token-count micro-batches: padded (``count * longest <= max_tokens``) or packed
    (``sum of lengths <= max_tokens``, one row each, so a micro-batch costs its real tokens)."""
    lengths = [len(s.sample.prompt_ids) + s.n_tokens for s in selected]
    groups = pack_by_tokens(lengths, max_tokens) if pack else split_by_tokens(lengths, max_tokens)
    out = []
    for idx in groups:
        part = [selected[i] for i in idx]
        rows = [[k] for k in range(len(part))] if not pack else [list(range(len(part)))]
        B = len(rows)
        T = max(sum(lengths[idx[k]] for k in row) for row in rows)
        ids = torch.full((B, T), pad_id, dtype=torch.long)
        attn = torch.zeros((B, T), dtype=torch.long)
        pos = torch.zeros((B, T), dtype=torch.long) if pack else None
        w, adv_tok, roll = torch.zeros((B, T - 1)), torch.zeros((B, T - 1)), torch.zeros((B, T - 1))
        has_old = all(s.sample.old_logprobs is not None for s in part)
        if not has_old and any(s.sample.old_logprobs is not None for s in part):
            # the loss would take pi_old from its own forward for every row: a carried sample at ratio 1
            raise ValueError("micro-batch mixes samples with and without pi_old (old_logprobs); attach it to all")
        old = torch.zeros((B, T - 1)) if has_old else None
        routed: list[tuple[torch.Tensor, tuple[int, int]]] = []  # (routing, (row, start)) of each sequence
        for b, row in enumerate(rows):
            at = 0  # where the next sequence starts in this row
            for k in row:
                s = part[k]
                p, n = len(s.sample.prompt_ids), s.n_tokens
                ids[b, at : at + p + n] = torch.tensor(s.sample.prompt_ids + s.response_ids)
                attn[b, at : at + p + n] = 1
                if pos is not None:
                    pos[b, at : at + p + n] = torch.arange(p + n)
                t = slice(at + p - 1, at + p - 1 + n)  # targets: the n trained response tokens
                w[b, t] = s.token_weight * weight_scale
                adv_tok[b, t] = s.sample.advantage
                if s.sample.rollout_logprobs is not None:
                    roll[b, t] = torch.tensor(s.sample.rollout_logprobs[:n])
                if old is not None and s.sample.old_logprobs is not None:  # has_old: every sample has them
                    old[b, t] = torch.tensor(s.sample.old_logprobs[:n])
                if s.sample.routing is not None:  # the fed positions of the trained (maybe cut) sequence
                    routed.append((s.sample.routing[:, : p + n], (b, at)))
                at += p + n
        adv = adv_tok if pack else torch.tensor([s.sample.advantage for s in part], dtype=torch.float32)
        routing = None
        if routed:
            from ringrl.models.routing import routing_rows

            routing = routing_rows([r for r, _ in routed], [at for _, at in routed], (B, T))
        out.append(MicroBatch(ids, attn, w, adv, roll, old, sum(s.n_tokens for s in part), pos, routing))
    return out


def split_mini_batches(selected: list[SelectedSample], mini_batches: int) -> list[list[SelectedSample]]:
    """Token-balanced parts, one optimizer step each."""
    if mini_batches <= 1 or len(selected) <= 1:
        return [selected]
    parts = balance_across_ranks([s.n_tokens for s in selected], min(mini_batches, len(selected)))
    return [[selected[i] for i in p] for p in parts if p]


def combine_step_metrics(parts: list[tuple[dict[str, Any], int]]) -> dict[str, Any]:
    """One step's metrics from its loss passes (``ppo_epochs`` x ``mini_batches``): every metric
    (per-token means, the loss, the MoE terms and the per-layer expert load) is the mean over the
    passes weighted by each pass's trained tokens, so a step's figures cover all of its tokens."""
    total = sum(n for _, n in parts)
    if not parts:
        return {}
    weights = [n / total if total else 1.0 / len(parts) for _, n in parts]
    out: dict[str, Any] = {}
    for k in {k for m, _ in parts for k in m}:
        vals = [(m[k], w) for (m, _), w in zip(parts, weights) if k in m]
        out[k] = sum(v * w for v, w in vals) / sum(w for _, w in vals) if vals else 0.0
    return out


def _to(t: torch.Tensor | None, dev: Any) -> torch.Tensor | None:
    return None if t is None else t.to(dev)


@torch.no_grad()
def sequence_logprobs(
    model: Any,
    mb: MicroBatch,
    temperature: float,
    targets_mask_BT: torch.Tensor | None = None,
    replay_routing: bool = False,
) -> torch.Tensor:
    """Log-probs of the targets under ``model`` (no grad), [B, T-1] float32; 0 off ``targets_mask_BT``
    (default: every real target). The output head runs in chunks (:func:`token_stats`).
    ``replay_routing``: route each token to the experts the rollout engine chose (``mb.routing_LNk``)."""
    dev = compute_device(model)  # (sharded and offloaded: the accelerator)
    with _replayed(model, mb, dev, replay_routing):
        st = token_stats(
            model,
            mb.input_ids_BT.to(dev),
            mb.attention_mask_BT.to(dev),
            _to(mb.position_ids_BT, dev),
            temperature=temperature,
            targets_mask_BT=_to(targets_mask_BT, dev),
            router=False,
        )
    return st.logprobs_BT


def _replayed(model: Any, mb: MicroBatch, dev: Any, replay_routing: bool) -> contextlib.AbstractContextManager[Any]:
    """Routing replay of ``mb`` for a pass of ``model`` (:mod:`ringrl.models.routing`), or nothing."""
    if not (replay_routing and mb.routing_LNk is not None):
        return contextlib.nullcontext()
    from ringrl.models.routing import replay

    return replay(unwrap(model), mb.routing_LNk.to(dev), capture=False)


def rank_gradients(
    model: Any,
    ref_model: Any | None,
    selected: list[SelectedSample],
    pad_id: int,
    max_tokens: int,
    loss_cfg: LossConfig,
    temperature: float,
    moe_top_k: int | None,
    dist: Dist,
    weight_scale: float = 1.0,
    pack: bool = False,
    replay_routing: bool = False,
) -> dict[str, float]:
    """This rank's token-balanced share of ``selected`` -> micro-batches -> gradients; metrics over all ranks.

    ``model`` is the DDP wrapper under data parallelism (gradients all-reduced in the last
    micro-batch's backward), the model itself on one process. The share comes from
    :func:`balance_across_ranks` on prompt + trained tokens; every token keeps its global
    weight, so the ranks' gradients sum to the one-process gradient of ``selected``.
    """
    total = sum(s.n_tokens for s in selected)
    mine = selected
    shares: list[list[int]] = [list(range(len(selected)))]
    if dist.enabled:
        lengths = [len(s.sample.prompt_ids) + s.n_tokens for s in selected]
        shares = balance_across_ranks(lengths, dist.world_size)
        mine = [selected[i] for i in shares[dist.rank]]
    mbs = build_micro_batches(mine, pad_id, max_tokens, weight_scale=weight_scale, pack=pack)
    if dist.enabled and selected:
        # a zero-weight pass for a rank with no sequence keeps the gradient all-reduce in step; under
        # FSDP (collective forwards and backwards) every rank runs as many passes as the busiest one
        want = max(_count_micro_batches(selected, s, max_tokens, pack) for s in shares) if is_fsdp(model) else 1
        if len(mbs) < want:
            idle = build_micro_batches([replace(selected[0], token_weight=0.0)], pad_id, max_tokens)[0]
            mbs += [replace(idle, n_tokens=0, idle=True)] * (want - len(mbs))
    metrics = accumulate_gradients(
        model,
        ref_model,
        mbs,
        loss_cfg,
        temperature,
        moe_top_k,
        total_tokens=total,
        loss_scale=float(dist.world_size),
        replay_routing=replay_routing,
    )
    return all_reduce_sum(metrics, dist)


def _count_micro_batches(selected: list[SelectedSample], share: list[int], max_tokens: int, pack: bool) -> int:
    """How many micro-batches :func:`build_micro_batches` makes of ``selected[share]`` (0 for none)."""
    lengths = [len(selected[i].sample.prompt_ids) + selected[i].n_tokens for i in share]
    return len(pack_by_tokens(lengths, max_tokens) if pack else split_by_tokens(lengths, max_tokens))


def accumulate_gradients(
    model: Any,
    ref_model: Any | None,
    micro_batches: list[MicroBatch],
    loss_cfg: LossConfig,
    temperature: float,
    moe_top_k: int | None,
    total_tokens: int | None = None,
    loss_scale: float = 1.0,
    replay_routing: bool = False,
) -> dict[str, float]:
    """Forward/backward every micro-batch; returns token-weighted metrics over trained tokens.

    ``total_tokens``: the trained tokens of the whole batch (default: these micro-batches'),
    the denominator of the metrics and of the MoE terms' per-micro-batch shares.
    ``loss_scale`` multiplies what is back-propagated, not the metrics (DDP averages
    gradients over ranks: the world size turns that average back into the sum).
    Under DDP only the last micro-batch's backward all-reduces the gradients.
    """
    dev = compute_device(model)  # (sharded and offloaded: the accelerator)
    total = total_tokens or sum(mb.n_tokens for mb in micro_batches) or 1
    sums: dict[str, float] = {}
    loss_sum = 0.0
    with reaching(model):  # which modules this step's passes reach (data parallel: drop_unreached_grads)
        for i, mb in enumerate(micro_batches):
            idle = idle_pass(model) if mb.idle else contextlib.nullcontext()
            with sync_unless(model, skip=i < len(micro_batches) - 1), idle:
                loss_sum += _micro_batch_backward(
                    model,
                    ref_model,
                    mb,
                    loss_cfg,
                    temperature,
                    moe_top_k,
                    mb.n_tokens / total,
                    loss_scale,
                    dev,
                    sums,
                    replay_routing,
                )
    out = {k: v / total for k, v in sums.items() if k.startswith("train/")}
    out.update({k: v for k, v in sums.items() if k.startswith("moe/")})
    out["train/loss"] = loss_sum
    if "_expert_load" in sums:
        out["_expert_load"] = sums["_expert_load"]
    return out


def _micro_batch_backward(
    model,
    ref_model,
    mb: MicroBatch,
    loss_cfg: LossConfig,
    temperature: float,
    moe_top_k: int | None,
    share: float,
    loss_scale: float,
    dev: Any,
    sums: dict[str, Any],
    replay_routing: bool = False,
) -> float:
    """One micro-batch: forward, loss, backward; adds its metric sums to ``sums``; returns its loss."""
    ids, attn = mb.input_ids_BT.to(dev), mb.attention_mask_BT.to(dev)
    w_BT = mb.weights_BT.to(dev)
    mask = w_BT != 0  # only the trained tokens go through the output head
    ref = None
    if ref_model is not None and loss_cfg.beta > 0:  # before the policy's routing pass (a LoRA reference is the policy)
        ref = sequence_logprobs(ref_model, mb, temperature, mask, replay_routing)
        release(ref_model)  # FSDP: a pass with no backward reshards its root itself
    with contextlib.ExitStack() as stack:  # forward and backward inside the routing pass (replay, agreement)
        rp = _routing_pass(stack, model, mb, dev, replay_routing)
        st = token_stats(model, ids, attn, _to(mb.position_ids_BT, dev), temperature=temperature, targets_mask_BT=mask)
        lp_BT, router = st.logprobs_BT, st.router_logits
        ent_BT = st.entropy_BT if loss_cfg.alpha_entropy > 0 else None
        old_BT = mb.old_logprobs_BT.to(dev) if mb.old_logprobs_BT is not None else lp_BT.detach()
        engine_BT = mb.rollout_logprobs_BT.to(dev)
        low, high = loss_cfg.correction_bounds()
        corr_BT = correction_weights(old_BT, engine_BT, loss_cfg.correction, low, high)  # 1 under "none"
        loss, m = policy_loss(
            lp_BT,
            old_BT,
            mb.advantages.to(dev),
            w_BT * corr_BT if loss_cfg.correction != "none" else w_BT,
            eps_low=loss_cfg.eps_low,
            eps_high=loss_cfg.eps_high,
            beta=loss_cfg.beta if ref is not None else 0.0,
            ref_logprobs_BT=ref,
            entropy_BT=ent_BT,
            alpha_entropy=loss_cfg.alpha_entropy,
        )
        if router and moe_top_k:
            aux, mm = moe_aux_loss(
                router, moe_top_k, attn, alpha_balance=loss_cfg.alpha_balance, alpha_zloss=loss_cfg.alpha_zloss
            )
            loss = loss + share * aux
            for k in ("moe/balance_loss", "moe/z_loss", "moe/max_expert_load"):
                sums[k] = sums.get(k, 0.0) + share * float(mm[k])
            sums["_expert_load"] = sums.get("_expert_load", 0) + share * mm["moe/expert_load"].cpu()
        (loss * loss_scale if loss_scale != 1.0 else loss).backward()
    with torch.no_grad():
        if rp is not None and not math.isnan(agreement := rp.agreement()):
            sums["moe/routing_agreement"] = sums.get("moe/routing_agreement", 0.0) + share * agreement
            # the routers' own top-k vs the rollout's: under replay what they would have chosen
            own = rp.router_agreement()
            sums["moe/router_agreement"] = sums.get("moe/router_agreement", 0.0) + share * own
        sums["train/entropy"] = sums.get("train/entropy", 0.0) + float(st.entropy_BT.detach()[mask].sum())
        # engine vs pi_old (the pre-update forward), not vs weights earlier mini-batches already moved
        sums["train/logprob_mismatch"] = sums.get("train/logprob_mismatch", 0.0) + float(
            (engine_BT - old_BT)[mask].abs().sum()
        )
        sums["train/correction_weight_mean"] = sums.get("train/correction_weight_mean", 0.0) + float(
            corr_BT[mask].sum()
        )
        sums["train/correction_masked_fraction"] = sums.get("train/correction_masked_fraction", 0.0) + float(
            (corr_BT[mask] == 0).sum()
        )
        n = int(mask.sum())
        for k in ("clip_fraction", "kl", "ratio"):
            if k in m:
                sums[f"train/{k}"] = sums.get(f"train/{k}", 0.0) + float(m[k]) * n
    return float(loss.detach())


def _routing_pass(stack: contextlib.ExitStack, model: Any, mb: MicroBatch, dev: Any, replay_routing: bool) -> Any:
    """The policy pass's routing (:func:`ringrl.models.routing.routing_pass`) when ``mb`` carries the
    engine's: replayed under ``replay_routing``, and the agreement measured either way."""
    if mb.routing_LNk is None:
        return None
    from ringrl.models.routing import routing_pass

    return stack.enter_context(routing_pass(unwrap(model), mb.routing_LNk.to(dev), replay_routing=replay_routing))
