"""``ringrl quickstart [--out DIR] [--smoke]``: the whole recipe on the embedded default."""

from __future__ import annotations

import argparse
from importlib import resources


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart",
        help="the whole recipe on the embedded tiny MoE and synthetic tasks (CPU, minutes)",
        description="Builds the embedded tiny MoE and tokenizer, generates the synthetic tasks, then runs the "
        "pipeline in configs/quickstart.yaml: long-CoT SFT with entropy per epoch, checkpoint selection, RL stage 1 "
        "(math, C3PO), RL stage 2 (code + logic, C3PO), evaluation and an HTML report. Re-running skips finished stages.",
    )
    p.add_argument("--out", default=None, help="output directory (default: runs/quickstart, or runs/quickstart-smoke)")
    p.add_argument(
        "--smoke", action="store_true", help="a reduced run (at most 3 minutes on 2 CPU cores) for checks and CI"
    )
    p.set_defaults(func=run)


def quickstart_spec(out: str | None, smoke: bool):
    """The packaged quickstart pipeline; ``smoke`` shrinks every stage."""
    import yaml

    from ringrl.config import merge
    from ringrl.pipeline import parse_pipeline

    data = yaml.safe_load(resources.files("ringrl.configs").joinpath("quickstart.yaml").read_text())
    if smoke:
        smoke_cfg = data.pop("smoke")
        for stage in data["stages"]:
            stage["config"] = merge(stage.get("config") or {}, smoke_cfg.get(stage["kind"], {}))
    else:
        data.pop("smoke", None)
    default_out = "runs/quickstart-smoke" if smoke else "runs/quickstart"
    return parse_pipeline(data, "ringrl/configs/quickstart.yaml", out or default_out)


def run(args: argparse.Namespace) -> int:
    import time

    from ringrl.pipeline import run_pipeline
    from ringrl.pipeline.summary import print_summary

    spec = quickstart_spec(args.out, args.smoke)
    t0 = time.perf_counter()
    result = run_pipeline(spec)
    print_summary(result, time.perf_counter() - t0)
    print(f"run directory: {spec.out}")
    return 0
