"""The mutation score per module from mutmut's cached results (run benchmarks/mutation.sh first).

killed = killed + timeout (+ caught by the type checker); the score is killed over the
non-equivalent mutants: every checked mutant minus those listed as equivalent in
docs/testing.md (lines ``- `NAME`: why``). Mutants with no covering test count as survivors.

A listed name is taken as equivalent only if that mutant was checked and survived. Mutant
names carry a number that shifts when a function changes, so a stale list could otherwise
hide a real survivor: a listed name that was killed (it counts as killed) or that mutmut no
longer has prints a warning line on stderr.
Exit status 1 when a module scores below ``--min`` (default 90).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILLED = {"killed", "timeout", "caught by type check"}
NAME = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")
MODULES = (
    "ringrl.algorithms",
    "ringrl.rewards.grading",
    "ringrl.rewards.extract",
    "ringrl.eval.metrics",
    "ringrl.curate",
)


def equivalent_mutants(doc: Path = ROOT / "docs" / "testing.md") -> set[str]:
    return set(re.findall(r"^- `(\S+__mutmut_\d+)`:", doc.read_text(), flags=re.M)) if doc.is_file() else set()


def module_of(name: str) -> str:
    return next((m for m in MODULES if name.startswith(m + ".")), name.rsplit(".", 1)[0])


def tally(statuses: dict[str, str], listed: set[str]) -> tuple[dict[str, Counter[str]], list[str], list[str]]:
    """Per-module counts (killed, survived, equivalent, not checked), the surviving
    non-equivalent mutants and the warnings about listed names, from mutmut's ``name: status``."""
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    warnings = [
        f"{name} is listed as equivalent in docs/testing.md but mutmut has no such mutant (renumbered?)"
        for name in sorted(listed - statuses.keys())
    ]
    for name, status in statuses.items():
        mod = module_of(name)
        if status == "not checked":
            stats[mod]["not checked"] += 1
        elif status in KILLED:
            stats[mod]["killed"] += 1
            if name in listed:
                warnings.append(f"{name} is listed as equivalent in docs/testing.md but was {status} (renumbered?)")
        elif name in listed:
            stats[mod]["equivalent"] += 1
        else:
            stats[mod]["survived"] += 1
            survivors.append(f"{name}: {status}")
    return stats, survivors, warnings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min", type=float, default=90.0, help="lowest acceptable score in percent")
    ap.add_argument("--survivors", action="store_true", help="list the surviving non-equivalent mutants")
    args = ap.parse_args()
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = equivalent_mutants()
    statuses = dict(m.groups() for line in out.splitlines() if (m := NAME.match(line)))
    stats, survivors, warnings = tally(statuses, listed)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    low = False
    print(f"{'module':28} {'mutants':>7} {'killed':>7} {'survived':>8} {'equiv.':>6} {'unchecked':>9} {'score':>7}")
    for mod in sorted(stats):
        c = stats[mod]
        live = c["killed"] + c["survived"]
        score = 100.0 * c["killed"] / live if live else float("nan")
        low |= live > 0 and score < args.min
        total = live + c["equivalent"] + c["not checked"]
        print(
            f"{mod:28} {total:7} {c['killed']:7} {c['survived']:8} {c['equivalent']:6} {c['not checked']:9} {score:6.1f}%"
        )
    if args.survivors:
        print("\n".join(survivors))
    return 1 if low else 0


if __name__ == "__main__":
    raise SystemExit(main())
