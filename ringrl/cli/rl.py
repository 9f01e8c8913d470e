"""``ringrl rl``: RL with algo c3po (default), grpo or dapo."""

from __future__ import annotations

import argparse

from ringrl.cli.common import add_config_args, split_overrides
from ringrl.distributed import is_rank_zero
from ringrl.rl.config import RLConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rl",
        help="RL with C3PO (token budget), GRPO or DAPO",
        description="Reasoning RL from any HF causal LM directory (model.path=DIR), rewards from the "
        "verifiers. Example: ringrl rl model.path=runs/sft/checkpoints/epoch-2 algo=c3po former.budget_tokens=4096. "
        "Data parallel: torchrun --nproc_per_node N -m ringrl rl ... (gloo on CPU, NCCL on GPUs; "
        "the budget Phi and rollout.prompts_per_step stay global); parallel.strategy=fsdp shards the model, "
        "gradients and optimizer state over the ranks (docs/scale.md).",
    )
    add_config_args(p, RLConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ringrl.config import load_config
    from ringrl.rl.trainer import train_rl

    cfg = load_config(RLConfig, args.config, split_overrides(args))
    summary = train_rl(cfg)
    if not is_rank_zero():  # under torchrun rank 0 speaks for all
        return 0
    print(
        f"reward {summary['reward_first']:.3f} -> {summary['reward_last']:.3f} over {summary['steps']} steps; "
        f"{summary['rl_tokens']:,} tokens trained; run directory: {cfg.out}"
    )
    return 0
