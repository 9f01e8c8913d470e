"""``ringrl sft``: long-CoT SFT, a checkpoint per epoch, entropy and accuracy per checkpoint."""

from __future__ import annotations

import argparse

from ringrl.cli.common import add_config_args, split_overrides
from ringrl.distributed import is_rank_zero
from ringrl.sft.config import SFTConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sft",
        help="long-CoT SFT with a checkpoint, entropy and accuracy per epoch",
        description="Long chain-of-thought SFT (loss on response tokens only). Without data.train it "
        "trains the embedded tiny MoE on the embedded synthetic tasks. Data parallel: torchrun --nproc_per_node N "
        "-m ringrl sft ... (an optimizer step then takes grad_accum x N batches); parallel.strategy=fsdp shards "
        "the model, gradients and optimizer state over the ranks (docs/scale.md).",
    )
    add_config_args(p, SFTConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ringrl.config import load_config
    from ringrl.sft.selectcli import print_checkpoints
    from ringrl.sft.trainer import train_sft

    cfg = load_config(SFTConfig, args.config, split_overrides(args))
    summary = train_sft(cfg)
    if not is_rank_zero():  # under torchrun rank 0 speaks for all
        return 0
    print_checkpoints(summary["checkpoints"], chosen=None)
    print(f"run directory: {cfg.out}")
    return 0
