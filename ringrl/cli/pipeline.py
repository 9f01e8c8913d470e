"""``ringrl pipeline CONFIG``: the stages a YAML config lists, each from the previous one's output."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pipeline",
        help="run the stages a YAML config lists (finished stages are skipped)",
        description="Stages (curate, sft, select, rl, eval, report) run in order; a finished stage is "
        "skipped on a re-run and an interrupted SFT or RL stage resumes from its last checkpoint.",
    )
    p.add_argument(
        "config", metavar="CONFIG", help="pipeline YAML (an example: ringrl/configs/quickstart.yaml in the package)"
    )
    p.add_argument("--out", help="output directory (default: the config's 'out')")
    p.add_argument(
        "--wandb",
        action="store_true",
        help="log every sft and rl stage to Weights & Biases: one run per stage, named PIPELINE/STAGE, "
        "grouped under the pipeline's directory name (same as STAGE.logger.wandb=true on each)",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="STAGE.key=value", help="override a stage's config key, e.g. rl-math.steps=10"
    )
    p.set_defaults(func=run)


CONFIGURED_KINDS = ("sft", "rl", "eval")  # the stage kinds whose config key=value overrides reach


def split_stage_overrides(items: list[str]) -> dict[str, list[str]]:
    from ringrl.errors import UserError

    out: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UserError(f"override '{item}': expected STAGE.key=value (e.g. rl-math.steps=10)")
        stage, rest = item.split(".", 1)
        out.setdefault(stage, []).append(rest)
    return out


def run(args: argparse.Namespace) -> int:
    from ringrl.distributed import is_rank_zero
    from ringrl.errors import UserError
    from ringrl.pipeline import load_pipeline, run_pipeline

    spec = load_pipeline(args.config, out=args.out)
    overrides = split_stage_overrides(args.overrides)
    kinds = {s.name: s.kind for s in spec.stages}
    for stage in overrides:
        if stage not in kinds:
            raise UserError(
                f"override for stage '{stage}': no such stage in {args.config} ({', '.join(sorted(kinds))})"
            )
        if kinds[stage] not in CONFIGURED_KINDS:
            raise UserError(
                f"override for stage '{stage}': a {kinds[stage]} stage has no config to override; "
                f"edit its options in {args.config}"
            )
    if args.wandb:
        from ringrl.pipeline.runner import with_wandb

        overrides = with_wandb(spec, overrides)
    run_pipeline(spec, overrides)
    if is_rank_zero():  # under torchrun rank 0 speaks for all
        print(f"pipeline finished: {spec.out}")
    return 0
