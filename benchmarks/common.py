"""Small helpers shared by the benchmarks in this folder (not part of the ringrl package).

Run a benchmark from the repository root (``python benchmarks/NAME.py``); the folder is
put on ``sys.path`` by Python itself, so ``import common`` works from there.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation: population standard deviation / mean (0.0 for a constant series)."""
    vals = [float(v) for v in values]
    if not vals:
        return float("nan")
    mean = statistics.fmean(vals)
    if mean == 0:
        return 0.0 if all(v == 0 for v in vals) else float("inf")
    return statistics.pstdev(vals) / abs(mean)


def machine_line() -> str:
    """One line naming the machine: platform, CPUs, Python, torch, threads and the load average."""
    import torch

    try:
        load = "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "load average n/a"
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), {load}"
    )


def code_version() -> str:
    """The ringrl commit measured, and whether ringrl/ had uncommitted changes (the tree may be shared)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "ringrl"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    n = sum(1 for line in dirty if line.strip())
    return f"{head or 'unknown'}" + (f" + {n} uncommitted file(s) under ringrl/" if n else " (ringrl/ clean)")


def header(title: str) -> None:
    print(f"# {title}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine_line()}")
    print(f"code: {code_version()}")


def geomean(values: Sequence[float]) -> float:
    import math

    vals = [v for v in values if v > 0]
    return math.exp(statistics.fmean(math.log(v) for v in vals)) if vals else float("nan")
