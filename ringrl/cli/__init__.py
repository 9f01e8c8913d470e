"""The ``ringrl`` command line: one entry point, a module per sub-command.

Each module in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its parser
and sets ``func`` to a callable taking the parsed arguments and returning an exit code.
A :class:`~ringrl.errors.UserError` anywhere becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ringrl import __version__
from ringrl.errors import UserError

# the commands that run data parallel under torchrun (ringrl.distributed); the others refuse to
DATA_PARALLEL = ("sft", "rl", "pipeline")

# sub-command name -> module under ringrl.cli (imported lazily: `ringrl --help` stays fast)
COMMANDS: dict[str, str] = {
    "quickstart": "quickstart",
    "pipeline": "pipeline",
    "sft": "sft",
    "select-checkpoint": "select",
    "rl": "rl",
    "verify": "verify",
    "eval": "eval",
    "curate": "curate",
    "report": "report",
    "experiment": "experiment",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ringrl",
        description="The Ring-lite training recipe: long-CoT SFT, entropy-based checkpoint "
        "selection, two-stage RL with C3PO, verifiable rewards, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"ringrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(f"ringrl.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name == f"ringrl.cli.{module}":
                continue  # command not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow an option (``pipeline my.yaml --out X rl.steps=10``): argparse
    # fills a positional list once, so the ones after the option come back here
    if extra and isinstance(getattr(args, "overrides", None), list) and all("=" in x and x[0] != "-" for x in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command not in DATA_PARALLEL:
        print(
            f"ringrl {args.command}: error: runs on one process; under torchrun only {', '.join(DATA_PARALLEL)}",
            file=sys.stderr,
        )
        return 2
    code: int | None = 1
    try:
        code = args.func(args)
    except UserError as e:
        print(f"ringrl {args.command}: error: {e}", file=sys.stderr)
        code = e.exit_code
        return code
    except KeyboardInterrupt:
        print(f"ringrl {args.command}: interrupted", file=sys.stderr)
        code = 130
        return code
    finally:
        if "torch.distributed" in sys.modules:  # leave torchrun's process group, if this process joined it
            from ringrl.distributed import close_distributed

            close_distributed(clean=code in (0, None))
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
