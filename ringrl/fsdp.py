"""Sharded data parallelism with PyTorch FSDP2 (``parallel.strategy: fsdp``).

Every decoder layer (the classes a Hugging Face model lists in ``_no_split_modules``) and
then the root module are wrapped by ``torch.distributed.fsdp.fully_shard``: parameters,
gradients and the AdamW state are sharded over the ranks (each holds ``1/N`` of them, as
DTensors). Parameters stay float32 (the master weights); ``MixedPrecisionPolicy`` gathers
them in the compute dtype (``model.dtype``) and reduces gradients in float32. How the
ranks keep the one-process maths, and why the root never reshards after its forward, is
in :mod:`ringrl.distributed` and below.

FSDP's forward and backward are collectives (each layer all-gathers its weights, each
backward reduce-scatters its gradients), so every rank must run the same sequence of
passes:

- **Loss passes** run in lockstep: a rank with fewer micro-batches than another runs
  zero-weight ones (:func:`ringrl.rl.update.rank_gradients`, the SFT step), and every
  micro-batch's backward reduce-scatters (no ``no_sync``: sharded gradients accumulate).
- **Rollouts and evaluation** cannot: ranks decode different numbers of steps. They run
  inside :func:`gathered`: every FSDP module is unsharded once (one all-gather per
  module, on every rank together) and kept unsharded until the block ends, so the forward
  passes inside need no collective at all. The sampler then sees exactly the weights the
  optimizer just produced, in the compute dtype, as the trainer's own forward does. The
  cost is the full model in the compute dtype for the length of the rollout (the same
  memory as a separate rollout copy, but freed afterwards and never stale).
- **Checkpoints**: the full state dict is gathered to rank 0 (CPU), which writes the plain
  Hugging Face directory; the resume state (float32 masters and sharded AdamW state) is
  written by every rank with ``torch.distributed.checkpoint`` into ``distcp/`` of the
  same checkpoint and reloads onto the same world size.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ringrl.errors import ConfigError, UserError

#: The sharded resume state inside a checkpoint directory (``torch.distributed.checkpoint``).
SHARDED_DIR = "distcp"
_INFO = "ringrl.json"
_RESHARD_ATTR = "_ringrl_reshard_after_forward"
_GATHERED_ATTR = "_ringrl_gathered"


def is_fsdp(model: Any) -> bool:
    """True for a module that :func:`shard_model` wrapped."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return False
    return isinstance(model, FSDPModule)


def fsdp_supported() -> bool:
    """True when this torch has what :func:`shard_model` needs (FSDP2's
    ``set_reduce_scatter_unused_params``, torch >= 2.13)."""
    try:
        import torch.distributed.fsdp as fsdp2
    except ImportError:  # pragma: no cover - torch without distributed support
        return False
    return hasattr(getattr(fsdp2, "FSDPModule", None), "set_reduce_scatter_unused_params")


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The modules FSDP wraps one by one: instances of the model's ``_no_split_modules`` classes
    (the decoder layer in every transformers causal LM)."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise UserError(
            f"parallel.strategy=fsdp: {type(model).__name__} lists no decoder layer class in "
            "_no_split_modules; use parallel.strategy=ddp"
        )
    return layers


def shard_model(
    model: Any, compute_dtype: torch.dtype, reshard_after_forward: bool, cpu_offload: bool, shard_size: int = 0
) -> Any:
    """Wrap ``model`` in place: ``fully_shard`` on each decoder layer, then on the root.

    ``shard_size`` (``parallel.shard_size``) 0 or the world size: every parameter sharded over all
    ranks; a divisor below it: hybrid sharding (HSDP) on a 2-D mesh (replicate x shard), sharded
    within each group of ``shard_size`` consecutive ranks and replicated across groups. FSDP then
    averages gradients over all ranks too (reduce-scatter in the group, all-reduce across), so the
    loss scaling is the same.

    The root keeps its weights (embeddings, final norm, output head) gathered from its
    forward to its backward, as FSDP does by default for the root: the chunked output head
    (:func:`ringrl.models.forward.token_stats`) runs after the model's forward on the
    head's full weight."""
    if not fsdp_supported():  # torch < 2.13
        raise ConfigError(
            "parallel.strategy",
            f"fsdp needs torch >= 2.13 (FSDP2's set_reduce_scatter_unused_params); this is torch {torch.__version__}",
        )
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    param_dtype = None if compute_dtype == torch.float32 else compute_dtype
    kwargs: dict[str, Any] = {
        "mp_policy": MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32),
        "reshard_after_forward": reshard_after_forward,
    }
    mesh = _mesh(next(model.parameters()).device.type, shard_size)
    if mesh is not None:
        kwargs["mesh"] = mesh
    if cpu_offload:
        if next(model.parameters()).device.type != "cuda":
            raise ConfigError(
                "parallel.cpu_offload", "offloads to host memory from a CUDA device; the model is on the CPU already"
            )
        kwargs["offload_policy"] = CPUOffloadPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    model.set_reshard_after_forward(False, recurse=False)  # the root (what FSDP's lazy init would pick)
    # a parameter a rank's pass did not reach (an expert module that got no token there) is reduced as
    # zeros, so every rank reduce-scatters the same tensors (DDP: find_unused_parameters); one that no
    # rank reached gets no gradient at all (ringrl.distributed.drop_unreached_grads, before the optimizer)
    model.set_reduce_scatter_unused_params(True)
    if any(p.requires_grad for p in model.parameters()):
        from ringrl.distributed import track_reached

        track_reached(model)
    setattr(model, _RESHARD_ATTR, reshard_after_forward)
    return model


def _mesh(device_type: str, shard_size: int) -> Any:
    """The 2-D (replicate, shard) device mesh of hybrid sharding; None for full sharding."""
    import torch.distributed as td

    world = td.get_world_size()
    if shard_size in (0, world):
        return None
    if shard_size > world or world % shard_size:
        raise ConfigError("parallel.shard_size", f"must divide the world size {world}, got {shard_size}")
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device_type, (world // shard_size, shard_size), mesh_dim_names=("replicate", "shard"))


def _inner_modules(model: Any) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule) and m is not model]


@contextlib.contextmanager
def gathered(model: Any) -> Iterator[None]:
    """Full weights for a block of forward passes that ranks run different numbers of (rollouts,
    evaluation): every rank enters together; inside, no forward pass communicates. A no-op for a
    model that is not sharded (or already inside such a block)."""
    if not is_fsdp(model) or getattr(model, _GATHERED_ATTR, False):
        yield
        return
    inner = _inner_modules(model)
    for m in inner:
        m.set_reshard_after_forward(False, recurse=False)
    for m in (model, *inner):
        m.unshard()
    setattr(model, _GATHERED_ATTR, True)
    try:
        yield
    finally:
        setattr(model, _GATHERED_ATTR, False)
        for m in (model, *inner):
            m.reshard()
        keep = getattr(model, _RESHARD_ATTR, True)
        for m in inner:
            m.set_reshard_after_forward(keep, recurse=False)


def release(model: Any) -> None:
    """Reshard the root's weights after a pass with no backward (e.g. the reference model's): the
    backward would have done it. Not inside :func:`gathered`."""
    if is_fsdp(model) and not getattr(model, _GATHERED_ATTR, False):
        model.reshard()


def compute_device(model: Any) -> torch.device:
    """Where ``model`` computes: its parameters' device, or for sharded parameters offloaded to host
    memory (``parallel.cpu_offload``) the accelerator they are gathered onto."""
    from torch.distributed.tensor import DTensor

    p = next(model.parameters())
    if isinstance(p, DTensor) and p.device.type == "cpu" and p.device_mesh.device_type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return p.device


def local_part(t: Any) -> Any:
    """This rank's shard of a sharded tensor (DTensor); any other tensor as is."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def local_all_finite(tensors: Any) -> bool:
    """Every tensor finite, on every rank: the local shard of each sharded tensor is checked and
    the verdict agreed over the ranks (one all-reduce)."""
    from torch.distributed.tensor import DTensor

    tensors = list(tensors)
    sharded = any(isinstance(t, DTensor) for t in tensors)
    local = [local_part(t) for t in tensors]
    dev = local[0].device if local else torch.device("cpu")
    with torch.no_grad():
        ok = torch.stack([torch.isfinite(t).all() for t in local]).all() if local else torch.tensor(True)
    if sharded:
        import torch.distributed as td

        flag = ok.to(dev, torch.int32).reshape(1)
        td.all_reduce(flag, op=td.ReduceOp.MIN)
        return bool(flag.item())
    return bool(ok)


def full_value(x: Any) -> Any:
    """A DTensor's whole value (e.g. the gradient norm ``clip_grad_norm_`` returns); anything else as is."""
    from torch.distributed.tensor import DTensor

    return x.full_tensor() if isinstance(x, DTensor) else x


def full_state_dict(model: Any) -> dict[str, Any] | None:
    """The whole model's state dict on rank 0 (CPU, float32 masters), None on the other ranks.
    A collective: every rank calls it."""
    import torch.distributed as td
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if td.get_rank() != 0:
        return None
    # tied parameters (e.g. embeddings and output head) come back as separate copies: make them one
    # tensor again, so that save_pretrained sees the tie and writes the weight once, as for a plain model
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    for first, *rest in names.values():
        for name in rest:
            if first in sd and name in sd:
                sd[name] = sd[first]
    return sd


def original_class(model: Any) -> type:
    """The model's own class (FSDP swaps in a subclass named ``FSDP<name>``)."""
    from torch.distributed.fsdp import FSDPModule

    return next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))


def save_sharded(model: Any, optimizer: Any, directory: Path) -> None:
    """Every rank writes its shard of the float32 masters and of the optimizer state to ``directory``."""
    import torch.distributed as td
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    started = bool(optimizer.state)
    msd, osd = get_state_dict(model, optimizer)  # a fresh optimizer gets its state from a zero-lr step here
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(directory))
    if not started:  # ... which would count as AdamW's first step (its bias correction): undo it
        optimizer.state.clear()
    if td.get_rank() == 0:
        info = {"world_size": td.get_world_size(), "optimizer_started": started}
        (Path(directory) / _INFO).write_text(json.dumps(info) + "\n")


def check_sharded(ckpt: Path) -> None:
    """Raise ValueError when checkpoint ``ckpt`` has a sharded resume state that is incomplete (its
    index or its record missing or unreadable). A checkpoint with none at all (written under ddp)
    passes here: :func:`load_sharded` then says so in one line."""
    directory = Path(ckpt) / SHARDED_DIR
    if not directory.is_dir():
        return
    try:
        world = json.loads((directory / _INFO).read_text())["world_size"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{directory}: unreadable {_INFO} ({e})") from e
    shards = list(directory.glob("*.distcp"))
    if not (directory / ".metadata").is_file() or len(shards) != world:
        raise ValueError(f"{directory}: incomplete ({len(shards)} shard files for {world} ranks, or no .metadata)")


def load_sharded(model: Any, optimizer: Any, ckpt: Path) -> None:
    """Restore what :func:`save_sharded` wrote in checkpoint ``ckpt`` (every rank, same world size)."""
    import torch.distributed as td
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    directory = Path(ckpt) / SHARDED_DIR
    if not (directory / _INFO).is_file():
        raise UserError(
            f"resume: {ckpt} has no sharded state ({SHARDED_DIR}/): it was written with parallel.strategy=ddp; "
            "resume it with ddp"
        )
    info = json.loads((directory / _INFO).read_text())
    saved = info["world_size"]
    if saved != td.get_world_size():
        raise UserError(
            f"resume: {ckpt} was written by {saved} fsdp ranks and this run has {td.get_world_size()}; "
            f"resume with --nproc_per_node {saved} (x nodes), or start a new run from its weights (model.path)"
        )
    msd, osd = get_state_dict(model, optimizer)
    dcp.load({"model": msd, "optim": osd}, checkpoint_id=str(directory))  # in place, into msd and osd
    set_state_dict(model, optimizer, model_state_dict=msd, optim_state_dict=osd)
    if not info.get("optimizer_started", True):  # saved before the first update: AdamW starts fresh
        optimizer.state.clear()


def stage_for_save(model: Any, optimizer: Any, path: Path, dist: Any) -> tuple[dict[str, Any] | None, dict[str, Path]]:
    """Before rank 0 writes checkpoint ``path`` of a sharded model (every rank calls this): the full
    state dict (rank 0's; None elsewhere) and the sharded resume state written by every rank to a
    staging directory beside ``path``, which rank 0 moves into the checkpoint
    (:func:`ringrl.utils.checkpoint.save_checkpoint`'s ``move_in``). ``(None, {})`` when not sharded."""
    import shutil

    from ringrl.distributed import barrier

    if not is_fsdp(model):
        return None, {}
    full = full_state_dict(model)
    staging = Path(path).parent / f".{Path(path).name}.{SHARDED_DIR}.tmp"
    if dist.is_main:
        shutil.rmtree(staging, ignore_errors=True)  # a crash's leftover
        staging.mkdir(parents=True)
    barrier(dist)
    save_sharded(model, optimizer, staging)
    barrier(dist)
    return full, {SHARDED_DIR: staging}
