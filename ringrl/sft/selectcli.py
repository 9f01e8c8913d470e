"""Table printing and ``selection.json`` for ``ringrl select-checkpoint``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ringrl.errors import UserError
from ringrl.sft.select import Selection, select_checkpoint
from ringrl.utils.io import read_json, write_json


def print_checkpoints(checkpoints: list[dict[str, Any]], chosen: str | None) -> None:
    table = Table(title="SFT checkpoints")
    for col in ("epoch", "tokens_seen", "entropy", "accuracy", "chosen"):
        table.add_column(col, justify="right")
    for c in checkpoints:
        table.add_row(
            str(c.get("epoch")),
            f"{c.get('tokens_seen', 0):,}",
            f"{c['entropy']:.3f}",
            f"{c.get('accuracy', float('nan')):.3f}",
            "<-" if c.get("name") == chosen else "",
        )
    Console().print(table)


def select_run(run_dir: Path, low: float, high: float) -> tuple[Selection, dict[str, Any]]:
    """Read RUN_DIR/summary.json, apply the rule, write RUN_DIR/selection.json."""
    summary_path = Path(run_dir) / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{summary_path}: not found (is {run_dir} an SFT run directory?)")
    summary = read_json(summary_path)
    ckpts = summary.get("checkpoints") or []
    for i, c in enumerate(ckpts):
        if not isinstance(c, dict) or not isinstance(c.get("entropy"), (int, float)):
            raise UserError(f"{summary_path}: checkpoints[{i}] has no numeric 'entropy'")
    if not ckpts:
        raise UserError(f"{summary_path}: no checkpoints recorded")
    if low > high:
        raise UserError(f"--band: LOW {low} is above HIGH {high}")
    sel = select_checkpoint(ckpts, low, high)
    record = selection_record(run_dir, sel.chosen, list(sel.band), sel.in_band, sel.reason)
    write_json(Path(run_dir) / "selection.json", record)
    return sel, record


def selection_record(
    run_dir: Path, chosen: dict[str, Any], band: list[float] | None, in_band: bool | None, reason: str
) -> dict[str, Any]:
    """The ``selection.json`` record naming ``chosen`` (a checkpoint of RUN_DIR/summary.json)."""
    return {
        "chosen": chosen["name"],
        "path": str((Path(run_dir) / chosen["path"]).resolve()),
        "entropy": chosen["entropy"],
        "tokens_seen": chosen.get("tokens_seen"),
        "epoch": chosen.get("epoch"),
        "band": band,
        "in_band": in_band,
        "reason": reason,
    }
