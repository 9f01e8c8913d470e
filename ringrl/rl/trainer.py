"""``ringrl rl``: the RL loop. One step reads top to bottom in :meth:`RLTrainer.step`:

    rollout -> reward -> (refill) -> advantages -> batch former -> loss pass -> optimizer -> log

The trainer knows no algorithm: advantages, batch forming (C3PO's budget), losses and
MoE terms are the pure functions of :mod:`ringrl.algorithms`, picked by ``algo``.

Defaults and policies (see docs/rl.md):
- old log-probs are the trainer's own forward pass under the pre-update weights (as in
  verl). With one PPO epoch and one mini-batch the loss pass *is* that forward pass, so
  its detached log-probs serve as pi_old; otherwise a no-grad pass computes them first.
  The engine's log-probs are compared with pi_old (``train/logprob_mismatch``) and feed
  the optional train-inference correction (``loss.correction``: TIS, IcePop).
- Step metrics aggregate every loss pass of the step (``ppo_epochs`` x ``mini_batches``),
  token-weighted; ``train/grad_norm`` is the mean of its optimizer steps' norms.
- Refill: between rollout rounds the former's refill policy (``FILL_POLICIES``, next to
  each former) says how many more prompts to sample, for at most ``max_fill_rounds``
  extra rounds: C3PO (``former.fill: sample_more``) until the pool holds Phi tokens (what
  is still missing is trained with the constant 1/Phi and logged as
  ``train/shortfall_tokens``), DAPO dynamic sampling until L groups are informative.
- A non-finite loss or gradient skips the update and is logged; after
  ``max_nonfinite`` skips the run stops. No checkpoint is written with non-finite weights.
- Under ``torchrun`` (:mod:`ringrl.distributed`) every rank draws the same prompts and
  generates its slice of them; the scored groups are gathered so every rank forms the
  same batch (C3PO: the same Phi tokens), trains its token-balanced part of it through
  DDP, and rank 0 alone writes the run directory.
"""

from __future__ import annotations

import copy
import functools
import os
import random
import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from ringrl.algorithms import assign_advantages, get_batch_former, get_fill_policy
from ringrl.algorithms.types import FormedBatch, Sample, SelectedSample
from ringrl.common_config import make_optimizer, optimizer_step, schedule_step
from ringrl.config import save_config, to_dict
from ringrl.distributed import barrier, broadcast_object, check_before_save, init_distributed, wrap_model
from ringrl.errors import UserError
from ringrl.fsdp import gathered, shard_model, stage_for_save
from ringrl.models.forward import compute_autocast, compute_dtype, set_compute
from ringrl.models.loading import is_moe, load_for_training, load_policy, moe_top_k, resolve_save_dtype
from ringrl.models.lora import AdapterDisabled, describe_trainable, is_lora, trainable_fraction
from ringrl.monitor import Alert, MonitorStop, StabilityMonitor, alert_metrics
from ringrl.rewards.sandbox import require_isolation
from ringrl.rl.config import RLConfig
from ringrl.rl.data import PromptStream, load_rl_rows
from ringrl.rl.rollout import RolloutResult, collect_groups, gather_rollouts, merge
from ringrl.rl.state import (
    TrainerState,
    apply_resume_blob,
    prune_checkpoints,
    read_resume_blob,
    save_rl_checkpoint,
)
from ringrl.rl.update import (
    build_micro_batches,
    combine_step_metrics,
    rank_gradients,
    sequence_logprobs,
    split_mini_batches,
)
from ringrl.rollout import HFEngine
from ringrl.utils.checkpoint import apply_weights, quiet_transformers, read_weights, seed_everything, set_threads
from ringrl.utils.io import read_json, write_json
from ringrl.utils.metrics import MetricsLogger
from ringrl.utils.progress import Progress
from ringrl.utils.rundir import RunDir, note, open_run_dir, resume_from, truncate_metrics


class NonFiniteStop(UserError):
    """Too many non-finite updates: the run stops (its last good checkpoint stays)."""


class RLTrainer:
    def __init__(self, cfg: RLConfig, score=None, engine=None):
        self._own_pool: Any = None
        self.rundir: RunDir | None = None
        if cfg.model.path is None:
            raise UserError(
                "config key 'model.path': RL starts from a model directory (e.g. the checkpoint select-checkpoint chose)"
            )
        quiet_transformers()
        set_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.dist, self.device = init_distributed(cfg.model.device, cfg.parallel.sharded, cfg.parallel.cpu_offload)
        # the run directory is locked (and checked: finished run, other kind) before any work
        self.rundir = open_run_dir(self.run_dir, "rl", cfg.resume, cfg.overwrite, self.dist)
        try:
            self._setup(score, engine)
        except BaseException:
            self.close()
            raise

    def _setup(self, score, engine) -> None:
        cfg = self.cfg
        assert cfg.model.path is not None  # checked in __init__
        # float32 master weights; cfg.model.dtype is the compute dtype (autocast)
        self.model, self.tokenizer = load_for_training(cfg.model, cfg.model.path, self.device)
        self.save_dtype = resolve_save_dtype(cfg.model.save_dtype, cfg.model.path)
        self.ref_model = self._load_reference() if cfg.loss.beta > 0 else None  # copied before any sharding
        # DDP: a wrapper (the model itself on one process); FSDP: the model, sharded in place
        self.train_model = wrap_model(self.model, self.dist, cfg.parallel, compute_dtype(self.model))
        if self.dist.is_main and cfg.rollout.prompts_per_step < self.dist.world_size:
            warnings.warn(
                f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} < {self.dist.world_size} ranks: "
                "some ranks sample nothing",
                stacklevel=2,
            )
        self.routed = _routed_moe(self.model, cfg.rollout.routing_replay)  # the engine records routing
        self.engine = engine or HFEngine(
            self.model, self.tokenizer, batch_size=cfg.rollout.batch_size, record_routing=self.routed
        )
        self.stream = PromptStream(
            load_rl_rows(cfg.data, custom_reward=bool(cfg.reward.functions())), seed=cfg.data.seed
        )
        self.former = get_batch_former(cfg.algo)
        self.fill = get_fill_policy(cfg.algo)  # the former's refill policy (C3PO budget, DAPO groups)
        self.optimizer, self.scheduler = make_optimizer(self.model, cfg.optim, cfg.steps)
        self.moe_top_k = moe_top_k(self.model) if is_moe(self.model) else None
        self.state = TrainerState(run_id=self.rundir.run_id if self.rundir else "")
        self.monitor = StabilityMonitor(cfg.monitor)
        if score is None:
            from ringrl.rewards import RewardPool

            workers = cfg.reward_workers or max(1, (os.cpu_count() or 1) // self.dist.local_world_size)
            reward_fn = None
            if not cfg.reward.functions():
                require_isolation(self.stream.rows, "RL data")
            if cfg.reward.functions():
                from ringrl.rewards.custom import FileReward

                reward_fn = FileReward.from_config(cfg.reward.functions(), cfg.reward.weights)
            self._own_pool = RewardPool(workers=workers, timeout=cfg.reward.timeout, reward_fn=reward_fn)
            # bound to the pool, not to self: a closure over self would make the trainer (and its DDP
            # model, which holds the process group) a reference cycle freed at an unknown later time
            score = functools.partial(_pool_rewards, self._own_pool)
        self.score = score

    def _load_reference(self):
        """A frozen reference held in the compute dtype (no master weights needed: it never changes)."""
        dtype = compute_dtype(self.model)
        if self.cfg.ref_model is None and is_lora(self.model):
            return AdapterDisabled(self.model)  # the base model: the policy with its adapters off, no copy
        if self.cfg.ref_model is None:
            ref = copy.deepcopy(self.model).to(dtype)
        else:
            ref, ref_tok = load_policy(
                self.cfg.ref_model, self.device, str(dtype).replace("torch.", ""), self.cfg.model.trust_remote_code
            )
            set_compute(ref, dtype, self.cfg.model.head_chunk_tokens)
            if ref_tok.get_vocab() != self.tokenizer.get_vocab():
                raise UserError(
                    f"config key 'ref_model': {self.cfg.ref_model} has a different tokenizer from the policy"
                )
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        par = self.cfg.parallel
        # resharding after forward whatever parallel.reshard_after_forward says: with no backward to come, a
        # layer left gathered would stay so for the whole run
        return shard_model(ref, dtype, True, par.cpu_offload, par.shard_size) if par.sharded else ref

    # ------------------------------------------------------------------ the step
    def step(self) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        t0 = time.perf_counter()
        ro = self._rollout()  # rollout + reward (+ refill)
        groups = assign_advantages(ro.groups, eps=cfg.loss.adv_eps)  # GRPO advantages on full groups
        batch = self.former(
            groups, st.carry, cfg.former, random.Random(cfg.seed * 7919 + st.step)
        )  # Eq. 1 / token-mean / Eq. 2-3
        batch = self._with_old_logprobs(batch)  # pi_old where the loss pass can't give it
        t1 = time.perf_counter()
        metrics, grad_norm, finite = self._train(batch)  # loss pass + optimizer step(s)
        t2 = time.perf_counter()
        st.carry = batch.leftover
        st.step += 1
        st.position = self.stream.position
        st.rl_tokens += batch.n_tokens if finite else 0
        st.nonfinite_skips += 0 if finite else 1
        return self._step_metrics(ro, batch, metrics, grad_norm, finite, t0, t1, t2)

    # ------------------------------------------------------------------ helpers
    def _rollout(self) -> RolloutResult:
        """L prompts x K responses, scored; more rounds while the former's refill policy asks for them."""
        cfg, st = self.cfg, self.state
        L = cfg.rollout.prompts_per_step
        results = [self._collect(L, 0)]
        for extra in range(1, cfg.max_fill_rounds + 1):
            more = self.fill.needs_more(merge(results).groups, st.carry, cfg.former, L)
            if more <= 0:
                break
            results.append(self._collect(more, extra))
        ro = merge(results)
        ro.groups = self.fill.keep(ro.groups, cfg.former, L)
        ro.extra_rounds = len(results) - 1
        return ro

    def _collect(self, n: int, round_: int) -> RolloutResult:
        """n prompts from the stream; under data parallelism each rank samples its slice and all get the whole."""
        rows = self.stream.take(n)
        rank, world = self.dist.rank, self.dist.world_size
        seed = ((self.cfg.seed * 1_000_003 + self.state.step) * 16 + round_) * world + rank
        tag = f"s{self.state.step}r{round_}" + (f"p{rank}" if world > 1 else "")
        # every rank together: under FSDP the weights are gathered once for the whole rollout
        with gathered(self.model), compute_autocast(self.model):  # sampled in the compute dtype too
            mine = collect_groups(
                self.engine, self.tokenizer, rows[rank::world], self.score, self.cfg.rollout, seed, tag
            )
        return gather_rollouts(mine, self.dist)

    def _with_old_logprobs(self, batch: FormedBatch) -> FormedBatch:
        """Store pi_old (the trainer's forward under the pre-update weights) where it is needed.

        On-policy (one PPO epoch, one mini-batch, no carried sample in the batch) the loss
        pass itself is that forward, so nothing is computed here. Otherwise every selected
        sample gets it (a carried sample keeps the one from its own step), and with
        ``leftover: carry`` so does every leftover, before this step's update changes the
        policy: a carried response is later trained against the policy that sampled it.
        """
        cfg = self.cfg
        mixed = any(s.sample.old_logprobs is not None for s in batch.selected)
        selected = batch.selected
        attach = cfg.ppo_epochs > 1 or cfg.mini_batches > 1 or mixed
        carry = cfg.former.leftover == "carry" and bool(batch.leftover)
        if not (attach or carry):
            return batch
        with gathered(self.model):  # every rank computes every sample's (the same batch everywhere)
            if attach:
                selected = [replace(s, sample=self._attach_old(s.sample)) for s in selected]
            leftover = [self._attach_old(s) for s in batch.leftover] if carry else batch.leftover
        return replace(batch, selected=selected, leftover=leftover)

    def _attach_old(self, sample: Sample) -> Sample:
        if sample.old_logprobs is not None:
            return sample
        whole = SelectedSample(sample, sample.n_response, 0.0)
        mb = build_micro_batches([whole], self.tokenizer.pad_token_id, 1 << 30)[0]
        lp = sequence_logprobs(self.model, mb, self.cfg.rollout.temperature, None, self.cfg.rollout.routing_replay)[0]
        p = len(sample.prompt_ids)
        return replace(sample, old_logprobs=lp[p - 1 : p - 1 + sample.n_response].tolist())

    def _train(self, batch: FormedBatch) -> tuple[dict[str, Any], float, bool]:
        """PPO epochs x mini-batches of optimizer steps; each a loss pass over token micro-batches."""
        cfg = self.cfg
        parts = split_mini_batches(batch.selected, cfg.mini_batches)
        passes: list[tuple[dict[str, Any], int]] = []
        norms, finite = [], True
        for _ in range(cfg.ppo_epochs):
            for part in parts:
                # the former's weights sum over the whole batch; each mini-batch step keeps that scale
                metrics = rank_gradients(
                    self.train_model,
                    self.ref_model,
                    part,
                    self.tokenizer.pad_token_id,
                    cfg.micro_batch_tokens,
                    cfg.loss,
                    cfg.rollout.temperature,
                    self.moe_top_k,
                    self.dist,
                    weight_scale=len(parts),
                    pack=cfg.pack_sequences,
                    replay_routing=cfg.rollout.routing_replay,
                )
                norm, ok = optimizer_step(self.model, self.optimizer, cfg.optim.grad_clip, metrics["train/loss"])
                norms.append(norm)
                finite = finite and ok
                passes.append((metrics, sum(s.n_tokens for s in part)))
        schedule_step(self.scheduler)  # the schedule counts RL steps (cfg.steps), not PPO epochs x mini-batches
        # every pass counts in the step's metrics (token-weighted); grad_norm: the mean over the optimizer steps
        return combine_step_metrics(passes), statistics.fmean(norms) if norms else 0.0, finite

    def _step_metrics(self, ro, batch, m, grad_norm, finite, t0, t1, t2) -> dict[str, Any]:
        t3 = time.perf_counter()
        lengths = ro.lengths or [0]
        out: dict[str, Any] = {
            "reward/mean": statistics.fmean(ro.rewards) if ro.rewards else 0.0,
            "reward/accuracy": sum(r >= 1.0 for r in ro.rewards) / max(1, len(ro.rewards)),
            "response_length/mean": statistics.fmean(lengths),
            "response_length/max": max(lengths),
            "response_length/std": statistics.pstdev(lengths),
            "response_length/truncated_fraction": sum(not s.finished for g in ro.groups for s in g.samples)
            / max(1, len(lengths)),
            "train/tokens": batch.n_tokens,
            "train/responses": len(batch.selected),
            "train/grad_norm": grad_norm,
            "train/lr": self.scheduler.get_last_lr()[0],
            "train/skipped_nonfinite": 0 if finite else 1,
            "rollout/responses": len(lengths),
            "rollout/extra_rounds": ro.extra_rounds,
            "time/rollout": ro.rollout_seconds,
            "time/reward": ro.reward_seconds,
            "time/train": t2 - t1,
            "time/step": t3 - t0,
            "throughput/tokens_per_s": (batch.n_tokens + ro.generated_tokens) / max(t3 - t0, 1e-9),
        }
        for k in (
            "train/entropy",
            "train/kl",
            "train/clip_fraction",
            "train/logprob_mismatch",
            "train/ratio",
            "train/loss",
            "train/correction_weight_mean",
            "train/correction_masked_fraction",
        ):
            out[k] = m.get(k, 0.0)
        for k in ("moe/balance_loss", "moe/z_loss", "moe/max_expert_load"):
            out[k] = m.get(k, 0.0)
        for k in ("moe/routing_agreement", "moe/router_agreement"):  # the engine recorded routing (supported MoE)
            if k in m:
                out[k] = m[k]
        load = m.get("_expert_load")
        if load is not None and self.cfg.expert_load_per_layer:
            for i, row in enumerate(load.tolist()):
                for j, v in enumerate(row):
                    out[f"moe/load/layer{i}/expert{j}"] = v
        for k, v in batch.stats.items():
            if k not in ("tokens", "responses"):
                out[f"batch/{k}"] = v
        out["train/shortfall_tokens"] = batch.stats.get("shortfall_tokens", 0)
        return out

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        if self.rundir is None:
            raise RuntimeError("RLTrainer.fit: the trainer was closed")
        try:
            return self._fit(self.rundir)
        finally:
            self.close()

    def _fit(self, rundir: RunDir) -> dict[str, Any]:
        cfg, main = self.cfg, self.dist.is_main
        resumed_from = self._maybe_resume(rundir)
        if main:
            save_config(cfg, self.run_dir / "config.yaml")
            if is_lora(self.model):
                note(describe_trainable(self.model))
        logger = MetricsLogger(
            self.run_dir,
            tensorboard=cfg.tensorboard,
            append=resumed_from is not None,
            t0=self.state.elapsed,
            write=main,
            wandb=cfg.logger,
            config=to_dict(cfg),
        )
        summary = None
        try:
            with Progress(cfg.steps, f"rl {cfg.algo}", enabled=cfg.progress and main) as bar:
                bar.update("", advance=self.state.step)
                if cfg.monitor.rollback and self._latest_checkpoint() is None:
                    self._save(f"step-{self.state.step}")  # somewhere to roll back to
                while self.state.step < cfg.steps:
                    m = self.step()
                    alerts = self._watch(m)
                    self.state.elapsed = logger.elapsed()
                    logger.log(self.state.step, m)
                    bar.update(
                        f"reward {m['reward/mean']:.3f} len {m['response_length/mean']:.0f} "
                        f"tokens {m['train/tokens']} {m['time/step']:.1f}s/step"
                    )
                    for a in alerts if main else []:  # rank 0 speaks for all (every rank has the same alerts)
                        bar.note(f"alert {a.name} at step {a.step}: {a.message}")
                    if alerts and self._act_on(alerts):
                        logger.reopen()  # the rollback truncated metrics.jsonl
                        continue  # rolled back: the steps after the checkpoint run again
                    if self.state.nonfinite_skips >= cfg.max_nonfinite:
                        raise NonFiniteStop(
                            f"{self.state.nonfinite_skips} updates skipped for a non-finite loss or gradient "
                            f"(max_nonfinite={cfg.max_nonfinite}); stopping at step {self.state.step}"
                        )
                    if cfg.save_every and self.state.step % cfg.save_every == 0 and self.state.step < cfg.steps:
                        self._save(f"step-{self.state.step}")
            self._save("final")
            summary = broadcast_object(self._write_summary(resumed_from) if main else None, self.dist)
            rundir.finish()
        finally:
            logger.close(summary)
        return summary

    def _save(self, name: str) -> None:
        """Rank 0 writes the checkpoint (the weights are the same on every rank); the others wait for it."""
        path = self.run_dir / "checkpoints" / name
        check_before_save(self.model, self.dist, path)
        staged = stage_for_save(self.model, self.optimizer, path, self.dist)  # FSDP only
        if self.dist.is_main:
            save_rl_checkpoint(
                self.run_dir,
                name,
                self.model,
                self.tokenizer,
                self.state,
                self.optimizer,
                self.scheduler,
                save_dtype=self.save_dtype,
                staged=staged,
            )
            if name != "final":
                prune_checkpoints(self.run_dir, self.cfg.keep_checkpoints)
        barrier(self.dist)

    def _maybe_resume(self, rundir: RunDir) -> str | None:
        """Continue this run from its newest intact checkpoint when ``resume=true`` found one."""
        if not rundir.resuming:
            return None
        ckpt = self._load_latest()
        return None if ckpt is None else str(ckpt)

    def _latest_checkpoint(self) -> Path | None:
        """This run's newest checkpoint as rank 0 sees it (trainer states read, nothing else)."""
        found = None
        if self.dist.is_main and self.rundir is not None:
            found = resume_from(self.run_dir, self.rundir.run_id, lambda d, state: None)
        path = broadcast_object(str(found[0]) if found else "", self.dist)
        return Path(path) if path else None

    def _load_latest(self) -> Path | None:
        """Rank 0 picks the newest intact checkpoint of this run (falling back past damaged ones);
        every rank loads that one (every rank must resume from the same step): the weights (float32
        masters, or a LoRA adapter), optimizer, schedule and trainer state. Metrics past it are
        dropped and the monitor is rebuilt from those that remain."""
        found = None
        if self.dist.is_main and self.rundir is not None:
            found = resume_from(self.run_dir, self.rundir.run_id, self._read_checkpoint)
        path = broadcast_object(str(found[0]) if found else "", self.dist)
        if not path:
            return None
        ckpt = Path(path)
        if found is None:
            if not ckpt.is_dir():
                raise UserError(
                    f"resume: {ckpt} (rank 0's latest checkpoint) is not visible on rank {self.dist.rank}; "
                    "the run directory must be on a filesystem every rank shares"
                )
            found = (ckpt, self._read_checkpoint(ckpt, read_json(ckpt / "trainer_state.json")))
        state, blob, weights = found[1]
        apply_weights(self.model, weights, self.optimizer)
        apply_resume_blob(blob, self.optimizer, self.scheduler)
        self.state = state
        self.stream.position = self.state.position
        if self.dist.is_main:
            truncate_metrics(self.run_dir, self.state.step)
        barrier(self.dist)
        from ringrl.utils.metrics import read_metrics

        self.monitor = StabilityMonitor(self.cfg.monitor)
        for row in read_metrics(self.run_dir) if (self.run_dir / "metrics.jsonl").is_file() else []:
            self.monitor.observe(int(row.get("step", 0)), row)
        return ckpt

    # ------------------------------------------------------------------ the monitor
    def _watch(self, m: dict[str, Any]) -> list[Alert]:
        """The monitor's alerts starting at this step (rank 0's, so every rank acts alike), added to ``m``."""
        if not self.cfg.monitor.enabled:
            return []
        alerts = self.monitor.observe(self.state.step, m)
        alerts = broadcast_object(alerts if self.dist.is_main else None, self.dist)
        m.update(alert_metrics(alerts))
        return alerts

    def _act_on(self, alerts: list[Alert]) -> bool:
        """``monitor.stop``: stop (exit 3) with a recent checkpoint kept. ``monitor.rollback``: reload the
        last checkpoint with the learning rate halved and return True; stop once rollbacks run out."""
        cfg, names = self.cfg.monitor, ", ".join(a.name for a in alerts)
        if not (cfg.stop or cfg.rollback):
            return False
        last = self._latest_checkpoint()
        if cfg.rollback and last is not None and self.state.rollbacks < cfg.max_rollbacks:
            rollbacks, lr_scale = self.state.rollbacks + 1, self.state.lr_scale * 0.5
            self._load_latest()
            self._scale_lr(lr_scale / self.state.lr_scale)
            self.state.rollbacks, self.state.lr_scale = rollbacks, lr_scale
            return True
        last_step = _checkpoint_step(last)
        if last_step is None or self.state.step - last_step >= cfg.window:
            self._save(f"step-{self.state.step}")  # no recent checkpoint: keep this one
            last = self.run_dir / "checkpoints" / f"step-{self.state.step}"
        why = "rollbacks exhausted" if cfg.rollback else "monitor.stop"
        raise MonitorStop(f"step {self.state.step}: alert {names} ({why}); last checkpoint {last}")

    def _scale_lr(self, factor: float) -> None:
        self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] *= factor

    def _read_checkpoint(self, ckpt: Path, state: dict[str, Any]) -> tuple[TrainerState, dict[str, Any], Any]:
        """Everything a resume restores, read before anything changes (a damaged file raises here)."""
        trainer_state = TrainerState.from_json(dict(state))
        blob = read_resume_blob(ckpt)
        return trainer_state, blob, read_weights(ckpt, self.model, self.cfg.model.trust_remote_code)

    def _write_summary(self, resumed_from: str | None) -> dict[str, Any]:
        from ringrl.utils.metrics import read_metrics

        rows = read_metrics(self.run_dir)
        rewards = [r["reward/mean"] for r in rows if "reward/mean" in r]
        k = max(1, len(rewards) // 5)
        sft_tokens = None
        tstate = Path(self.cfg.model.path or "") / "trainer_state.json"
        if tstate.is_file():
            sft_tokens = read_json(tstate).get("tokens_seen")
        summary = {
            "kind": "rl",
            "algo": self.cfg.algo,
            "init": self.cfg.model.path,
            "steps": self.state.step,
            "final_checkpoint": "checkpoints/final",
            "rl_tokens": self.state.rl_tokens,
            "sft_tokens": sft_tokens,
            "reward_first": statistics.fmean(rewards[:k]) if rewards else None,
            "reward_last": statistics.fmean(rewards[-k:]) if rewards else None,
            "resumed_from": resumed_from,
            "trainable_params": trainable_fraction(self.model)[0],
            "trainable_fraction": trainable_fraction(self.model)[1],
        }
        write_json(self.run_dir / "summary.json", summary)
        return summary

    def close(self) -> None:
        """Stop the reward workers and release the run directory's lock."""
        if self._own_pool is not None:
            self._own_pool.close()
            self._own_pool = None
        if self.rundir is not None:
            self.rundir.close()
            self.rundir = None


def _pool_rewards(pool, rows, responses) -> list[float]:
    return [v.reward for v in pool.score(rows, responses)]


def _routed_moe(model: Any, replay: bool) -> bool:
    """Whether the engine records MoE routing: for every model whose routers ringrl knows
    (:mod:`ringrl.models.routing`; ``moe/routing_agreement`` is then logged with replay on or off).
    ``rollout.routing_replay`` on a model without them is a config error."""
    from ringrl.models.routing import RoutingMismatchError, moe_routers

    try:
        known = is_moe(model) and bool(moe_routers(model))
    except RoutingMismatchError:  # an MoE whose router ringrl does not know (e.g. custom code)
        known = False
    if replay and not known:
        raise UserError(
            "config key 'rollout.routing_replay': the policy has no MoE router ringrl can replay "
            "(supported: Qwen2-MoE, Qwen3-MoE, OLMoE, Mixtral; docs/routing.md says how to add one)"
        )
    return known


def _checkpoint_step(ckpt: Path | None) -> int | None:
    if ckpt is None:
        return None
    return int(read_json(ckpt / "trainer_state.json").get("step", 0))


def train_rl(cfg: RLConfig, score=None) -> dict[str, Any]:
    return RLTrainer(cfg, score=score).fit()
