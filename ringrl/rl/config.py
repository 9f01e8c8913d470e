"""Config of ``ringrl rl``. Defaults: the Ring-lite paper's RL settings where the paper gives them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ringrl.algorithms.config import FormerConfig
from ringrl.common_config import ModelConfig, OptimConfig, validate_task_mix
from ringrl.config import doc
from ringrl.errors import ConfigError
from ringrl.models.tiny import TinyModelConfig


@dataclass(frozen=True)
class RLDataConfig:
    """RL prompts: a file of rows with verifier fields, or the embedded tasks."""

    train: str | None = doc(
        "JSONL/Parquet/`datasets` folder of rows (prompt, domain, answer/tests); null: embedded tasks", None
    )
    tasks: list[str] = doc("embedded task domains used when train is null", default_factory=lambda: ["math"])
    train_size: int = doc("embedded training prompts (shared across tasks by weights)", 4000)
    levels: list[int] | dict[str, list[int]] | None = doc(
        "embedded difficulty levels: one list for every task, or {task: [levels]} (null or a task left out: every level)",
        None,
    )
    weights: dict[str, float] | None = doc(
        "embedded rows per task in proportion, e.g. {math: 4} (a task left out: 1; null: even split)", None
    )
    max_row_bytes: int = doc(
        "largest row of a data file in bytes: a larger one is an error, found before any tokenising",
        8 * 1024 * 1024,
        ge=1,
    )
    seed: int = doc("seed of the embedded data and of the prompt order", 0)

    def validate(self) -> None:
        if self.train_size < 1:
            raise ConfigError("data.train_size", "must be >= 1")
        validate_task_mix(self.tasks, self.levels, self.weights)


@dataclass(frozen=True)
class RolloutConfig:
    prompts_per_step: int = doc("L: prompts per step (paper 512)", 16)
    samples_per_prompt: int = doc("K: responses per prompt (paper 16); at least 2 for group advantages", 8)
    temperature: float = doc("sampling temperature (paper 1.0)", 1.0)
    top_p: float = doc("nucleus sampling threshold", 1.0)
    max_new_tokens: int = doc("longest response (paper 24576 in stage 1, 32768 in stage 2)", 512)
    batch_size: int = doc("sequences per generate call", 128)

    def validate(self) -> None:
        if self.prompts_per_step < 1:
            raise ConfigError("rollout.prompts_per_step", "must be >= 1")
        if self.samples_per_prompt < 2:
            raise ConfigError(
                "rollout.samples_per_prompt", f"K must be >= 2 for group advantages, got {self.samples_per_prompt}"
            )
        if not self.temperature > 0:
            raise ConfigError("rollout.temperature", "must be > 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError("rollout.top_p", "must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ConfigError("rollout.max_new_tokens", "must be >= 1")


@dataclass(frozen=True)
class LossConfig:
    eps_low: float = doc("PPO clip lower epsilon: ratio >= 1 - eps_low (paper 0.2)", 0.2)
    eps_high: float = doc("PPO clip upper epsilon: ratio <= 1 + eps_high (paper 0.2; DAPO clip-higher 0.28)", 0.2)
    beta: float = doc(
        "token-level KL (k3) coefficient to the reference (paper 1e-3); 0 skips the reference model", 1e-3
    )
    alpha_entropy: float = doc("entropy bonus coefficient, rewards exploration (paper 5e-4)", 5e-4)
    alpha_balance: float = doc("MoE load-balance coefficient (Eq. 5; paper 1e-5)", 1e-5)
    alpha_zloss: float = doc("router z-loss coefficient (Eq. 6; paper 1e-7)", 1e-7)
    adv_eps: float = doc("epsilon in (R - mean) / (std + eps)", 1e-6)

    def validate(self) -> None:
        if not 0 <= self.eps_low < 1:
            raise ConfigError("loss.eps_low", f"must be in [0, 1), got {self.eps_low}")
        if not 0 <= self.eps_high <= 10:
            raise ConfigError("loss.eps_high", f"must be in [0, 10], got {self.eps_high}")
        for key in ("beta", "alpha_entropy", "alpha_balance", "alpha_zloss"):
            if getattr(self, key) < 0:
                raise ConfigError(f"loss.{key}", "must be >= 0")


@dataclass(frozen=True)
class RLModelConfig(ModelConfig):
    """The policy RL starts from: a model directory (RL does not build the embedded model)."""

    path: str | None = doc(
        "local HF causal LM directory to start from (required; e.g. the checkpoint select-checkpoint chose)", None
    )
    tiny: TinyModelConfig = doc("not used by rl (the embedded model is built by sft)", default_factory=TinyModelConfig)


def _rl_optim() -> OptimConfig:
    return OptimConfig(lr=3e-6, weight_decay=0.0, warmup_ratio=0.05, schedule="constant")


@dataclass(frozen=True)
class RLConfig:
    model: RLModelConfig = doc(
        "policy to start from (model.path: e.g. the checkpoint select-checkpoint chose)", default_factory=RLModelConfig
    )
    ref_model: str | None = doc(
        "reference model directory for the KL term; null: a frozen copy of the initial policy", None
    )
    algo: Literal["c3po", "grpo", "dapo"] = doc(
        "batch former: c3po (token budget), grpo (per-response mean), dapo (token-mean + dynamic sampling)", "c3po"
    )
    former: FormerConfig = doc("batch former settings (C3PO budget Phi, leftovers)", default_factory=FormerConfig)
    rollout: RolloutConfig = doc("sampling", default_factory=RolloutConfig)
    loss: LossConfig = doc("loss terms (Eq. 2, 4, 5, 6)", default_factory=LossConfig)
    optim: OptimConfig = doc("optimizer (paper: lr 3e-6, constant after warm-up)", default_factory=_rl_optim)
    data: RLDataConfig = doc("prompts", default_factory=RLDataConfig)
    steps: int = doc("optimizer steps", 50)
    micro_batch_tokens: int = doc(
        "tokens per micro-batch in the loss pass (padded count, or the packed row's length)", 16384
    )
    pack_sequences: bool = doc(
        "pack each micro-batch's sequences end to end in one row (no padding, so C3PO's loss pass costs exactly its "
        "Phi trained tokens plus prompts); attention then spans the packed row, so keep micro_batch_tokens a few "
        "times the longest sequence",
        False,
    )
    ppo_epochs: int = doc("passes over each step's batch (1 = on-policy)", 1)
    mini_batches: int = doc("optimizer steps per pass (the formed batch split in token-balanced parts)", 1)
    c3po_fill: Literal["sample_more", "train_fewer"] = doc(
        "C3PO when a step's pool has fewer than Phi tokens: sample more prompts (up to max_fill_rounds), or train on fewer",
        "sample_more",
    )
    max_fill_rounds: int = doc(
        "extra rollout rounds allowed per step to fill the C3PO budget or DAPO's informative groups", 2
    )
    max_nonfinite: int = doc("stop the run after this many skipped updates with a non-finite loss or gradient", 3)
    save_every: int = doc("checkpoint every N steps (0: only at the end)", 0)
    keep_checkpoints: int = doc("periodic checkpoints kept (the final one is always kept)", 2)
    resume: bool = doc("continue the run in the run directory from its latest intact checkpoint", False)
    overwrite: bool = doc("replace a finished run (or a run of another kind) in the run directory", False)
    out: str = doc("run directory", "runs/rl")
    seed: int = doc("seed of sampling, batch forming and the prompt order", 0)
    threads: int = doc("torch CPU threads (0: torch's default)", 0)
    reward_workers: int = doc("verifier worker processes (0: sized to the machine)", 0)
    tensorboard: bool = doc("write TensorBoard events under RUN_DIR/tb", True)
    progress: bool = doc("show a progress bar", True)
    expert_load_per_layer: bool = doc("log moe/load/layer{i}/expert{j} every step", True)

    def validate(self) -> None:
        if self.steps < 1:
            raise ConfigError("steps", "must be >= 1")
        if self.algo == "c3po" and self.former.budget_tokens < self.rollout.max_new_tokens:
            raise ConfigError(
                "former.budget_tokens",
                f"budget Phi={self.former.budget_tokens} is smaller than one response's "
                f"maximum length (rollout.max_new_tokens={self.rollout.max_new_tokens})",
            )
        if self.ppo_epochs < 1 or self.mini_batches < 1:
            raise ConfigError("ppo_epochs" if self.ppo_epochs < 1 else "mini_batches", "must be >= 1")
        if self.micro_batch_tokens < 16:
            raise ConfigError("micro_batch_tokens", "must be >= 16")
        if self.max_nonfinite < 1:
            raise ConfigError("max_nonfinite", "must be >= 1")
        if self.max_fill_rounds < 0:
            raise ConfigError("max_fill_rounds", "must be >= 0")
