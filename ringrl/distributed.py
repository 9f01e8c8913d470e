"""Data parallelism under ``torchrun``: the process group, DDP, and the collectives the trainers need.

One process per device, launched with ``torchrun --nproc_per_node N -m ringrl rl ...``
(or ``sft``): gloo on CPU, NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``. Without
torchrun's environment (``WORLD_SIZE`` unset or 1) nothing here starts a process group
and every helper is the identity, so one code path serves one process and N.

How N ranks train as one process on the whole batch (DESIGN.md, "Scale-out"):

- the weights start equal (every rank loads the same directory; DDP also broadcasts
  rank 0's at wrap time) and stay equal: gradients are all-reduced, so clipping, the
  non-finite check and the optimizer step agree on every rank;
- each rank's loss uses the *global* per-token weights fixed before any backward pass
  (C3PO: 1/Phi), so the rank losses sum to the one-process loss; DDP averages
  gradients over ranks, hence every rank's loss is multiplied by ``world_size``;
- a rank may hold no sequence at all (fewer responses than ranks): it still runs one
  backward pass, on a zero-weight sequence, so that the gradient all-reduce matches
  (:func:`idle_pass`: it reaches no module, so a parameter that no rank ran on real data
  gets no gradient and AdamW skips it, as on one process: :func:`drop_unreached_grads`);
- only rank 0 writes files (metrics, checkpoints, summaries); every rank reads the same
  run directory, so it must sit on a filesystem all ranks share.

``parallel.strategy: fsdp`` (:mod:`ringrl.fsdp`) shards the weights, gradients and
optimizer state instead of replicating them; the maths is the same. FSDP2's
reduce-scatter, like DDP's all-reduce, *averages* the ranks' gradients (it divides by the
world size, in float32: ``MixedPrecisionPolicy(reduce_dtype=float32)``), so the same
``world_size`` factor on every rank's loss makes each shard of the reduced gradient the
shard of the one-process gradient. Two differences: FSDP's forward and backward are
collectives, so ranks run equal numbers of micro-batches (zero-weight ones pad the
shorter ranks) and every micro-batch's backward reduces (there is no ``no_sync``: the
reduced, sharded gradients accumulate); and ranks hold different shards, so the replica
check before a checkpoint is replaced by a finiteness check of every rank's shard.

The process group is joined once per process and left to the end of the process
(:func:`close_distributed`, called by the CLI on exit): trainers never destroy it, so
several stages can run in one process, and a rank that fails exits without waiting in a
collective its peers will never reach (torchrun then stops the others). The collective
timeout is ``RINGRL_DIST_TIMEOUT_MINUTES`` (default 60): the longest one rank may wait
for another, e.g. while rank 0 writes a checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Dist:
    """Where this process sits in the data-parallel group (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str, sharded: bool = False, host_collectives: bool = False) -> tuple[Dist, str]:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (once per process; later calls
    reuse it); returns (dist, this rank's device).

    ``device`` is the config's (``auto``, ``cpu``, ``cuda``): under torchrun ``auto`` and
    ``cuda`` become ``cuda:LOCAL_RANK``; a fixed ``cuda:N`` would put every rank on one GPU
    and is a config error. ``sharded`` (``parallel.strategy: fsdp``): FSDP needs a process
    group even on one process, so one of size 1 is made there (``Dist`` stays rank 0 of 1).
    ``host_collectives`` (``parallel.cpu_offload``): on CUDA the group also runs gloo for tensors in host
    memory (the offloaded shards' gradient norm and finiteness checks), NCCL for the rest."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        if sharded:
            _single_process_group(device, host_collectives)
        return Dist(), device
    import torch
    import torch.distributed as td

    from ringrl.errors import ConfigError
    from ringrl.models.loading import resolve_device

    local = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    dev = resolve_device(device)
    if dev.startswith("cuda:"):
        raise ConfigError(
            "model.device",
            f"'{dev}' under torchrun would put every rank on one GPU; "
            "use 'auto' or 'cuda' (each rank takes cuda:LOCAL_RANK)",
        )
    if dev == "cuda":
        dev = f"cuda:{local}"
        torch.cuda.set_device(dev)
    if not td.is_initialized():
        minutes = float(os.environ.get("RINGRL_DIST_TIMEOUT_MINUTES", "60"))
        kwargs: dict[str, Any] = {"timeout": timedelta(minutes=minutes)}
        if dev.startswith("cuda"):
            kwargs["device_id"] = torch.device(dev)
        td.init_process_group(_backend(dev, host_collectives), **kwargs)
    return Dist(td.get_rank(), td.get_world_size(), local, local_world), dev


def _backend(device: str, host_collectives: bool) -> str:
    if not device.startswith("cuda"):
        return "gloo"
    return "cpu:gloo,cuda:nccl" if host_collectives else "nccl"


def _single_process_group(device: str, host_collectives: bool = False) -> None:
    """A process group of one rank (an in-memory store: no port, no file), for FSDP without torchrun."""
    import torch.distributed as td

    from ringrl.models.loading import resolve_device

    if td.is_initialized():
        return
    backend = _backend(resolve_device(device), host_collectives)
    td.init_process_group(backend, store=td.HashStore(), rank=0, world_size=1)


def wrap_model(model: Any, dist: Dist, parallel: Any, compute_dtype: Any) -> Any:
    """What trains: ``parallel.strategy`` ddp: :func:`wrap_ddp` (``model`` itself on one process);
    fsdp: ``model`` sharded in place (:func:`ringrl.fsdp.shard_model`), also on one process."""
    if not parallel.sharded:
        if dist.enabled:
            track_reached(model)
        return wrap_ddp(model, dist)
    from ringrl.fsdp import shard_model

    return shard_model(model, compute_dtype, parallel.reshard_after_forward, parallel.cpu_offload, parallel.shard_size)


_REACHED_ATTR = "_ringrl_reached"
#: Modules whose own forward never runs: their parameters count as reached when the module using them runs.
_CONTAINERS = ("ParameterDict", "ParameterList", "ModuleDict", "ModuleList")


@dataclass
class _Reach:
    """Which modules ran on real data since the last optimizer step (:func:`track_reached`)."""

    modules: list[Any]  # the modules whose forward marks their parameters as reached
    holders: list[tuple[Any, list[int]]]  # each trainable parameter and the modules (indices) that use it
    flags: bytearray
    idle: bool = False


def track_reached(model: Any) -> None:
    """Prepare :func:`reaching` and :func:`drop_unreached_grads` for ``model`` (data-parallel training).

    A parameter is reached when a module holding it runs (with autograd on, outside
    :func:`idle_pass`); for one kept in a container that has no forward of its own (a
    ``ParameterDict``, as PEFT's LoRA embeddings use) the nearest enclosing module that runs
    counts. A parameter tied to several modules is reached when any of them runs."""
    by_name = dict(model.named_modules(remove_duplicate=False))
    modules: list[Any] = []
    index: dict[int, int] = {}
    holders: dict[int, tuple[Any, list[int]]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if not p.requires_grad:
            continue
        path = name.rsplit(".", 1)[0] if "." in name else ""
        while path and type(by_name[path]).__name__ in _CONTAINERS:
            path = path.rsplit(".", 1)[0] if "." in path else ""
        m = by_name[path]
        if id(m) not in index:
            index[id(m)] = len(modules)
            modules.append(m)
        holder = holders.setdefault(id(p), (p, []))
        if index[id(m)] not in holder[1]:
            holder[1].append(index[id(m)])
    setattr(model, _REACHED_ATTR, _Reach(modules, list(holders.values()), bytearray(len(modules))))


@contextmanager
def reaching(model: Any) -> Iterator[None]:
    """Around the gradient passes of one optimizer step: forward pre-hooks note the modules that run
    (only here, so that rollouts and evaluation pay nothing for them). A no-op for an untracked model."""
    state = getattr(unwrap(model), _REACHED_ATTR, None)
    if state is None:
        yield
        return
    import torch

    def hook(i: int) -> Any:
        def pre(module: Any, args: Any) -> None:
            if not state.idle and torch.is_grad_enabled():
                state.flags[i] = 1

        return pre

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(state.modules)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def idle_pass(model: Any) -> Iterator[None]:
    """Context of a zero-weight pass that only keeps the ranks' collectives in step (a rank with no
    sequence, or FSDP's padding to equal micro-batch counts): it reaches no module for
    :func:`drop_unreached_grads`."""
    state = getattr(unwrap(model), _REACHED_ATTR, None)
    if state is None:
        yield
        return
    state.idle = True
    try:
        yield
    finally:
        state.idle = False


def drop_unreached_grads(model: Any) -> None:
    """Before an optimizer step under data parallelism (every rank): the parameters that no rank reached
    on real data since the last step (an expert module no token was routed to) lose the all-zero
    gradient that a zero-weight pass, or FSDP's reduction of unused parameters, gave them, so AdamW
    skips them (no momentum step, no weight decay, no step count) as on one process. Only a gradient
    that is zero on every rank is dropped. One all-reduce of a flag per module (and one per unreached
    parameter when there are any); nothing for a model that :func:`track_reached` did not prepare."""
    state = getattr(model, _REACHED_ATTR, None)
    if state is None:
        return
    import torch
    import torch.distributed as td

    from ringrl.fsdp import compute_device, local_part

    dev = compute_device(model)
    flags = torch.tensor(list(state.flags), dtype=torch.int32, device=dev)
    td.all_reduce(flags, op=td.ReduceOp.MAX)
    reached = flags.tolist()
    state.flags[:] = bytes(len(state.flags))
    unreached = [p for p, users in state.holders if not any(reached[i] for i in users)]
    if not unreached:
        return
    # only a gradient that is zero on every rank is dropped: a parameter used without its module's forward
    # (e.g. read directly by another module) keeps a real gradient
    nonzero = torch.tensor(
        [0 if p.grad is None else int(bool(local_part(p.grad).count_nonzero())) for p in unreached],
        dtype=torch.int32,
        device=dev,
    )
    td.all_reduce(nonzero, op=td.ReduceOp.MAX)
    for p, keep in zip(unreached, nonzero.tolist()):
        if not keep:
            p.grad = None


def close_distributed(clean: bool = True) -> None:
    """Leave the process group, if this process joined one (at the end of the process).

    First every object that still holds the group (a DDP wrapper left in a reference cycle)
    is freed, while the group and the interpreter are fully alive: freed later, during
    interpreter shutdown, its C++ side can abort the process after the run succeeded
    (``terminate called without an active exception``, exit code 1 under torchrun). Then,
    on a ``clean`` exit, a barrier: no rank tears its connections down while another is
    still in a collective. After a failure there is no barrier (the other ranks may never
    reach it; torchrun stops them)."""
    import gc

    import torch.distributed as td

    if not (td.is_available() and td.is_initialized()):
        return
    gc.collect()
    if clean:
        td.barrier()
    td.destroy_process_group()


def wrap_ddp(model: Any, dist: Dist) -> Any:
    """``model`` itself on one process; otherwise a ``DistributedDataParallel`` view of it.

    No buffer sync in the forward (``forward_sync_buffers=False``, formerly
    ``broadcast_buffers``): ranks run different numbers of forward passes per step (their
    micro-batch counts differ), so no collective may hide in the forward; HF buffers
    (rotary tables) are equal on every rank anyway. ``find_unused_parameters=True``: a
    routed expert kept in its own module gets no gradient on a rank that routed it no
    token (and HF models may carry parameters a forward never uses); with fused expert
    tensors torch notes once that it found none, which costs one graph traversal."""
    if not dist.enabled:
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    dev = next(model.parameters()).device
    ids = [dev] if dev.type == "cuda" else None
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True, forward_sync_buffers=False)
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True, broadcast_buffers=False)


def unwrap(model: Any) -> Any:
    """The module inside a DDP wrapper (the model itself otherwise)."""
    return getattr(model, "module", model)


def sync_unless(model: Any, skip: bool):
    """Context of one micro-batch's forward and backward: DDP's ``no_sync`` when ``skip``
    (gradients only accumulate locally), a no-op otherwise, without DDP, and under FSDP
    (every micro-batch's backward reduce-scatters; the ranks run the same number of them)."""
    return model.no_sync() if skip and hasattr(model, "no_sync") else nullcontext()


def gather_objects(obj: Any, dist: Dist) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` on one process)."""
    if not dist.enabled:
        return [obj]
    import torch.distributed as td

    out: list[Any] = [None] * dist.world_size
    td.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, dist: Dist) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not dist.enabled:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(values: dict[str, Any], dist: Dist) -> dict[str, Any]:
    """Sum every float and tensor value of ``values`` over ranks (same keys on every rank)."""
    if not dist.enabled:
        return values
    import torch
    import torch.distributed as td

    out = dict(values)
    keys = sorted(k for k, v in values.items() if not isinstance(v, torch.Tensor))
    dev = torch.device("cuda", torch.cuda.current_device()) if td.get_backend() == "nccl" else torch.device("cpu")
    if keys:
        flat = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=dev)
        td.all_reduce(flat)
        out.update(zip(keys, flat.tolist()))
    for k in sorted(k for k, v in values.items() if isinstance(v, torch.Tensor)):
        t = values[k].detach().to(dev, torch.float64).clone()
        td.all_reduce(t)
        out[k] = t.to(values[k].dtype).cpu()
    return out


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as td

        td.barrier()


def is_rank_zero() -> bool:
    """True on one process and on torchrun's rank 0 (from the environment, before any group exists):
    the process that speaks for all on the terminal."""
    return int(os.environ.get("RANK", "0")) == 0


def check_before_save(model: Any, dist: Dist, path: Any) -> None:
    """Run on every rank before rank 0 writes the checkpoint ``path``: the weights are finite (the
    ranks' weights are equal, so all of them stop together) and equal across ranks."""
    from ringrl.fsdp import is_fsdp
    from ringrl.utils.checkpoint import NonFiniteWeights, all_finite

    if not all_finite(model):
        raise NonFiniteWeights(f"refusing to write {path}: the model has non-finite weights")
    if not is_fsdp(model) and not replicas_agree(model, dist):  # sharded ranks hold different shards
        raise RuntimeError(f"refusing to write {path}: the data-parallel ranks hold different weights")


def replicas_agree(model: Any, dist: Dist) -> bool:
    """True when every rank holds the same weights (per-tensor fp64 sums and absolute sums, compared).

    The trainers check this before writing a checkpoint: rank 0 writes for all, so a
    divergence would otherwise go unseen."""
    if not dist.enabled:
        return True
    import torch

    with torch.no_grad():
        sig = [
            (float(p.sum(dtype=torch.float64)), float(p.abs().sum(dtype=torch.float64)))
            for p in unwrap(model).parameters()
        ]
    first, *rest = gather_objects(sig, dist)
    return all(r == first for r in rest)
