"""Benchmark metrics: avg@k pass@1, the unbiased pass@k estimator, a per-benchmark summary.

Pure functions on counts and graded samples; no model, no grader, no I/O.

* **avg@k pass@1** (the paper's Table 1 metric, e.g. "AIME@32"): for each problem the
  fraction of its n samples that are correct, averaged over problems.
* **pass@k** (Chen et al., 2021, "Evaluating Large Language Models Trained on Code",
  eq. 1): with n samples of which c are correct, the probability that at least one of
  k samples drawn without replacement is correct, ``1 - C(n-c, k) / C(n, k)``, averaged
  over problems. Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``, which never forms
  the (huge) binomials and is exact to float rounding.
* **k values reported**: the powers of two below the smallest per-problem sample count
  ``n_min``, plus ``n_min`` itself (e.g. n=32 gives k = 1, 2, 4, 8, 16, 32; n=5 gives
  1, 2, 4, 5). Every problem has at least ``n_min`` samples, so each pass@k is an
  average over all problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021, eq. 1).

    ``n`` samples, ``c`` of them correct, ``1 <= k <= n``. Evaluated as the product
    ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` so that large n never overflows.
    """
    if not (0 <= c <= n):
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not (1 <= k <= n):
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def report_ks(n_min: int) -> list[int]:
    """The k values reported for pass@k: powers of two below ``n_min``, then ``n_min``."""
    if n_min < 1:
        return []
    ks, k = [], 1
    while k < n_min:
        ks.append(k)
        k *= 2
    ks.append(n_min)
    return ks


@dataclass(frozen=True)
class SampleRecord:
    """One graded sample: what the per-sample JSONL holds, one line each."""

    benchmark: str
    id: str
    sample: int  # index of this sample among the problem's samples, from 0
    response: str
    reward: float
    status: str  # grader status: correct, wrong, no_answer, timeout, error, ...
    length: int  # response length in ``length_unit`` of the benchmark result
    detail: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchmarkResult:
    """Metrics of one benchmark; :meth:`to_dict` is its entry in the results JSON."""

    name: str
    problems: int  # problems scored (those with at least one sample)
    samples: int  # samples scored in total
    samples_per_problem: int  # smallest per-problem sample count (n_min; pass@k uses k <= n_min)
    pass_at_1: float  # avg@k pass@1: mean over problems of the fraction of correct samples
    pass_at_k: dict[int, float]  # unbiased pass@k for k in report_ks(samples_per_problem)
    mean_reward: float  # mean grader reward over all samples
    mean_length: float  # mean response length over all samples
    length_unit: str  # "tokens" when a tokenizer measured lengths, else "characters"
    no_answer_fraction: float  # fraction of samples the grader found no final answer in
    status_counts: dict[str, int] = field(default_factory=dict)  # samples per grader status
    unknown_ids: int = 0  # response rows whose id is not in the benchmark (responses mode)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pass_at_k"] = {str(k): v for k, v in self.pass_at_k.items()}
        return d


def summarize(name: str, records: Sequence[SampleRecord], length_unit: str, unknown_ids: int = 0) -> BenchmarkResult:
    """Metrics of one benchmark from its graded samples (any order, grouped here by id)."""
    by_id: dict[str, list[SampleRecord]] = {}
    for r in records:
        by_id.setdefault(r.id, []).append(r)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    if not by_id:
        return BenchmarkResult(name, 0, 0, 0, 0.0, {}, 0.0, 0.0, length_unit, 0.0, counts, unknown_ids)
    nc = [(len(rs), sum(r.correct for r in rs)) for rs in by_id.values()]
    n_min = min(n for n, _ in nc)
    p = len(nc)
    total = len(records)
    return BenchmarkResult(
        name=name,
        problems=p,
        samples=total,
        samples_per_problem=n_min,
        pass_at_1=sum(c / n for n, c in nc) / p,
        pass_at_k={k: sum(pass_at_k(n, c, k) for n, c in nc) / p for k in report_ks(n_min)},
        mean_reward=sum(r.reward for r in records) / total,
        mean_length=sum(r.length for r in records) / total,
        length_unit=length_unit,
        no_answer_fraction=counts.get("no_answer", 0) / total,
        status_counts=dict(sorted(counts.items())),
        unknown_ids=unknown_ids,
    )
