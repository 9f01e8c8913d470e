"""Config of ``ringrl sft`` (paper settings: AdamW wd 0.1, lr 3e-4, cosine, 1% warm-up, 3 epochs)."""

from __future__ import annotations

from dataclasses import dataclass

from ringrl.common_config import ModelConfig, OptimConfig, ParallelConfig, validate_parallel, validate_task_mix
from ringrl.config import doc
from ringrl.errors import ConfigError
from ringrl.utils.metrics import LoggerConfig


@dataclass(frozen=True)
class SFTDataConfig:
    """Training rows: a file of SFT rows, or the embedded synthetic tasks."""

    train: str | None = doc(
        "JSONL/Parquet/`datasets` folder of rows with prompt and response; null: embedded tasks", None
    )
    eval: str | None = doc(
        "held-out rows (prompt, domain, answer) for entropy and accuracy; null: embedded test split", None
    )
    tasks: list[str] = doc("embedded task domains used when train is null", default_factory=lambda: ["math", "logic"])
    train_size: int = doc("embedded training rows (shared across tasks by weights)", 6000)
    levels: list[int] | dict[str, list[int]] | None = doc(
        "embedded difficulty levels: one list for every task, or {task: [levels]} (null or a task left out: every level)",
        None,
    )
    eval_size: int = doc("held-out problems scored at each checkpoint", 96)
    max_length: int = doc("longest prompt+response in tokens; longer rows are skipped and counted", 1024)
    max_row_bytes: int = doc(
        "largest row of a data file in bytes: a larger one is an error, found before any tokenising",
        8 * 1024 * 1024,
        ge=1,
    )
    weights: dict[str, float] | None = doc(
        "embedded rows per task in proportion, e.g. {math: 4} (a task left out: 1; null: even split)", None
    )
    seed: int = doc("seed of the embedded data", 0)

    def validate(self) -> None:
        if self.train_size < 1:
            raise ConfigError("data.train_size", "must be >= 1")
        validate_task_mix(self.tasks, self.levels, self.weights)
        if self.eval_size < 1:
            raise ConfigError("data.eval_size", "must be >= 1")
        if self.max_length < 8:
            raise ConfigError("data.max_length", "must be >= 8")


@dataclass(frozen=True)
class EntropyEvalConfig:
    """How each checkpoint's entropy and accuracy are measured."""

    temperature: float = doc("sampling temperature of the policy's own responses (paper: 1.0)", 1.0)
    samples: int = doc("responses per held-out prompt", 1)
    max_new_tokens: int = doc("longest response sampled", 512)
    batch_size: int = doc("sequences per generate call", 96)

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError("entropy.temperature", "must be > 0 (entropy is measured on sampled responses)")
        if self.samples < 1:
            raise ConfigError("entropy.samples", "must be >= 1")
        if self.max_new_tokens < 1:
            raise ConfigError("entropy.max_new_tokens", "must be >= 1")
        if self.batch_size < 1:
            raise ConfigError("entropy.batch_size", "must be >= 1")


@dataclass(frozen=True)
class SFTConfig:
    model: ModelConfig = doc("model to fine-tune", default_factory=ModelConfig)
    data: SFTDataConfig = doc("training and held-out rows", default_factory=SFTDataConfig)
    optim: OptimConfig = doc("optimizer and schedule", default_factory=OptimConfig)
    entropy: EntropyEvalConfig = doc("entropy/accuracy measured at every checkpoint", default_factory=EntropyEvalConfig)
    out: str = doc("run directory", "runs/sft")
    epochs: int = doc("passes over the training rows; a checkpoint at the end of each", 3)
    save_every: int = doc("also checkpoint every N optimizer steps, for resume (0: only at the end of each epoch)", 0)
    keep_checkpoints: int = doc("periodic step-N checkpoints kept (every epoch checkpoint is kept)", 2)
    resume: bool = doc("continue the run in the run directory from its latest intact checkpoint", False)
    overwrite: bool = doc("replace a finished run (or a run of another kind) in the run directory", False)
    max_nonfinite: int = doc("stop the run after this many skipped updates with a non-finite loss or gradient", 3)
    batch_tokens: int = doc("padded tokens per micro-batch (length-bucketed batches)", 8192)
    grad_accum: int = doc("micro-batches per optimizer step", 1)
    alpha_balance: float = doc("MoE load-balance coefficient (Eq. 5); 0 turns it off", 1e-5)
    alpha_zloss: float = doc("router z-loss coefficient (Eq. 6); 0 turns it off", 1e-7)
    seed: int = doc("seed of initialisation, batch order and sampling", 0)
    threads: int = doc("torch CPU threads (0: torch's default)", 0)
    tensorboard: bool = doc("write TensorBoard events under RUN_DIR/tb", True)
    logger: LoggerConfig = doc("Weights & Biases logging", default_factory=LoggerConfig)
    parallel: ParallelConfig = doc(
        "data parallelism under torchrun: ddp or fsdp (docs/scale.md)", default_factory=ParallelConfig
    )
    progress: bool = doc("show a progress bar", True)

    def validate(self) -> None:
        validate_parallel(self.parallel, self.model)
        if self.epochs < 1:
            raise ConfigError("epochs", "must be >= 1")
        if self.batch_tokens < 16:
            raise ConfigError("batch_tokens", "must be >= 16")
        if self.grad_accum < 1:
            raise ConfigError("grad_accum", "must be >= 1")
        if self.save_every < 0:
            raise ConfigError("save_every", "must be >= 0")
        if self.keep_checkpoints < 1:
            raise ConfigError("keep_checkpoints", "must be >= 1")
        if self.max_nonfinite < 1:
            raise ConfigError("max_nonfinite", "must be >= 1")
        if self.alpha_balance < 0 or self.alpha_zloss < 0:
            raise ConfigError("alpha_balance" if self.alpha_balance < 0 else "alpha_zloss", "must be >= 0")
