"""Evaluation on benchmarks: avg@k pass@1 and unbiased pass@k, from a model or from given responses.

Library use::

    from ringrl.eval import run_eval, run_responses, evaluate_responses
    results = run_eval("runs/rl/checkpoints/final", ["math500", "aime2024"], samples=4)
    entry = evaluate_responses(rows, {"id-1": ["... \\boxed{3}"]}, grader)

See docs/eval.md for the metrics, the prompt format and the data-directory lookup.
"""

from ringrl.eval.benchmarks import BENCHMARKS, Benchmark, known_names, load_benchmark, resolve_data_dir
from ringrl.eval.config import EvalConfig
from ringrl.eval.generate import Generated, Generator, TransformersGenerator, load_model
from ringrl.eval.metrics import BenchmarkResult, SampleRecord, pass_at_k, report_ks, summarize
from ringrl.eval.runner import (
    BenchmarkEval,
    Grader,
    evaluate_responses,
    format_table,
    read_responses,
    run_eval,
    run_responses,
    samples_path,
    score_benchmark,
    write_results,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkEval",
    "BenchmarkResult",
    "EvalConfig",
    "Generated",
    "Generator",
    "Grader",
    "SampleRecord",
    "TransformersGenerator",
    "evaluate_responses",
    "format_table",
    "known_names",
    "load_benchmark",
    "load_model",
    "pass_at_k",
    "read_responses",
    "report_ks",
    "resolve_data_dir",
    "run_eval",
    "run_responses",
    "samples_path",
    "score_benchmark",
    "summarize",
    "write_results",
]
