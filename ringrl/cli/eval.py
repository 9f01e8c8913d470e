"""``ringrl eval``: benchmark a model, or grade responses generated elsewhere.

Settings come from the EvalConfig defaults, then ``--config FILE.yaml``, then the
flags below, then dotted ``key=value`` overrides.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ringrl.cli.common import add_config_args, split_overrides
from ringrl.config import from_dict, merge, parse_overrides, read_yaml, validate_all
from ringrl.errors import UserError

# flag dest -> EvalConfig field (flags default to None so that only given ones override)
_FLAG_FIELDS = (
    "samples",
    "temperature",
    "top_p",
    "max_new_tokens",
    "batch_size",
    "seed",
    "limit",
    "data_dir",
    "grader_workers",
    "trust_remote_code",
)


def register(subparsers: Any) -> None:
    from ringrl.eval.config import EvalConfig

    p = subparsers.add_parser(
        "eval",
        help="benchmarks: avg@k pass@1 and pass@k, from a model or from given responses",
        description="Evaluate a model on benchmarks (avg@k pass@1, unbiased pass@k), or grade "
        "responses produced by another engine (--responses). Writes the results JSON and, beside "
        "it, one JSONL line per graded sample (results.samples.jsonl).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="DIR", help="Hugging Face causal LM directory to sample from")
    src.add_argument(
        "--responses",
        metavar="FILE.jsonl",
        help='grade these responses instead: rows {"id", "response"}; several rows per id are several samples',
    )
    p.add_argument(
        "--benchmarks",
        action="append",
        required=True,
        metavar="LIST",
        help="comma-separated, repeatable: gsm8k, math500, aime2024, aime2025, humaneval, mbpp, "
        "synthetic-<domain>, or NAME=PATH for your own rows",
    )
    p.add_argument("--samples", type=int, help="samples per problem, k of avg@k (default 1)")
    p.add_argument("--temperature", type=float, help="sampling temperature, 0 = greedy (default 1.0)")
    p.add_argument("--top-p", dest="top_p", type=float, help="nucleus threshold (default 0.95)")
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, help="default 32768, capped by the context")
    p.add_argument("--limit", type=int, help="only the first N problems of each benchmark")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="prompts per generation call (default 8)")
    p.add_argument("--seed", type=int, help="sampling seed (default 0)")
    p.add_argument(
        "--data-dir", dest="data_dir", help="folder of benchmark files (default: shared/data beside the project)"
    )
    p.add_argument("--grader-workers", dest="grader_workers", type=int, help="grading processes")
    p.add_argument(
        "--tokenizer", metavar="DIR", help="with --responses: count response lengths in this tokenizer's tokens"
    )
    p.add_argument("--device", help="torch device for --model (default: the loader's choice)")
    p.add_argument(
        "--trust-remote-code",
        dest="trust_remote_code",
        action="store_const",
        const=True,
        help="run Python code shipped in the --model directory (config.json 'auto_map'); only for models you trust",
    )
    p.add_argument(
        "--output", default="eval_results.json", metavar="FILE.json", help="results JSON (default %(default)s)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(p, EvalConfig)
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Any:
    from ringrl.eval.config import EvalConfig

    data: dict[str, Any] = read_yaml(args.config) if args.config else {}
    flags = {k: getattr(args, k) for k in _FLAG_FIELDS if getattr(args, k) is not None}
    data = merge(merge(data, flags), parse_overrides(split_overrides(args)))
    cfg = from_dict(EvalConfig, data)
    validate_all(cfg)
    return cfg


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ringrl.eval import format_table, run_eval, run_responses, samples_path
    from ringrl.utils.io import check_output_file

    cfg = _config(args)
    check_output_file(args.output)
    check_output_file(samples_path(args.output))
    progress = not args.no_progress and sys.stderr.isatty()
    from ringrl.eval.benchmarks import parse_benchmark_list

    benchmarks = parse_benchmark_list(args.benchmarks)

    def warn(message: str) -> None:
        print(f"ringrl eval: warning: {message}", file=sys.stderr)

    if args.responses:
        tokenizer = None
        if args.tokenizer:
            from transformers import AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
            except (OSError, ValueError) as e:
                raise UserError(f"{args.tokenizer}: cannot load a tokenizer ({str(e).splitlines()[0]})") from None
        results = run_responses(
            args.responses, benchmarks, cfg, tokenizer=tokenizer, output=args.output, progress=progress, warn=warn
        )
    else:
        if args.tokenizer:
            raise UserError("--tokenizer is for --responses; with --model the model's tokenizer is used")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the weight-loading bar would interleave with ours
        results = run_eval(args.model, benchmarks, cfg, output=args.output, progress=progress, device=args.device)
    Console().print(format_table(results))
    print(f"results: {args.output}\nsamples: {samples_path(args.output)}")
    return 0
