"""Evaluation: grade responses, summarise per benchmark, generate with a model, write results.

Two entry points, both usable as a library:

* :func:`evaluate_responses` grades given responses of one benchmark and returns its
  metrics as a dict (no model, no files). :func:`score_benchmark` is the same with typed
  results and the per-sample records.
* :func:`run_eval` generates ``samples`` responses per problem with a model (or any
  :class:`~ringrl.eval.generate.Generator`), grades them and returns the results dict
  keyed by benchmark name; :func:`run_responses` does the same for a responses file.

The grader is anything with ``score(rows, responses) -> verdicts`` where each verdict has
``reward``, ``status`` and ``detail`` (``ringrl.rewards.RewardPool``). A sample counts as
correct when its status is ``"correct"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ringrl.data.prompts import render_prompt
from ringrl.errors import DataError, UserError
from ringrl.eval.benchmarks import Benchmark, load_benchmark
from ringrl.eval.config import EvalConfig
from ringrl.eval.generate import Generator, TransformersGenerator, load_model, response_text, response_tokens
from ringrl.eval.metrics import BenchmarkResult, SampleRecord, summarize
from ringrl.rewards.sandbox import require_isolation
from ringrl.utils.io import iter_jsonl, write_json, write_jsonl

Row = dict[str, Any]
GRADE_CHUNK = 64  # samples per grader call (the progress bar advances per chunk)


class Grader(Protocol):
    """Scores responses against rows; verdicts have ``reward``, ``status``, ``detail``."""

    def score(self, rows: list[Row], responses: list[str]) -> Sequence[Any]: ...


@dataclass(frozen=True)
class BenchmarkEval:
    """A scored benchmark: its metrics and every graded sample."""

    result: BenchmarkResult
    records: list[SampleRecord]


# --------------------------------------------------------------------------- grading


def score_benchmark(
    rows: Sequence[Row],
    responses_by_id: Mapping[str, Sequence[Any]],
    grader: Grader,
    *,
    name: str = "benchmark",
    tokenizer: Any = None,
    on_graded: Callable[[int], None] | None = None,
) -> BenchmarkEval:
    """Grade every response of the rows that have some; typed metrics and per-sample records.

    ``responses_by_id`` maps a row ``id`` to its samples (strings, or generator outputs with
    ``text`` and optionally ``token_ids``). Rows without responses are not scored; ids
    that match no row are counted in ``unknown_ids``. Lengths are tokens when every
    sample carries ``token_ids`` or a ``tokenizer`` is given, else characters.
    """
    by_id = {r["id"]: r for r in rows}
    unknown = sum(1 for i in responses_by_id if i not in by_id)
    flat: list[tuple[Row, int, Any]] = [(r, j, s) for r in rows for j, s in enumerate(responses_by_id.get(r["id"], ()))]
    all_tokens = bool(flat) and all(response_tokens(s) is not None for _, _, s in flat)
    unit = "tokens" if all_tokens or tokenizer is not None else "characters"

    def length(s: Any) -> int:
        n = response_tokens(s)
        if n is not None and unit == "tokens":
            return n
        text = response_text(s)
        if tokenizer is not None:
            return len(tokenizer.encode(text, add_special_tokens=False))
        return len(text)

    records: list[SampleRecord] = []
    for start in range(0, len(flat), GRADE_CHUNK):
        chunk = flat[start : start + GRADE_CHUNK]
        texts = [response_text(s) for _, _, s in chunk]
        verdicts = grader.score([r for r, _, _ in chunk], texts)
        if len(verdicts) != len(chunk):
            raise RuntimeError(f"grader returned {len(verdicts)} verdicts for {len(chunk)} responses")
        for (row, j, s), text, v in zip(chunk, texts, verdicts):
            records.append(
                SampleRecord(
                    benchmark=name,
                    id=row["id"],
                    sample=j,
                    response=text,
                    reward=float(v.reward),
                    status=str(v.status),
                    length=length(s),
                    detail=str(getattr(v, "detail", "") or ""),
                )
            )
        if on_graded is not None:
            on_graded(len(chunk))
    return BenchmarkEval(summarize(name, records, unit, unknown_ids=unknown), records)


def evaluate_responses(
    rows: Sequence[Row],
    responses_by_id: Mapping[str, Sequence[Any]],
    grader: Grader,
    *,
    name: str = "benchmark",
    tokenizer: Any = None,
) -> dict[str, Any]:
    """Metrics of one benchmark from given responses, as the results JSON entry (a dict).

    Keys: ``problems``, ``samples``, ``samples_per_problem``, ``pass_at_1`` (avg@k),
    ``pass_at_k`` (``{"1": ..., "2": ..., ...}``), ``mean_reward``, ``mean_length``,
    ``length_unit``, ``no_answer_fraction``, ``status_counts``, ``unknown_ids``.
    """
    return score_benchmark(rows, responses_by_id, grader, name=name, tokenizer=tokenizer).result.to_dict()


# --------------------------------------------------------------------------- progress


class _Progress:
    """A rich progress bar on stderr, or nothing when disabled."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )

    @contextlib.contextmanager
    def running(self) -> Iterator[_Progress]:
        if self.bar is None:
            yield self
            return
        with self.bar:
            yield self

    def task(self, description: str, total: int) -> Callable[[int], None]:
        if self.bar is None:
            return lambda _n: None
        bar = self.bar
        tid = bar.add_task(description, total=total)
        return lambda n: bar.advance(tid, n)


# --------------------------------------------------------------------------- model mode


def generate_responses(
    benchmark: Benchmark,
    engine: Generator,
    tokenizer: Any,
    cfg: EvalConfig,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, list[Any]]:
    """``cfg.samples`` responses per problem, in batches of ``cfg.batch_size`` prompts."""
    out: dict[str, list[Any]] = {}
    rows = benchmark.rows
    for start in range(0, len(rows), cfg.batch_size):
        batch = rows[start : start + cfg.batch_size]
        prompts = [render_prompt(tokenizer, r) for r in batch]
        groups = engine.generate(
            prompts,
            cfg.samples,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens,
            seed=cfg.seed + start,
        )
        if len(groups) != len(batch):
            raise RuntimeError(f"generator returned {len(groups)} groups for {len(batch)} prompts")
        for row, group in zip(batch, groups):
            out[row["id"]] = list(group)
        if on_batch is not None:
            on_batch(len(batch))
    return out


def _config(cfg: EvalConfig | None, overrides: Mapping[str, Any]) -> EvalConfig:
    cfg = dataclasses.replace(cfg or EvalConfig(), **overrides)
    cfg.validate()
    return cfg


def _default_grader(cfg: EvalConfig) -> contextlib.AbstractContextManager[Grader]:
    from ringrl.rewards import RewardPool

    return RewardPool(workers=cfg.grader_workers, timeout=cfg.grader_timeout, code_timeout=cfg.code_timeout)


def _entry(ev: BenchmarkEval, bench: Benchmark, settings: dict[str, Any]) -> dict[str, Any]:
    return {**ev.result.to_dict(), "source": bench.source, "settings": settings}


def run_eval(
    model_dir: str | Path | None,
    benchmarks: Sequence[str],
    cfg: EvalConfig | None = None,
    *,
    engine: Generator | None = None,
    tokenizer: Any = None,
    grader: Grader | None = None,
    output: str | Path | None = None,
    progress: bool = False,
    device: str | None = None,
    **overrides: Any,
) -> dict[str, dict[str, Any]]:
    """Generate and grade; the results dict keyed by benchmark name.

    ``benchmarks`` are names (``gsm8k``), ``synthetic-<domain>`` or ``NAME=PATH``.
    Sampling settings come from ``cfg`` and keyword ``overrides`` of its fields
    (``run_eval("ckpt", ["math500"], samples=4, max_new_tokens=2048)``). With ``engine``
    (any Generator) and ``tokenizer`` (to render prompts), ``model_dir`` may be None.
    ``grader`` defaults to a ``ringrl.rewards.RewardPool``. With ``output``, writes the
    results JSON there and the graded samples to :func:`samples_path` of it.
    """
    cfg = _config(cfg, overrides)
    loaded = [load_benchmark(b, cfg.data_dir, cfg.limit) for b in benchmarks]  # bad names fail before loading
    if engine is None:
        if model_dir is None:
            raise UserError("run_eval needs a model directory or an engine")
        model, tok = load_model(model_dir, device=device, trust_remote_code=cfg.trust_remote_code)
        tokenizer = tokenizer or tok
        engine = TransformersGenerator(model, tokenizer)
    if tokenizer is None:
        tokenizer = getattr(engine, "tokenizer", None)
        if tokenizer is None:
            raise UserError("run_eval with an engine needs its tokenizer (to render prompts)")
    if grader is None:
        require_isolation([r for b in loaded for r in b.rows], "code benchmarks")
    settings = {
        "mode": "model",
        "model": None if model_dir is None else str(model_dir),
        **{k: getattr(cfg, k) for k in ("samples", "temperature", "top_p", "max_new_tokens", "seed")},
    }
    results: dict[str, dict[str, Any]] = {}
    records: list[SampleRecord] = []
    with contextlib.ExitStack() as stack:
        if grader is None:
            grader = stack.enter_context(_default_grader(cfg))
        bars = stack.enter_context(_Progress(progress).running())
        for bench in loaded:
            gen_tick = bars.task(f"{bench.name}: generating", len(bench.rows))
            responses = generate_responses(bench, engine, tokenizer, cfg, gen_tick)
            grade_tick = bars.task(f"{bench.name}: grading", len(bench.rows) * cfg.samples)
            ev = score_benchmark(bench.rows, responses, grader, name=bench.name, on_graded=grade_tick)
            results[bench.name] = _entry(ev, bench, settings)
            records.extend(ev.records)
    if output is not None:
        write_results(output, results, records)
    return results


# --------------------------------------------------------------------------- responses mode


@dataclass(frozen=True)
class ResponsesFile:
    """A responses file grouped by id (file order kept): ``{"id", "response"}`` rows."""

    path: str
    by_id: dict[str, list[str]]
    rows: int


def read_responses(path: str | Path) -> ResponsesFile:
    """Read ``{"id", "response"}`` rows; several rows per id are several samples."""
    p = Path(path)
    by_id: dict[str, list[str]] = {}
    n = 0
    for lineno, row in iter_jsonl(p):
        if "id" not in row:
            raise DataError(str(p), lineno, "id", "missing (each row needs 'id' and 'response')")
        if not isinstance(row.get("response"), str):
            what = "missing" if "response" not in row else "must be a string"
            raise DataError(str(p), lineno, "response", f"{what} (each row needs 'id' and 'response')")
        by_id.setdefault(str(row["id"]), []).append(row["response"])
        n += 1
    if n == 0:
        raise UserError(f"{p}: no responses (the file is empty)")
    return ResponsesFile(str(p), by_id, n)


def run_responses(
    responses: str | Path | ResponsesFile,
    benchmarks: Sequence[str],
    cfg: EvalConfig | None = None,
    *,
    grader: Grader | None = None,
    tokenizer: Any = None,
    output: str | Path | None = None,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
    **overrides: Any,
) -> dict[str, dict[str, Any]]:
    """Grade a responses file against benchmarks; the results dict keyed by benchmark name.

    Only problems with responses are scored (``cfg.limit``: the first N of those, in
    benchmark order). Response ids found in none of the benchmarks are counted in each
    entry's ``unknown_ids`` and reported through ``warn``. A benchmark with no matching
    id is left out with a warning; when none matches, a UserError.
    """
    cfg = _config(cfg, overrides)
    loaded = [load_benchmark(b, cfg.data_dir, None) for b in benchmarks]
    resp = responses if isinstance(responses, ResponsesFile) else read_responses(responses)
    warn = warn or (lambda _m: None)
    known = {i for b in loaded for i in b.ids()}
    unknown = [i for i in resp.by_id if i not in known]
    if unknown:
        rows_unknown = sum(len(resp.by_id[i]) for i in unknown)
        examples = ", ".join(repr(i) for i in unknown[:3])
        warn(
            f"{len(unknown)} response id(s) ({rows_unknown} rows) are in none of "
            f"{', '.join(b.name for b in loaded)} and were not scored (e.g. {examples})"
        )
    settings = {"mode": "responses", "responses": resp.path}
    results: dict[str, dict[str, Any]] = {}
    records: list[SampleRecord] = []
    with contextlib.ExitStack() as stack:
        present: list[tuple[Benchmark, list[Row]]] = []
        for bench in loaded:
            rows = [r for r in bench.rows if r["id"] in resp.by_id][: cfg.limit]
            if not rows:
                warn(f"{bench.name}: no responses for any of its {len(bench.rows)} problems; left out")
                continue
            present.append((bench, rows))
        if not present:
            raise UserError(f"{resp.path}: no response id matches a problem of {', '.join(b.name for b in loaded)}")
        if grader is None:
            require_isolation([r for _, rows in present for r in rows], "code benchmarks")
            grader = stack.enter_context(_default_grader(cfg))
        bars = stack.enter_context(_Progress(progress).running())
        for bench, rows in present:
            total = sum(len(resp.by_id[r["id"]]) for r in rows)
            tick = bars.task(f"{bench.name}: grading", total)
            ev = score_benchmark(rows, resp.by_id, grader, name=bench.name, tokenizer=tokenizer, on_graded=tick)
            entry = _entry(ev, bench, settings)
            entry["unknown_ids"] = len(unknown)  # ids in none of the benchmarks, not just this one
            results[bench.name] = entry
            records.extend(ev.records)
    if output is not None:
        write_results(output, results, records)
    return results


# --------------------------------------------------------------------------- output


def samples_path(output: str | Path) -> Path:
    """Where the per-sample JSONL goes: ``results.json`` -> ``results.samples.jsonl``."""
    p = Path(output)
    return p.with_name(p.stem + ".samples.jsonl")


def write_results(output: str | Path, results: dict[str, dict[str, Any]], records: Sequence[SampleRecord]) -> None:
    """Write the results JSON and, beside it, one JSONL line per graded sample."""
    write_json(Path(output), results)
    write_jsonl(samples_path(output), [r.to_dict() for r in records])


def format_table(results: Mapping[str, Mapping[str, Any]]) -> Any:
    """A rich Table of the results: percentages as in the paper's Table 1.

    ``k`` is the samples per problem; ``pass@k`` is the unbiased estimate at that k.
    """
    from rich.table import Table

    table = Table(title="ringrl eval (%)")
    for col in ("benchmark", "problems", "k", "pass@1", "pass@k", "length", "no answer"):
        table.add_column(col, justify="left" if col == "benchmark" else "right", no_wrap=True)
    for name, r in results.items():
        ks = r["pass_at_k"]
        kmax = max(ks, key=int) if ks else None
        unit = "tok" if r["length_unit"] == "tokens" else "chr"
        table.add_row(
            name,
            str(r["problems"]),
            str(r["samples_per_problem"]),
            f"{100 * r['pass_at_1']:.2f}",
            f"{100 * ks[kmax]:.2f}" if kmax else "-",
            f"{r['mean_length']:.0f} {unit}",
            f"{100 * r['no_answer_fraction']:.1f}",
        )
    return table
