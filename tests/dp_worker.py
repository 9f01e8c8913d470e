"""The loss pass of fixed formed batches, on one process (``python dp_worker.py``) or on N data-parallel
ranks (``torchrun --nproc_per_node N dp_worker.py``); tests/test_distributed.py compares them.

Usage: ``dp_worker.py MODEL_DIR OUT_DIR [ddp|fsdp]``. For every case it writes ``OUT_DIR/CASE-rankR.pt``
with the gradients after the step's backward (under DDP: after the all-reduce; under FSDP: the
reduce-scattered shards gathered whole), the metrics, and how many sequences this rank trained.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import torch

from ringrl.algorithms import FormerConfig, balance_across_ranks, get_batch_former
from ringrl.common_config import ParallelConfig
from ringrl.distributed import close_distributed, init_distributed, wrap_model
from ringrl.fsdp import full_value, shard_model
from ringrl.models import load_policy
from ringrl.rl.config import LossConfig
from ringrl.rl.update import rank_gradients

_spec = importlib.util.spec_from_file_location("ringrl_tests_conftest", Path(__file__).with_name("conftest.py"))
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
random_groups = _conftest.random_groups  # the same batches and reference as tests/rl/test_rl_update.py

# router terms are per micro-batch statistics, not sums over tokens: off, so any split is exact
LOSS = LossConfig(eps_low=0.2, eps_high=0.28, beta=0.1, alpha_entropy=1e-2, alpha_balance=0.0, alpha_zloss=0.0)
# name -> (algo, budget Phi): "lone" keeps a single (cut) response, so one of two ranks has none
CASES = {"c3po": ("c3po", 60), "grpo": ("grpo", 60), "dapo": ("dapo", 60), "lone": ("c3po", 3)}


def main(model_dir: str, out: str, strategy: str = "ddp") -> None:
    torch.set_num_threads(1)
    dist, device = init_distributed("cpu", sharded=strategy == "fsdp")
    model, tok = load_policy(model_dir, device=device)
    ref = _conftest.perturbed_reference(model)
    model.train()
    parallel = ParallelConfig(strategy=strategy)
    train_model = wrap_model(model, dist, parallel, torch.float32)
    if strategy == "fsdp":  # the reference sharded too, as the trainer does
        shard_model(ref, torch.float32, parallel.reshard_after_forward, parallel.cpu_offload)
    for name, (algo, budget) in CASES.items():
        batch = get_batch_former(algo)(
            random_groups(1, len(tok)), [], FormerConfig(budget_tokens=budget), random.Random(0)
        )
        model.zero_grad(set_to_none=True)
        metrics = rank_gradients(train_model, ref, batch.selected, tok.pad_token_id, 40, LOSS, 1.0, 2, dist)
        lengths = [len(s.sample.prompt_ids) + s.n_tokens for s in batch.selected]
        mine = balance_across_ranks(lengths, dist.world_size)[dist.rank]
        grads = {n: full_value(p.grad).detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save(
            {
                "grads": grads,
                "metrics": {k: v for k, v in metrics.items() if not k.startswith("_")},
                "sequences": len(mine),
                "batch_tokens": batch.n_tokens,
                "world_size": dist.world_size,
            },
            Path(out) / f"{name}-rank{dist.rank}.pt",
        )
    close_distributed()


if __name__ == "__main__":
    main(*sys.argv[1:4])
