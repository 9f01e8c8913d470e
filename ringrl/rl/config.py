"""Config of ``ringrl rl``. Defaults: the Ring-lite paper's RL settings where the paper gives them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ringrl.algorithms.config import FormerConfig
from ringrl.common_config import ModelConfig, OptimConfig, ParallelConfig, validate_parallel, validate_task_mix
from ringrl.config import doc
from ringrl.errors import ConfigError
from ringrl.models.tiny import TinyModelConfig
from ringrl.monitor import MonitorConfig
from ringrl.utils.metrics import LoggerConfig


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
    top_k: int = doc("sample among the k most likely tokens only (0: off, as in the paper)", 0)
    max_new_tokens: int = doc("longest response (paper 24576 in stage 1, 32768 in stage 2)", 512)
    batch_size: int = doc("sequences decoded together by the rollout engine (prompts x K per chunk)", 128)
    routing_replay: bool = doc(
        "MoE routing replay (R3): the policy, pi_old and reference passes route each token to the experts the "
        "rollout chose, gate weights recomputed from the current router (docs/routing.md)",
        False,
    )

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
        if self.top_k < 0:
            raise ConfigError("rollout.top_k", f"must be >= 0 (0: off), got {self.top_k}")


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
    correction: Literal["none", "tis", "icepop"] = doc(
        "train-inference correction with k = pi_old_train / pi_engine per token: none; tis (loss x min(k, high)); "
        "icepop (token kept only when low <= k <= high)",
        "none",
    )
    correction_low: float | None = doc("icepop's lower bound on k (null: 0.5; unused by tis)", None)
    correction_high: float | None = doc("upper bound on k (null: 2.0 under tis, 5.0 under icepop)", None)

    def correction_bounds(self) -> tuple[float | None, float | None]:
        """``(low, high)`` of ``correction``: the keys where set, else the mode's defaults."""
        from ringrl.algorithms.correction import DEFAULT_BOUNDS

        d_low, d_high = DEFAULT_BOUNDS[self.correction]
        return (
            d_low if self.correction_low is None else self.correction_low,
            d_high if self.correction_high is None else self.correction_high,
        )

    def validate(self) -> None:
        if not 0 <= self.eps_low < 1:
            raise ConfigError("loss.eps_low", f"must be in [0, 1), got {self.eps_low}")
        if not 0 <= self.eps_high <= 10:
            raise ConfigError("loss.eps_high", f"must be in [0, 10], got {self.eps_high}")
        for key in ("beta", "alpha_entropy", "alpha_balance", "alpha_zloss"):
            if getattr(self, key) < 0:
                raise ConfigError(f"loss.{key}", "must be >= 0")
        if self.correction not in ("none", "tis", "icepop"):
            raise ConfigError("loss.correction", f"must be none, tis or icepop, got {self.correction!r}")
        for key in ("correction_low", "correction_high"):
            v = getattr(self, key)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ConfigError(f"loss.{key}", f"must be a finite number > 0, got {v}")
        if self.correction == "tis" and self.correction_low is not None:
            raise ConfigError("loss.correction_low", "is icepop's lower bound; tis truncates from above only")
        low, high = self.correction_bounds()
        if low is not None and high is not None and not low < high:
            raise ConfigError("loss.correction_low", f"must be < loss.correction_high, got {low} >= {high}")


@dataclass(frozen=True)
class RewardConfig:
    """Rewards: the built-in verifier of each row's domain, or reward functions from files."""

    function: str | list[str] | None = doc(
        "reward function FILE.py:NAME (or a list of them), called as NAME(prompt, response, row) -> float in the reward workers "
        "(or NAME(prompts, responses, rows) -> list of floats once per chunk when NAME.batched is True), "
        "replacing the built-in verifiers (null: the verifier of each row's domain)",
        None,
    )
    weights: list[float] | None = doc("weights of the reward functions' sum (null: 1 each)", None)
    timeout: float = doc("hard time limit per scored response in seconds (a slower one scores 0, status timeout)", 5.0)

    def validate(self) -> None:
        import math

        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError("reward.timeout", f"must be a finite number > 0, got {self.timeout}")
        if self.weights is not None and self.function is None:
            raise ConfigError("reward.weights", "needs reward.function")
        if self.function is not None:
            from ringrl.rewards.custom import check_functions

            if not self.function:
                raise ConfigError("reward.function", "is empty (null: the built-in verifiers)")
            check_functions(self.functions(), self.weights)

    def functions(self) -> list[str]:
        """``function`` as a list (empty: the built-in verifiers)."""
        if self.function is None:
            return []
        return [self.function] if isinstance(self.function, str) else list(self.function)


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
    max_fill_rounds: int = doc(
        "extra rollout rounds allowed per step to fill the C3PO budget or DAPO's informative groups", 2
    )
    monitor: MonitorConfig = doc(
        "stability monitor: alerts for entropy collapse, gradient spikes, reward collapse, KL blow-up, lengths at "
        "the cap, skipped updates; optionally stop (exit 3) or roll back",
        default_factory=MonitorConfig,
    )
    max_nonfinite: int = doc("stop the run after this many skipped updates with a non-finite loss or gradient", 3)
    save_every: int = doc("checkpoint every N steps (0: only at the end)", 0)
    keep_checkpoints: int = doc("periodic checkpoints kept (the final one is always kept)", 2)
    resume: bool = doc("continue the run in the run directory from its latest intact checkpoint", False)
    overwrite: bool = doc("replace a finished run (or a run of another kind) in the run directory", False)
    out: str = doc("run directory", "runs/rl")
    seed: int = doc("seed of sampling, batch forming and the prompt order", 0)
    threads: int = doc("torch CPU threads (0: torch's default)", 0)
    reward: RewardConfig = doc(
        "reward functions (default: the built-in verifier per domain)", default_factory=RewardConfig
    )
    reward_workers: int = doc("verifier worker processes (0: sized to the machine)", 0)
    tensorboard: bool = doc("write TensorBoard events under RUN_DIR/tb", True)
    logger: LoggerConfig = doc("Weights & Biases logging", default_factory=LoggerConfig)
    parallel: ParallelConfig = doc(
        "data parallelism under torchrun: ddp or fsdp (docs/scale.md)", default_factory=ParallelConfig
    )
    progress: bool = doc("show a progress bar", True)
    expert_load_per_layer: bool = doc("log moe/load/layer{i}/expert{j} every step", True)

    def validate(self) -> None:
        validate_parallel(self.parallel, self.model)
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
