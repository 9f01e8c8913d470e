"""RL and SFT runs under ``parallel.strategy`` ddp and fsdp, in one torchrun process group
(``torchrun --nproc_per_node 2 fsdp_worker.py MODEL_DIR OUT_DIR``); tests/test_fsdp.py compares them.

Run directories written under OUT_DIR:

- ``rl-ddp``, ``rl-fsdp``: the same 4 RL steps (C3PO with carried leftovers, 2 PPO epochs, so
  pi_old is a separate pass; a KL reference; small micro-batches, so the ranks' micro-batch
  counts differ), checkpoints every 2 steps;
- ``rl-hsdp``: the fsdp run with hybrid sharding (``parallel.shard_size=1``: a 2-D mesh of 2
  replicas of 1 shard);
- ``rl-part``: the fsdp run stopped (an exception on every rank, as a kill would) once its
  step-2 checkpoint is written, then resumed by a new trainer to step 4;
- ``rl-rollback``: the fsdp run's first 2 steps with ``monitor.rollback`` on (a step-0 checkpoint);
- ``sft-ddp``, ``sft-fsdp``: 2 epochs of SFT with the per-epoch entropy evaluation, where the
  last step of each epoch leaves one rank without a batch (it runs a zero-loss pass).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import torch

from ringrl.config import load_config
from ringrl.distributed import close_distributed
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import RLTrainer
from ringrl.sft.config import SFTConfig
from ringrl.sft.trainer import train_sft

_spec = importlib.util.spec_from_file_location("ringrl_tests_conftest", Path(__file__).with_name("conftest.py"))
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)

RL = [
    "model.device=cpu",
    "steps=4",
    "save_every=2",
    "rollout.prompts_per_step=3",  # 2 ranks: one samples 2 prompts, the other 1
    "rollout.samples_per_prompt=4",
    "rollout.max_new_tokens=8",
    "former.budget_tokens=40",
    "former.leftover=carry",
    "ppo_epochs=2",
    "micro_batch_tokens=32",
    "loss.beta=0.1",
    "data.train_size=16",
    "optim.lr=1e-2",
    "optim.warmup_ratio=0",
    "threads=1",
    "progress=false",
    "tensorboard=false",
]
REPLAY = ["rollout.routing_replay=true", "model.dtype=bfloat16", "steps=2", "mini_batches=2"]
SFT = [
    "model.device=cpu",
    "data.train_size=24",
    "data.eval_size=2",
    "epochs=2",
    "batch_tokens=650",  # 15 batches an epoch, 2 per step over 2 ranks: in the last step one rank has none
    "grad_accum=1",
    "save_every=2",
    "keep_checkpoints=10",
    "optim.lr=1e-2",
    "optim.warmup_ratio=0",
    "entropy.max_new_tokens=4",
    "progress=false",
    "tensorboard=false",
    "threads=1",
]


class Killed(Exception):
    pass


def rl(model_dir: str, out: Path, strategy: str, *extra: str) -> RLTrainer:
    cfg = load_config(
        RLConfig, overrides=[f"model.path={model_dir}", f"out={out}", f"parallel.strategy={strategy}", *RL, *extra]
    )
    return RLTrainer(cfg, score=_conftest.parity_score)


def main(model_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    out = Path(out_dir)
    for strategy in ("ddp", "fsdp"):
        rl(model_dir, out / f"rl-{strategy}", strategy).fit()
    rl(model_dir, out / "rl-hsdp", "fsdp", "parallel.shard_size=1").fit()  # hybrid: 2 replicas of 1 shard
    for strategy in ("ddp", "fsdp"):  # routing replay: each rank replays the routing of the rows it trains
        rl(model_dir, out / f"replay-{strategy}", strategy, *REPLAY).fit()
    part = rl(model_dir, out / "rl-part", "fsdp")
    real_step = part.step

    def step():
        if part.state.step == 2:  # the step-2 checkpoint is written: die before step 3
            raise Killed
        return real_step()

    part.step = step  # type: ignore[method-assign]
    with contextlib.suppress(Killed):
        part.fit()
    rl(model_dir, out / "rl-part", "fsdp", "resume=true").fit()
    # monitor.rollback writes a step-0 checkpoint before the first update: saving must not start AdamW
    rl(model_dir, out / "rl-rollback", "fsdp", "monitor.rollback=true", "steps=2").fit()
    for strategy in ("ddp", "fsdp"):
        cfg = load_config(
            SFTConfig,
            overrides=[
                f"model.path={model_dir}",
                f"out={out / f'sft-{strategy}'}",
                f"parallel.strategy={strategy}",
                *SFT,
            ],
        )
        train_sft(cfg, grader=_conftest.zero_grader)
    close_distributed()


class _Block(torch.nn.Module):
    """Two "experts"; a rank routes its tokens to expert 1 only when told to (expert 1 then gets no
    gradient on the other rank, as a routed expert module that received no token). A scale kept in a
    ``ParameterDict`` (no forward of its own, as PEFT's LoRA embeddings) is used by the block itself."""

    def __init__(self) -> None:
        super().__init__()
        self.experts = torch.nn.ModuleList(torch.nn.Linear(8, 8) for _ in range(2))
        self.scale = torch.nn.ParameterDict({"a": torch.nn.Parameter(torch.ones(8))})

    def forward(self, x: torch.Tensor, both: bool) -> torch.Tensor:
        return (self.experts[0](x) + (self.experts[1](x) if both else 0)) * self.scale["a"]


class _Toy(torch.nn.Module):
    _no_split_modules = ["_Block"]

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(_Block() for _ in range(2))
        self.side = torch.nn.Linear(8, 8, bias=False)  # its weight is read directly, its forward never runs

    def forward(self, x: torch.Tensor, both: bool) -> torch.Tensor:
        for b in self.blocks:
            x = b(x, both)
        return x + 0.1 * torch.nn.functional.linear(x, self.side.weight)


def unused(out_dir: str, strategy: str) -> None:
    """``fsdp_worker.py unused OUT_DIR ddp|fsdp``: rank 1 alone uses expert 1; the reduced gradient
    must be the mean of the ranks' own (under FSDP: no size mismatch in the reduce-scatter, no hang).
    Then which parameters keep a gradient for the optimizer (``drop_unreached_grads``) after a pass
    where no rank runs expert 1, and after one where only a zero-weight ``idle_pass`` does."""
    from ringrl.common_config import ParallelConfig
    from ringrl.distributed import drop_unreached_grads, idle_pass, init_distributed, reaching, wrap_model
    from ringrl.fsdp import full_value

    dist, _ = init_distributed("cpu", sharded=strategy == "fsdp")
    torch.manual_seed(0)
    model, x = _Toy(), torch.randn(4, 8, generator=torch.Generator().manual_seed(dist.rank))
    grads = []
    for r in range(dist.world_size):  # what each rank's backward gives, computed here for all ranks
        xr = torch.randn(4, 8, generator=torch.Generator().manual_seed(r))
        model.zero_grad(set_to_none=True)
        model(xr, both=r == 1).square().sum().backward()
        grads.append(
            {n: (p.grad if p.grad is not None else torch.zeros_like(p)).clone() for n, p in model.named_parameters()}
        )
    model.zero_grad(set_to_none=True)
    train = wrap_model(model, dist, ParallelConfig(strategy=strategy), torch.float32)

    def step(both: bool, idle: bool = False) -> list[str]:
        model.zero_grad(set_to_none=True)
        with reaching(train), idle_pass(train) if idle else contextlib.nullcontext():
            (train(x, both=both).square().sum() * (0.0 if idle else 1.0)).backward()
        return sorted(n for n, p in model.named_parameters() if p.grad is not None)

    model.zero_grad(set_to_none=True)
    with reaching(train):
        train(x, both=dist.rank == 1).square().sum().backward()
    got = {n: full_value(p.grad) for n, p in model.named_parameters()}
    want = {n: sum(g[n] for g in grads) / dist.world_size for n in got}
    drop_unreached_grads(model)  # expert 1 ran on rank 1: it keeps its gradient on both ranks
    kept = sorted(n for n, p in model.named_parameters() if p.grad is not None)
    step(both=False)  # now no rank runs expert 1
    drop_unreached_grads(model)
    kept_after_none = sorted(n for n, p in model.named_parameters() if p.grad is not None)
    # a zero-weight pass that keeps the ranks in step reaches expert 1 on rank 0: it does not count
    step(both=dist.rank == 0, idle=dist.rank == 0)
    drop_unreached_grads(model)
    kept_after_idle = sorted(n for n, p in model.named_parameters() if p.grad is not None)
    out = {
        "got": got,
        "want": want,
        "kept": kept,
        "kept_after_none": kept_after_none,
        "kept_after_idle": kept_after_idle,
    }
    torch.save(out, Path(out_dir) / f"unused-{strategy}-rank{dist.rank}.pt")
    close_distributed()


if __name__ == "__main__":
    if sys.argv[1] == "unused":
        unused(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
