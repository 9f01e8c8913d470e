"""MoE routing capture and replay for Hugging Face models (R3, "Rollout Routing Replay").

The experts an MoE layer picks for a token can differ between the rollout engine and
the training forward (other batch shapes, precision, kernels), which widens the gap
between the sampling policy and the trained one. Routing replay records each token's
top-k experts while sampling and forces the training forward to use exactly those
experts, with the gate weights recomputed from the *current* router logits over the
replayed experts, so the router still receives gradients (R3, arXiv 2510.11370).

Everything works through the model's router modules with forward hooks: no model
code is forked or patched. A router is found by its class (``ROUTER_ADAPTERS``, keyed
by class name, subclasses included); :func:`register_router` adds a family.

Layout and contract
-------------------
* **MoE layers** are the model's router modules in module order (``model.modules()``),
  numbered ``l = 0 .. L-1``; dense layers (no router) are not counted.
* In one forward call every router sees the ``N = B*T`` tokens of the ``[B, T]`` batch
  flattened row-major: token ``(b, t)`` is position ``n = b*T + t``. Padding positions
  and, for packed rows, every packed sequence's tokens are positions like any other.
* **Routing** is an integer tensor ``[L, N, k]`` of expert indices (order within the
  ``k`` does not matter); per sequence it is ``[L, T_i, k]`` and per batch of rows
  ``[L, B, T, k]`` (flattened to ``[L, B*T, k]`` on use). Recorded routing is
  ``torch.int16`` by default (experts < 32768).
* A position whose ``k`` entries are all ``-1`` is **free**: it is not replayed and the
  router routes it itself. Use it for padding and for tokens without a record (the last
  token of a generated sequence is never fed to the model while sampling, so it has no
  record; its logits predict past the sequence and its hidden states are seen by no
  other position, so it does not change any log-prob of the sequence).

Replayed gate weights, per token with replayed experts ``S`` (``|S| = k``)::

    p = softmax(z)                   z: current router logits over all E experts (float32)
    w_j = p[S_j]                     gathered at the replayed experts
    w_j = w_j / sum_j w_j            only where the family normalises its top-k
                                     (Qwen2/Qwen3-MoE, OLMoE: ``norm_topk_prob``; Mixtral: always)

so when ``S`` equals the router's own top-k the forward is unchanged. The router logits
the router returns (and ``output_router_logits`` collects) are the current ones,
untouched, so the load-balance and z-loss terms (:mod:`ringrl.algorithms.moe`) compose.

With gradient checkpointing the layers' forwards run again during ``backward``; call
``backward`` inside the :func:`replay` context so the recomputation is replayed too
(replay is keyed by layer, so any number of re-runs of a layer use the same routing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

FREE = -1  # routing entry meaning "not replayed: the router chooses"


class RoutingMismatchError(ValueError):
    """Replayed routing whose shape or values do not fit the model or the batch."""


class RouterAdapter(Protocol):
    """How to read and rewrite one router module's forward output."""

    def indices(self, module: nn.Module, output: Any) -> Tensor:
        """The router's own top-k expert indices, ``[N, k]``."""
        ...

    def replace(self, module: nn.Module, output: Any, indices_Nk: Tensor) -> Any:
        """``output`` routed to ``indices_Nk`` (int64, no free rows), gate weights recomputed."""
        ...


@dataclass(frozen=True)
class SoftmaxTopKRouter:
    """Routers returning ``(router_logits [N, E], weights [N, k] or [N, E], indices [N, k])``.

    The weights are ``softmax(logits)`` at the chosen experts, renormalised over the
    top-k when ``always_normalize`` or the module's ``normalize_attr`` is true. This is
    the router of Qwen2-MoE, Qwen3-MoE, OLMoE and Mixtral in transformers 5.x.
    """

    normalize_attr: str | None = "norm_topk_prob"
    always_normalize: bool = False

    def indices(self, module: nn.Module, output: Any) -> Tensor:
        return output[2]

    def replace(self, module: nn.Module, output: Any, indices_Nk: Tensor) -> Any:
        logits_NE, weights, own_Nk = output[0], output[1], output[2]
        probs_NE = torch.softmax(logits_NE, dim=-1, dtype=torch.float32)
        w_Nk = probs_NE.gather(-1, indices_Nk)
        normalize = self.always_normalize or bool(getattr(module, self.normalize_attr or "", False))
        if normalize:
            w_Nk = w_Nk / w_Nk.sum(dim=-1, keepdim=True)
        w_Nk = w_Nk.to(weights.dtype)
        if weights.shape[-1] == logits_NE.shape[-1] != indices_Nk.shape[-1]:  # dense [N, E] scores
            w_out = torch.zeros_like(weights).scatter(-1, indices_Nk, w_Nk)
        else:
            w_out = w_Nk
        return (logits_NE, w_out, indices_Nk.to(own_Nk.dtype), *tuple(output[3:]))


ROUTER_ADAPTERS: dict[str, RouterAdapter] = {
    "Qwen2MoeTopKRouter": SoftmaxTopKRouter(),
    "Qwen3MoeTopKRouter": SoftmaxTopKRouter(),
    "OlmoeTopKRouter": SoftmaxTopKRouter(),
    "MixtralTopKRouter": SoftmaxTopKRouter(normalize_attr=None, always_normalize=True),
}


def register_router(class_name: str, adapter: RouterAdapter) -> None:
    """Make routers of class ``class_name`` (or its subclasses) recordable and replayable."""
    ROUTER_ADAPTERS[class_name] = adapter


def _adapter_for(module: nn.Module) -> RouterAdapter | None:
    for cls in type(module).__mro__:
        adapter = ROUTER_ADAPTERS.get(cls.__name__)
        if adapter is not None:
            return adapter
    return None


def moe_routers(model: nn.Module) -> list[tuple[nn.Module, RouterAdapter]]:
    """The model's router modules in layer order with their adapters; raises if there is none."""
    found = [(m, a) for m in model.modules() if (a := _adapter_for(m)) is not None]
    if not found:
        raise RoutingMismatchError(
            f"routing replay: no supported MoE router in {type(model).__name__} "
            f"(supported router classes: {', '.join(sorted(ROUTER_ADAPTERS))}; add one with register_router)"
        )
    return found


def num_moe_layers(model: nn.Module) -> int:
    """``L``: the number of MoE layers (router modules) of ``model``."""
    return len(moe_routers(model))


@dataclass
class RoutingRecord:
    """Routing seen by each MoE layer, one entry per forward call (see :func:`record`)."""

    num_layers: int
    per_layer: list[list[Tensor]] = field(default_factory=list)  # [l][call] -> [N_call, k]

    def calls(self) -> list[Tensor]:
        """One ``[L, N_call, k]`` tensor per forward call, in call order."""
        counts = {len(c) for c in self.per_layer}
        if len(counts) > 1:
            raise RoutingMismatchError(f"routing record: MoE layers saw different numbers of calls {sorted(counts)}")
        n_calls = counts.pop() if counts else 0
        return [torch.stack([layer[i] for layer in self.per_layer]) for i in range(n_calls)]

    def call(self, i: int) -> Tensor:
        """``[L, N, k]`` of forward call ``i`` alone (robust to layers re-run by gradient checkpointing)."""
        if any(len(layer) <= i for layer in self.per_layer):
            raise RoutingMismatchError(f"routing record: forward call {i} was not recorded in every MoE layer")
        return torch.stack([layer[i] for layer in self.per_layer])

    def clear(self) -> None:
        """Forget the calls recorded so far (e.g. after handing them to sequences)."""
        for layer in self.per_layer:
            layer.clear()

    def by_row(self, batch_size: int) -> Tensor:
        """``[L, B, T_total, k]``: the calls of one batched generation joined along time.

        For a fixed batch of ``B`` rows fed call after call (prefill ``[B, P]``, then decode
        steps ``[B, 1]``, as ``model.generate`` does), row ``b``'s routing at position
        ``t`` of its (padded) sequence. ``T_total`` = prompt length + decode calls, i.e.
        every fed position; the last sampled token has none.
        """
        parts = []
        for i, call_LNk in enumerate(self.calls()):
            n = call_LNk.shape[1]
            if n % batch_size:
                raise RoutingMismatchError(
                    f"routing record: call {i} routed {n} tokens, not a multiple of {batch_size} rows"
                )
            parts.append(call_LNk.reshape(call_LNk.shape[0], batch_size, n // batch_size, call_LNk.shape[-1]))
        if not parts:
            raise RoutingMismatchError("routing record: no forward call was recorded")
        return torch.cat(parts, dim=2)

    def sequences(self, fed_BT: Tensor) -> list[Tensor]:
        """Per-row routing ``[L, T_i, k]`` of a batched generation, keeping the positions ``fed_BT`` marks.

        ``fed_BT`` (``[B, T_total]``, as in :meth:`by_row`) is 1 where a row fed a real token:
        its prompt without padding, then its response tokens up to the end but the last
        (``cat([prompt_mask_BP, response_mask_BR[:, :-1]], 1)``). Row ``b``'s result covers
        its sequence ``prompt + response`` but the last token (left free on replay).
        """
        return split_rows(self.by_row(fed_BT.shape[0]), fed_BT)


@contextmanager
def record(
    model: nn.Module, *, dtype: torch.dtype = torch.int16, device: torch.device | str | None = None
) -> Iterator[RoutingRecord]:
    """Record, per MoE layer, the top-k expert indices of every token of every forward call.

    Yields a :class:`RoutingRecord`; ``rec.calls()`` gives one ``[L, N_call, k]`` tensor per
    forward call (prefill and each decode step), ``rec.by_row(B)`` the ``[L, B, T, k]``
    routing of a batched generation. Indices are stored as ``dtype`` on ``device`` (default:
    the router's device, which costs no synchronisation). Under :func:`replay` (nested either
    way), the routing in force (the replayed one) is what gets recorded.
    """
    routers = moe_routers(model)
    most = max((int(getattr(m, "num_experts", 0) or 0) for m, _ in routers), default=0)
    if dtype.is_floating_point or dtype.is_complex or most - 1 > torch.iinfo(dtype).max:
        raise RoutingMismatchError(f"routing record: dtype {dtype} cannot hold expert indices up to {most - 1}")
    rec = RoutingRecord(num_layers=len(routers), per_layer=[[] for _ in routers])

    def make_hook(layer: int, adapter: RouterAdapter) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            idx_Nk = adapter.indices(module, output).detach()
            rec.per_layer[layer].append(idx_Nk.to(device=device or idx_Nk.device, dtype=dtype))

        return hook

    handles = [m.register_forward_hook(make_hook(i, a)) for i, (m, a) in enumerate(routers)]
    try:
        yield rec
    finally:
        for h in handles:
            h.remove()


@dataclass
class ReplayHandle:
    """What :func:`replay` yields: the routing in force and, per call, the router's own choice."""

    indices_LNk: Tensor
    natural: list[list[Tensor]] = field(default_factory=list)  # [l][call] -> [N, k], the router's own top-k

    def natural_calls(self) -> list[Tensor]:
        """The routers' own top-k (what they would have chosen), ``[L, N, k]`` per forward call."""
        return RoutingRecord(len(self.natural), self.natural).calls()

    def natural_call(self, i: int) -> Tensor:
        """The routers' own top-k of forward call ``i``, ``[L, N, k]``."""
        return RoutingRecord(len(self.natural), self.natural).call(i)


def _validate(indices: Tensor | Sequence[Tensor], routers: list[tuple[nn.Module, RouterAdapter]]) -> Tensor:
    """Routing as int64 ``[L, N, k]``; checks the layer count, value range and free rows."""
    idx = torch.stack([torch.as_tensor(t) for t in indices]) if not isinstance(indices, Tensor) else indices
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise RoutingMismatchError(f"routing replay: expert indices must be integers, got {idx.dtype}")
    if idx.dim() < 3:
        raise RoutingMismatchError(
            f"routing replay: expected routing [L, N, k] or [L, B, T, k], got shape {tuple(idx.shape)}"
        )
    idx = idx.reshape(idx.shape[0], -1, idx.shape[-1]).long()  # [L, N, k]
    if idx.shape[0] != len(routers):
        raise RoutingMismatchError(
            f"routing replay: routing has {idx.shape[0]} MoE layers but the model has {len(routers)}"
        )
    for layer, (module, _) in enumerate(routers):
        top_k = getattr(module, "top_k", None)
        if top_k is not None and idx.shape[-1] != top_k:
            raise RoutingMismatchError(
                f"routing replay: routing has k={idx.shape[-1]} but MoE layer {layer} routes top-{top_k}"
            )
    free_LN = idx[..., 0] == FREE
    if bool((free_LN[..., None] != (idx == FREE)).any()):
        raise RoutingMismatchError("routing replay: a token has some but not all of its k experts set to -1")
    num_experts = [getattr(m, "num_experts", None) for m, _ in routers]
    limit = torch.tensor([e if e is not None else torch.iinfo(torch.int64).max for e in num_experts], device=idx.device)
    if bool((idx < FREE).any()) or bool((idx >= limit[:, None, None]).any()):
        raise RoutingMismatchError(f"routing replay: expert index out of range [0, {max(e or 0 for e in num_experts)})")
    if idx.shape[-1] > 1:
        sorted_LNk = idx.sort(dim=-1).values
        dup_LN = (sorted_LNk[..., 1:] == sorted_LNk[..., :-1]).any(-1) & ~free_LN
        if bool(dup_LN.any()):
            raise RoutingMismatchError("routing replay: a token lists the same expert twice")
    return idx


@contextmanager
def replay(model: nn.Module, indices: Tensor | Sequence[Tensor], *, capture: bool = True) -> Iterator[ReplayHandle]:
    """Route every token of every forward call under this context to the given experts.

    ``indices``: ``[L, N, k]`` or ``[L, B, T, k]`` (or ``L`` tensors ``[N, k]``) integer expert
    indices in the flattened ``[B*T]`` order the routers see (module docstring); ``-1`` rows
    are free. Each forward's batch must have ``N = B*T`` tokens, else
    :class:`RoutingMismatchError` names the layer and both sizes. Gate weights are
    recomputed from the current router logits (module docstring), so gradients reach the
    router; the returned router logits are unchanged. With ``capture`` the handle keeps the
    routers' own top-k per call (``handle.natural_calls()``) for ``moe/routing_agreement``.
    """
    routers = moe_routers(model)
    idx_LNk = _validate(indices, routers)
    handle = ReplayHandle(indices_LNk=idx_LNk, natural=[[] for _ in routers])
    on_device: dict[tuple[int, torch.device], tuple[Tensor, Tensor]] = {}

    def make_hook(layer: int, adapter: RouterAdapter) -> Callable[..., Any]:
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            own_Nk = adapter.indices(module, output)
            if capture:
                handle.natural[layer].append(own_Nk.detach())
            if own_Nk.shape[0] != idx_LNk.shape[1]:
                raise RoutingMismatchError(
                    f"routing replay: MoE layer {layer} routes {own_Nk.shape[0]} tokens (B*T of this forward) "
                    f"but the replayed routing has {idx_LNk.shape[1]}"
                )
            key = (layer, own_Nk.device)
            if key not in on_device:
                layer_Nk = idx_LNk[layer].to(own_Nk.device)
                on_device[key] = (layer_Nk, layer_Nk[:, :1] == FREE)
            layer_Nk, free_N1 = on_device[key]
            use_Nk = torch.where(free_N1, own_Nk.long(), layer_Nk)  # [N, k]
            return adapter.replace(module, output, use_Nk)

        return hook

    # prepended: the replacement runs before any other hook on the router (record's
    # included), whichever context was entered first, so those hooks see the routing in force
    handles = [m.register_forward_hook(make_hook(i, a), prepend=True) for i, (m, a) in enumerate(routers)]
    try:
        yield handle
    finally:
        for h in handles:
            h.remove()


def routing_rows(
    routings: Sequence[Tensor],
    placements: Sequence[tuple[int, int]],
    batch_shape: tuple[int, int],
) -> Tensor:
    """Per-sequence routings placed into a ``[B, T]`` batch: ``[L, B*T, k]`` int64, free (-1) elsewhere.

    ``routings[i]`` is ``[L, T_i, k]`` (``T_i`` may be shorter than the sequence: the
    positions past it stay free); ``placements[i] = (row, start)`` puts its position 0 at
    column ``start`` of ``row``. Right padding: ``(i, 0)``; left padding:
    ``(i, T - len_i)``; packing: ``(row, offset of the sequence in the row)``.
    """
    if len(routings) != len(placements):
        raise RoutingMismatchError(f"routing rows: {len(routings)} routings but {len(placements)} placements")
    if not routings:
        raise RoutingMismatchError("routing rows: no sequences")
    num_layers, top_k = routings[0].shape[0], routings[0].shape[-1]
    rows, width = batch_shape
    out_LBTk = torch.full((num_layers, rows, width, top_k), FREE, dtype=torch.long, device=routings[0].device)
    for i, (r_LTk, (row, start)) in enumerate(zip(routings, placements)):
        if r_LTk.dim() != 3 or r_LTk.shape[0] != num_layers or r_LTk.shape[-1] != top_k:
            raise RoutingMismatchError(
                f"routing rows: sequence {i} has routing {tuple(r_LTk.shape)}, expected [{num_layers}, T_i, {top_k}]"
            )
        if not (0 <= row < rows and start >= 0 and start + r_LTk.shape[1] <= width):
            raise RoutingMismatchError(
                f"routing rows: sequence {i} ({r_LTk.shape[1]} tokens at row {row}, column {start}) "
                f"does not fit the batch {rows}x{width}"
            )
        out_LBTk[:, row, start : start + r_LTk.shape[1]] = r_LTk.to(out_LBTk.device, torch.long)
    return out_LBTk.reshape(num_layers, rows * width, top_k)


def split_rows(routing_LBTk: Tensor, keep_BT: Tensor) -> list[Tensor]:
    """Per-row routing ``[L, T_i, k]`` of the positions ``keep_BT`` selects (e.g. drop left padding)."""
    if routing_LBTk.dim() != 4 or tuple(keep_BT.shape) != tuple(routing_LBTk.shape[1:3]):
        raise RoutingMismatchError(
            f"split rows: routing {tuple(routing_LBTk.shape)} (expected [L, B, T, k]) does not match mask {tuple(keep_BT.shape)}"
        )
    keep_BT = keep_BT.to(routing_LBTk.device).bool()
    return [routing_LBTk[:, b, keep_BT[b]] for b in range(routing_LBTk.shape[1])]


def routing_agreement(recorded: Tensor, current: Tensor, mask: Tensor | None = None) -> float:
    """``moe/routing_agreement``: the fraction of (layer, token) whose top-k *set* matches.

    ``recorded`` and ``current`` are ``[L, *tokens, k]`` (e.g. ``[L, N, k]``); ``mask``
    (``[*tokens]``, bool or 0/1) selects the tokens to compare; free (-1) recorded
    tokens never count. ``nan`` when no token is compared.
    """
    if recorded.shape != current.shape:
        raise RoutingMismatchError(
            f"routing agreement: recorded {tuple(recorded.shape)} and current {tuple(current.shape)} differ in shape"
        )
    rec = recorded.long().sort(dim=-1).values
    cur = current.long().to(rec.device).sort(dim=-1).values
    same = (rec == cur).all(dim=-1)  # [L, *tokens]
    valid = rec[..., 0] != FREE
    if mask is not None:
        if tuple(mask.shape) != tuple(same.shape[1:]):
            raise RoutingMismatchError(
                f"routing agreement: mask {tuple(mask.shape)} does not match tokens {tuple(same.shape[1:])}"
            )
        valid = valid & (mask.to(rec.device) != 0)
    n = int(valid.sum())
    return float((same & valid).sum()) / n if n else float("nan")


@dataclass
class PassRouting:
    """What :func:`routing_pass` yields: the recorded routing and what the forward did."""

    recorded_LNk: Tensor
    in_force: RoutingRecord  # the routing the forward used (the replayed one under replay)
    replay: ReplayHandle | None  # the routers' own choice under replay

    def agreement(self) -> float:
        """``moe/routing_agreement`` of the first forward: routing in force vs recorded (1.0 under replay)."""
        return routing_agreement(self.recorded_LNk, self.in_force.call(0))

    def router_agreement(self) -> float:
        """The routers' own top-k vs recorded, also under replay (= :meth:`agreement` without replay)."""
        if self.replay is None:
            return self.agreement()
        return routing_agreement(self.recorded_LNk, self.replay.natural_call(0))


@contextmanager
def routing_pass(model: nn.Module, recorded: Tensor, *, replay_routing: bool) -> Iterator[PassRouting]:
    """A training forward (and its backward) with the rollout's routing replayed or only compared.

    ``recorded`` is the micro-batch's routing in forward order, ``[L, B*T, k]`` or
    ``[L, B, T, k]`` (:func:`routing_rows`); with ``replay_routing`` every forward under the
    context is routed by it (:func:`replay`), else the routers choose and their choice is
    recorded. Either way ``.agreement()`` is ``moe/routing_agreement`` for the first forward.
    """
    routers = moe_routers(model)
    recorded_LNk = _validate(recorded, routers)
    with record(model, dtype=torch.long) as in_force:
        if replay_routing:
            with replay(model, recorded_LNk) as handle:
                yield PassRouting(recorded_LNk, in_force, handle)
        else:
            yield PassRouting(recorded_LNk, in_force, None)
