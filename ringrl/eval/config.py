"""Evaluation settings: sampling (the paper's defaults), batching, grading."""

from __future__ import annotations

from dataclasses import dataclass

from ringrl.config import doc
from ringrl.errors import ConfigError


@dataclass(frozen=True)
class EvalConfig:
    """Settings of ``ringrl eval`` and :func:`ringrl.eval.run_eval` (defaults: the Ring-lite paper's evaluation settings)."""

    samples: int = doc("samples per problem (k of avg@k; AIME@32 means 32)", 1)
    temperature: float = doc("sampling temperature; 0 means greedy", 1.0)
    top_p: float = doc("nucleus sampling threshold", 0.95)
    max_new_tokens: int = doc("most generated tokens per response (capped by the model's context)", 32768)
    batch_size: int = doc("prompts per generation call (each gives `samples` responses)", 8)
    seed: int = doc("sampling seed; batch b is seeded with seed + index of its first prompt", 0)
    limit: int | None = doc("score only the first N problems of each benchmark", None)
    data_dir: str | None = doc("folder of benchmark files; default: shared/data beside the project", None)
    grader_workers: int | None = doc("grading processes; default: the reward pool's choice", None)
    grader_timeout: float = doc("seconds per math verification", 5.0)
    code_timeout: float = doc("seconds per code test run", 10.0)
    trust_remote_code: bool = doc(
        "run Python code shipped in the model directory (config.json 'auto_map'); only for models you trust", False
    )

    def validate(self) -> None:
        if self.samples < 1:
            raise ConfigError("samples", f"must be at least 1, got {self.samples}")
        if self.temperature < 0:
            raise ConfigError("temperature", f"must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p", f"must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens", f"must be at least 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit", f"must be at least 1, got {self.limit}")
        if self.grader_workers is not None and self.grader_workers < 1:
            raise ConfigError("grader_workers", f"must be at least 1, got {self.grader_workers}")
        if self.grader_timeout <= 0 or self.code_timeout <= 0:
            raise ConfigError("grader_timeout", "timeouts must be positive")
