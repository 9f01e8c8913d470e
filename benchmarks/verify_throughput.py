"""Throughput of the reward layer on this machine (a benchmark, not a test).

Measures, with one RewardPool (workers = CPU count unless --workers):
- math grades/s: (a) answers that need Math-Verify (``0.5`` vs ``1/2`` and similar),
  all distinct; (b) a mix (half identical strings, a quarter Math-Verify, a quarter no
  box); (c) RL groups (16 samples per prompt, 3 distinct Math-Verify answers per group:
  the pool's verdict cache grades each distinct answer once);
- sandboxed code executions/s: trivial correct programs in unit-test mode, and
  stdin/stdout tasks (one execution per test case, 4 cases per row);
- per-call latency (median, p99) of single-item score() calls;
- a baseline measured in the same run: an unsandboxed ``python -c`` subprocess per
  execution, run with the same parallelism; ratios are sandboxed / baseline.

Usage: python benchmarks/verify_throughput.py [--workers N] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ringrl.rewards import RewardPool
from ringrl.rewards.sandbox import namespaces_available, sandbox_python

MV_PAIRS = [
    ("1/2", "0.5"),
    ("\\frac{3}{4}", "0.75"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("(1,2)", "(1, 2)"),
    ("x^2+2x+1", "(x+1)^2"),
    ("7", "8"),
    ("\\pi/2", "\\frac{\\pi}{2}"),
    ("10", "10.0"),
]


def math_rows(kind: str, n: int, salt: int = 0) -> tuple[list[dict], list[str]]:
    """``salt`` shifts every number so that no measurement hits the pool's verdict cache."""
    rows, resps = [], []
    for i in range(salt * 1_000_000, salt * 1_000_000 + n):
        if kind == "groups":  # an RL step: 16 samples per prompt, 3 distinct final answers per group
            q = i // 16
            g, p = MV_PAIRS[q % len(MV_PAIRS)]
            rows.append({"domain": "math", "answer": f"{g}+{q}"})
            resps.append(f"... \\boxed{{{p}+{q}}}" if i % 3 == 0 else f"... \\boxed{{{p}+{q + i % 3}}}")
            continue
        if kind == "mathverify" or i % 4 == 2:
            g, p = MV_PAIRS[i % len(MV_PAIRS)]
            # vary the gold so the per-process parse cache does not make it trivially fast
            rows.append({"domain": "math", "answer": f"{g}+{i}"})
            resps.append(f"Some reasoning... \\boxed{{{p}+{i}}}")
        elif i % 4 == 3:
            rows.append({"domain": "math", "answer": str(i)})
            resps.append("I could not finish the computation.")
        else:
            rows.append({"domain": "math", "answer": str(i)})
            resps.append(f"Step by step ... so the answer is \\boxed{{{i}}}.")
    return rows, resps


def code_rows(kind: str, n: int) -> tuple[list[dict], list[str]]:
    if kind == "unit":
        row = {"domain": "code", "test_code": "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"}
        resp = "```python\ndef add(a, b):\n    return a + b\n```"
    else:
        row = {"domain": "code", "tests": [{"input": f"{k}\n", "output": f"{k * k}\n"} for k in range(4)]}
        resp = "```python\nx = int(input())\nprint(x * x)\n```"
    return [row] * n, [resp] * n


def timed(pool: RewardPool, rows: list[dict], resps: list[str]) -> tuple[float, list]:
    t = time.perf_counter()
    v = pool.score(rows, resps)
    return time.perf_counter() - t, v


def latency(pool: RewardPool, rows: list[dict], resps: list[str]) -> tuple[float, float]:
    lat = []
    for r, s in zip(rows, resps):
        t = time.perf_counter()
        pool.score([r], [s])
        lat.append(time.perf_counter() - t)
    lat.sort()
    return statistics.median(lat) * 1e3, lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3


def baseline(n: int, workers: int, python: str) -> float:
    """Unsandboxed: one ``python -c`` subprocess per execution, ``workers`` at a time."""
    code = "def add(a, b):\n    return a + b\nassert add(1, 2) == 3\n"

    def one(_: int) -> None:
        subprocess.run([python, "-c", code], check=True)

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, range(n)))
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--n", type=int, default=2000, help="math items per measurement")
    ap.add_argument("--code-n", type=int, default=600, help="code rows per measurement")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count() or 1
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"workers={workers}; namespaces={namespaces_available()}; sandbox python={sandbox_python()}"
    )
    with RewardPool(workers=workers) as pool:
        # warm up: start graders and zygotes
        pool.score(*math_rows("mix", 8, salt=9))
        pool.score(*code_rows("unit", 4))
        res = {}
        for salt, kind in enumerate(("mathverify", "mix", "groups"), start=1):
            rows, resps = math_rows(kind, args.n, salt)
            dt, v = timed(pool, rows, resps)
            res[f"math_{kind}"] = args.n / dt
            ok = sum(x.status in ("correct", "wrong", "no_answer") for x in v)
            print(f"math grades/s ({kind:10s}): {args.n / dt:8.1f}  ({ok}/{args.n} graded without error)")
        for kind in ("unit", "stdio"):
            rows, resps = code_rows(kind, args.code_n)
            dt, v = timed(pool, rows, resps)
            runs = args.code_n * (1 if kind == "unit" else 4)
            ok = sum(x.status == "correct" for x in v)
            res[f"code_{kind}"] = runs / dt
            print(
                f"code executions/s ({kind:5s}): {runs / dt:8.1f}  ({args.code_n / dt:.1f} rows/s; {ok}/{args.code_n} correct)"
            )
        m_med, m_p99 = latency(pool, *math_rows("mathverify", 200, salt=7))
        u_med, u_p99 = latency(pool, *code_rows("unit", 200))
        s_med, s_p99 = latency(pool, *code_rows("stdio", 100))
    print(f"latency math (Math-Verify) single call: median {m_med:.2f} ms, p99 {m_p99:.2f} ms")
    print(f"latency code unit single call:        median {u_med:.2f} ms, p99 {u_p99:.2f} ms")
    print(f"latency code stdio (4 cases) call:    median {s_med:.2f} ms, p99 {s_p99:.2f} ms")
    base = baseline(min(300, args.code_n), workers, sandbox_python())
    print(f"baseline unsandboxed `python -c` subprocess: {base:.1f} executions/s (same {workers}-way parallelism)")
    print(f"ratio sandboxed/baseline: unit {res['code_unit'] / base:.1f}x, stdio {res['code_stdio'] / base:.1f}x")
    print(
        f"per core: unit {res['code_unit'] / (os.cpu_count() or 1):.1f} executions/s/core "
        f"(the paper's cluster: about 8,000 executions/s in total)"
    )


if __name__ == "__main__":
    sys.exit(main())
