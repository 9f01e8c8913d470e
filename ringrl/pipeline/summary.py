"""The closing table of a pipeline run: SFT checkpoints, the choice, RL reward, evaluation."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_summary(result: dict[str, Any], seconds: float) -> None:
    console = Console()
    table = Table(title=f"pipeline summary ({seconds / 60:.1f} min)")
    for col in ("stage", "kind", "result", "time"):
        table.add_column(col)
    for s in result["stages"]:
        table.add_row(s["name"], s["kind"], describe(s), f"{s.get('seconds', 0):.0f}s")
    console.print(table)


def describe(s: dict[str, Any]) -> str:
    kind = s["kind"]
    if kind == "sft":
        parts = [f"ep{c['epoch']}: H={c['entropy']:.2f} acc={c['accuracy']:.2f}" for c in s.get("checkpoints", [])]
        return "; ".join(parts) + f" ({s.get('tokens_seen', 0):,} tokens)"
    if kind == "select":
        sel = s.get("selection", {})
        return f"{sel.get('chosen')} (entropy {sel.get('entropy', 0):.3f}, band {sel.get('band')}, in band: {sel.get('in_band')})"
    if kind == "rl":
        return (
            f"{s.get('algo')}: reward {s.get('reward_first', 0):.3f} -> {s.get('reward_last', 0):.3f} "
            f"over {s.get('steps')} steps, {s.get('rl_tokens', 0):,} tokens"
        )
    if kind == "eval":
        rows = []
        for model, res in (s.get("eval") or {}).items():
            scores = ", ".join(f"{b} {100 * e.get('pass_at_1', 0):.1f}" for b, e in res.items())
            rows.append(f"{model}: {scores}")
        return "\n".join(rows)
    if kind == "report":
        return str(s.get("report"))
    return ""
