"""Choosing the SFT checkpoint that RL starts from, by policy entropy (the Ring-lite paper, stage 2).

Rule (the paper's): among checkpoints whose entropy lies in the band [low, high], take
the most-trained one (largest ``tokens_seen``; ties broken by the later epoch). If none
is in band, take the checkpoint closest to the band (distance to the nearer edge; ties
broken by more training) and say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAPER_BAND = (0.3, 0.5)


@dataclass(frozen=True)
class Selection:
    chosen: dict[str, Any]
    in_band: bool
    band: tuple[float, float]
    reason: str


def band_distance(entropy: float, low: float, high: float) -> float:
    """0 inside the band, else the distance to its nearer edge."""
    return max(low - entropy, entropy - high, 0.0)


def select_checkpoint(checkpoints: list[dict[str, Any]], low: float, high: float) -> Selection:
    """Apply the rule to checkpoint records with ``entropy``, ``tokens_seen`` and ``epoch``."""
    if not checkpoints:
        raise ValueError("no checkpoints to choose from")
    if low > high:
        raise ValueError(f"band low {low} is above high {high}")

    def trained(c: dict[str, Any]) -> tuple[float, float]:
        return (c.get("tokens_seen", 0), c.get("epoch", 0))

    in_band = [c for c in checkpoints if low <= c["entropy"] <= high]
    if in_band:
        best = max(in_band, key=trained)
        return Selection(
            best, True, (low, high), f"most-trained of {len(in_band)} checkpoint(s) with entropy in [{low}, {high}]"
        )
    best = min(checkpoints, key=lambda c: (band_distance(c["entropy"], low, high), -trained(c)[0], -trained(c)[1]))
    d = band_distance(best["entropy"], low, high)
    return Selection(
        best,
        False,
        (low, high),
        f"no checkpoint has entropy in [{low}, {high}]; closest is {best['entropy']:.3f} ({d:.3f} outside the band)",
    )
