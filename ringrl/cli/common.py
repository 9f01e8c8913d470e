"""Shared argparse pieces: ``--config``, dotted overrides, config-field listings."""

from __future__ import annotations

import argparse
from typing import Any

from ringrl.config import describe


def add_config_args(parser: argparse.ArgumentParser, cfg_cls: type | None = None) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML config file (fields below)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides of any config field, e.g. optim.lr=1e-4",
    )
    if cfg_cls is not None:
        rows = describe(cfg_cls)
        width = max(len(k) for k, _, _ in rows)
        listing = "\n".join(f"  {k:<{width}}  {d}  (default {v})" for k, v, d in rows)
        parser.epilog = (parser.epilog or "") + "config fields:\n" + listing
        parser.formatter_class = argparse.RawDescriptionHelpFormatter


def split_overrides(args: Any) -> list[str]:
    return list(getattr(args, "overrides", None) or [])
