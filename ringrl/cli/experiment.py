"""``ringrl experiment NAME``: the paper's findings reproduced small, over seeds."""

from __future__ import annotations

import argparse

from ringrl.pipeline.experiments import EXPERIMENTS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="reproduce a finding of the paper on the embedded default, over seeds",
        description="c3po-vs-grpo: stability and reward of C3PO against GRPO from one SFT checkpoint; "
        "sft-epochs: RL from every SFT epoch (entropy vs RL gain, token efficiency); "
        "two-stage-vs-mixed: math-then-code RL against one mixed run. Each writes a pipeline "
        "directory with a report; finished runs are skipped on a re-run.",
    )
    p.add_argument("name", choices=EXPERIMENTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="RL seeds (default: 0 1 2)")
    p.add_argument("--out", default=None, help="output directory (default: runs/experiment-NAME)")
    p.add_argument("--smoke", action="store_true", help="shrink every stage (for checks)")
    p.add_argument(
        "--stress",
        action="store_true",
        help="c3po-vs-grpo on a task whose answers may be short or long, longer RL at a higher lr (docs/results.md)",
    )
    p.add_argument(
        "--wandb",
        action="store_true",
        help="log every sft and rl stage to Weights & Biases, one run per stage grouped under the experiment",
    )
    p.add_argument(
        "--sft",
        default=None,
        metavar="RUN_DIR",
        help="start from this finished SFT run (e.g. runs/quickstart/sft) instead of training one",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ringrl.pipeline import run_pipeline
    from ringrl.pipeline.experiments import experiment_spec
    from ringrl.pipeline.runner import with_wandb
    from ringrl.pipeline.summary import print_summary

    default_out = f"runs/experiment-{args.name}" + ("-stress" if args.stress else "")
    spec = experiment_spec(args.name, args.out or default_out, args.seeds, args.smoke, args.stress)
    if args.sft:
        from pathlib import Path

        from ringrl.pipeline.runner import adopt_sft_run

        if not adopt_sft_run(Path(spec.out), "sft", Path(args.sft)):
            print(f"--sft: {spec.out}/sft already has a result; keeping it")
    t0 = time.perf_counter()
    result = run_pipeline(spec, with_wandb(spec) if args.wandb else None)
    print_summary(result, time.perf_counter() - t0)
    print(f"experiment directory: {spec.out} (report: {spec.out}/report/report.html)")
    return 0
