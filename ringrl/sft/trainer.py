"""``ringrl sft``: long-CoT SFT with a checkpoint, entropy and accuracy per epoch.

The trainer orchestrates; the objective is :func:`ringrl.sft.loss.sft_loss` (computed from the
chunked output head's log-probs, :func:`ringrl.sft.loss.sft_loss_from_logprobs`) plus the
MoE router terms of :func:`ringrl.algorithms.moe.moe_aux_loss`.

Run directory (locked for the run, :mod:`ringrl.utils.rundir`): ``config.yaml``,
``metrics.jsonl`` (one line per optimizer step), ``tb/``, ``checkpoints/epoch-N/`` (HF
format; also ``step-N/`` every ``save_every`` steps, each with ``trainer_state.json`` and
``optimizer.pt`` for exact resume) and ``summary.json`` whose ``checkpoints`` list
records ``epoch``, ``step``, ``tokens_seen``, ``entropy`` and ``accuracy`` of each epoch
checkpoint (read by ``ringrl select-checkpoint``). A non-finite loss or gradient skips
the update (counted; the run stops after ``max_nonfinite``).

Under ``torchrun`` (:mod:`ringrl.distributed`) an optimizer step takes ``grad_accum x
world_size`` length-bucketed batches; every rank counts the target tokens of all of
them (the denominator) and back-propagates its own through DDP, so N ranks give the
gradient of one process with N times the accumulation. At the end of an epoch each rank
samples its share of the held-out prompts and the entropy and accuracy are pooled;
rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ringrl.algorithms.moe import moe_aux_loss
from ringrl.common_config import make_optimizer, optimizer_step, schedule_step
from ringrl.config import save_config, to_dict
from ringrl.data.rows import load_rows
from ringrl.distributed import (
    Dist,
    all_reduce_sum,
    barrier,
    broadcast_object,
    check_before_save,
    gather_objects,
    idle_pass,
    init_distributed,
    reaching,
    sync_unless,
    wrap_model,
)
from ringrl.errors import UserError
from ringrl.fsdp import compute_device, gathered, is_fsdp, stage_for_save
from ringrl.models.forward import compute_autocast, compute_dtype, token_stats
from ringrl.models.loading import is_moe, load_for_training, moe_top_k, resolve_save_dtype
from ringrl.models.lora import describe_trainable, is_lora, trainable_fraction
from ringrl.sft.config import SFTConfig
from ringrl.sft.data import bucket_batches, collate, encode_rows
from ringrl.sft.evaluate import PolicyEval, evaluate_policy
from ringrl.sft.loss import sft_loss_from_logprobs
from ringrl.utils.checkpoint import (
    apply_weights,
    quiet_transformers,
    read_weights,
    save_resumable,
    seed_everything,
    set_threads,
)
from ringrl.utils.io import read_json, write_json
from ringrl.utils.metrics import MetricsLogger
from ringrl.utils.progress import Progress
from ringrl.utils.rundir import (
    RunDir,
    apply_resume_blob,
    note,
    open_run_dir,
    prune_checkpoints,
    read_resume_blob,
    resume_from,
    truncate_metrics,
)


def load_sft_data(cfg: SFTConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows with responses, held-out rows with answers)."""
    from ringrl.tasks import embedded_rows

    d = cfg.data
    if d.train:
        train = load_rows(d.train, "sft", max_row_bytes=d.max_row_bytes)
    else:
        train = embedded_rows(d.tasks, "train", d.train_size, d.seed, d.levels, d.weights)
    if d.eval:
        held = load_rows(d.eval, "eval", limit=d.eval_size, max_row_bytes=d.max_row_bytes)
    else:
        held = embedded_rows(d.tasks, "test", d.eval_size, d.seed, d.levels, d.weights)
    return train, held


def prepare_model(
    cfg: SFTConfig, run_dir: Path, train_rows: list[dict[str, Any]], dist: Dist | None = None, device: str | None = None
) -> tuple[Any, Any, str]:
    """Load ``model.path``, or build the embedded tiny MoE (tokenizer trained on the rows) under RUN_DIR/base
    (rank 0 builds it, the other ranks load what it wrote)."""
    dist = dist or Dist()
    path = cfg.model.path
    if path is None:
        from ringrl.models.tiny import build_tiny
        from ringrl.tasks import corpus

        path = str(run_dir / "base")
        if dist.is_main and not (Path(path) / "config.json").is_file():
            build_tiny(Path(path), corpus(train_rows), cfg.model.tiny)
        barrier(dist)
    # float32 master weights; cfg.model.dtype is the compute dtype (autocast)
    model, tokenizer = load_for_training(cfg.model, path, device or cfg.model.device)
    return model, tokenizer, path


def make_grader(workers: int | None = None):
    """A function (rows, responses) -> rewards backed by the verifier registry's worker pool."""
    from ringrl.rewards import RewardPool

    pool = RewardPool(workers=workers)

    def grade(rows, responses):
        return [v.reward for v in pool.score(rows, responses)]

    grade.close = pool.close  # type: ignore[attr-defined]  # a plain function given a close(); make_grader's callers call it
    return grade


def train_sft(cfg: SFTConfig, grader=None) -> dict[str, Any]:
    """Run SFT as configured; returns the summary written to RUN_DIR/summary.json."""
    quiet_transformers()
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    dist, device = init_distributed(cfg.model.device, cfg.parallel.sharded, cfg.parallel.cpu_offload)
    summary = _train_sft(cfg, grader, dist, device)
    return broadcast_object(summary if dist.is_main else None, dist)  # rank 0's, which has the checkpoints


def _train_sft(cfg: SFTConfig, grader, dist: Dist, device: str) -> dict[str, Any]:
    rundir = open_run_dir(cfg.out, "sft", cfg.resume, cfg.overwrite, dist)  # locked until the end
    try:
        summary = _train_sft_locked(cfg, grader, dist, device, rundir)
        rundir.finish()
        return summary
    finally:
        rundir.close()


class NonFiniteStop(UserError):
    """Too many non-finite updates: the run stops (its last good checkpoint stays)."""


@dataclass
class SFTState:
    """Where an SFT run stands; saved in every checkpoint's ``trainer_state.json`` for exact resume."""

    run_id: str = ""
    step: int = 0  # optimizer steps done (over all epochs)
    epoch: int = 1  # the epoch of ``step``
    tokens_seen: int = 0
    nonfinite_skips: int = 0
    elapsed: float = 0.0
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # measured epoch checkpoints so far


def _train_sft_locked(cfg: SFTConfig, grader, dist: Dist, device: str, rundir: RunDir) -> dict[str, Any]:
    run_dir = Path(cfg.out)
    main = dist.is_main
    if main:
        save_config(cfg, run_dir / "config.yaml")

    train_rows, held_rows = load_sft_data(cfg)
    model, tokenizer, model_path = prepare_model(cfg, run_dir, train_rows, dist, device)
    # DDP: a wrapper (the model itself on one process); FSDP: the model, sharded in place
    train_model = wrap_model(model, dist, cfg.parallel, compute_dtype(model))
    examples, skipped = encode_rows(tokenizer, train_rows, cfg.data.max_length)
    if not examples:
        raise UserError(f"no training row fits data.max_length={cfg.data.max_length} tokens")
    lengths = [len(e.input_ids) for e in examples]
    if max(lengths) > cfg.batch_tokens:
        raise UserError(
            f"config key 'batch_tokens': {cfg.batch_tokens} is smaller than the longest example ({max(lengths)} tokens)"
        )
    rng = random.Random(cfg.seed)
    epoch_batches = [bucket_batches(lengths, cfg.batch_tokens, rng) for _ in range(cfg.epochs)]
    per_step = cfg.grad_accum * dist.world_size  # batches per optimizer step, over all ranks
    steps_per_epoch = [math.ceil(len(b) / per_step) for b in epoch_batches]
    total_steps = sum(steps_per_epoch)
    optimizer, scheduler = make_optimizer(model, cfg.optim, total_steps)
    device = str(compute_device(model))  # (sharded and offloaded: the accelerator)
    moe, top_k = is_moe(model), moe_top_k(model)
    st = SFTState(run_id=rundir.run_id)
    resumed_from = _maybe_resume(cfg, rundir, model, optimizer, scheduler, dist) if rundir.resuming else None
    if resumed_from is not None:
        st = resumed_from[1]
        if main:
            truncate_metrics(run_dir, st.step)
            note(f"resuming from {resumed_from[0]} (step {st.step} of {total_steps})")
    if main and is_lora(model):
        note(describe_trainable(model))
    resumed_step = st.step if resumed_from is not None else -1
    own_grader = grader is None
    if grader is None:  # every rank grades its share of the held-out samples
        grader = make_grader(max(1, (os.cpu_count() or 1) // dist.local_world_size))

    summary: dict[str, Any] = {
        "kind": "sft",
        "model": model_path,
        "train_rows": len(examples),
        "skipped_too_long": skipped,
        "eval_problems": len(held_rows),
        "tokens_seen": st.tokens_seen,
        "checkpoints": st.checkpoints,
        "nonfinite_skips": st.nonfinite_skips,
        "resumed_from": str(resumed_from[0]) if resumed_from else None,
        "trainable_params": trainable_fraction(model)[0],
        "trainable_fraction": trainable_fraction(model)[1],
    }
    model.train()
    logger = MetricsLogger(
        run_dir,
        tensorboard=cfg.tensorboard,
        write=main,
        append=resumed_from is not None,
        t0=st.elapsed,
        wandb=cfg.logger,
        config=to_dict(cfg),
    )
    save_dtype = resolve_save_dtype(cfg.model.save_dtype, cfg.model.path or str(run_dir / "base"))

    def save(name: str) -> None:
        st.elapsed = logger.elapsed()
        save_sft_checkpoint(run_dir, name, model, tokenizer, st, optimizer, scheduler, dist, save_dtype)

    try:
        with Progress(total_steps, "sft", enabled=cfg.progress and main) as bar:
            bar.update("", advance=st.step)
            for epoch, batches in enumerate(epoch_batches, start=1):
                first = sum(steps_per_epoch[: epoch - 1])
                last = first + steps_per_epoch[epoch - 1]
                if len(st.checkpoints) >= epoch:  # finished and measured before the resume
                    continue
                st.epoch = epoch
                for s in range(st.step - first, steps_per_epoch[epoch - 1]):
                    t0 = time.perf_counter()
                    step_batches = batches[s * per_step : (s + 1) * per_step]
                    # every rank counts every batch of the step: one global denominator, fixed before backward
                    denominator = sum(_targets(examples[i]) for b in step_batches for i in b)
                    group = [
                        collate([examples[i] for i in b], tokenizer.pad_token_id)
                        for b in step_batches[dist.rank :: dist.world_size]
                    ]
                    # fewer batches than ranks at the end of an epoch: a zero-loss pass keeps the all-reduce
                    # in step; under FSDP (collective passes) every rank runs as many as the busiest one
                    want = -(-len(step_batches) // dist.world_size) if is_fsdp(model) else 1
                    real = len(group)
                    if real < want:
                        idle = _zero_mask(collate([examples[i] for i in step_batches[0]], tokenizer.pad_token_id))
                        group += [idle] * (want - real)
                    metrics = all_reduce_sum(
                        train_step(
                            train_model,
                            group,
                            denominator,
                            cfg,
                            moe,
                            top_k,
                            device,
                            loss_scale=float(dist.world_size),
                            real=real,
                        ),
                        dist,
                    )
                    loss = metrics["nll"] / denominator
                    grad_norm, finite = clip_and_step(model, optimizer, scheduler, cfg.optim.grad_clip, loss)
                    st.step += 1
                    st.tokens_seen += denominator
                    st.nonfinite_skips += 0 if finite else 1
                    dt = time.perf_counter() - t0
                    n_input = sum(sum(len(examples[i].input_ids) for i in b) for b in step_batches)
                    rec = logger.log(
                        st.step,
                        {
                            "train/loss": loss,
                            "train/lr": scheduler.get_last_lr()[0],
                            "train/grad_norm": grad_norm,
                            "train/tokens": denominator,
                            "train/input_tokens": n_input,
                            "train/epoch": epoch,
                            "train/tokens_seen": st.tokens_seen,
                            "train/skipped_nonfinite": 0 if finite else 1,
                            "throughput/tokens_per_s": n_input / dt,
                            **{k: v for k, v in metrics.items() if k.startswith("moe/")},
                        },
                    )
                    bar.update(
                        f"epoch {epoch} loss {_fmt(rec['train/loss'], '.3f')} "
                        f"{_fmt(rec['throughput/tokens_per_s'], '.0f')} tok/s"
                    )
                    if st.nonfinite_skips >= cfg.max_nonfinite:
                        raise NonFiniteStop(
                            f"{st.nonfinite_skips} updates skipped for a non-finite loss or gradient "
                            f"(max_nonfinite={cfg.max_nonfinite}); stopping at step {st.step}"
                        )
                    if cfg.save_every and st.step % cfg.save_every == 0 and st.step < last:
                        save(f"step-{st.step}")
                        if main:
                            prune_checkpoints(run_dir, cfg.keep_checkpoints)
                if st.step != resumed_step:  # not the epoch checkpoint this run resumed from: write it
                    save(f"epoch-{epoch}")
                st.checkpoints.append(
                    finish_epoch(
                        cfg, run_dir, model, tokenizer, held_rows, grader, epoch, st.step, st.tokens_seen, bar, dist
                    )
                )
                summary.update(
                    tokens_seen=st.tokens_seen, checkpoints=st.checkpoints, nonfinite_skips=st.nonfinite_skips
                )
                if main:
                    write_json(run_dir / "summary.json", summary)
    finally:
        logger.close(summary)
        if own_grader and hasattr(grader, "close"):
            grader.close()
    return summary


def _fmt(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``; a non-finite value (logged as a string) as it is."""
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def save_sft_checkpoint(
    run_dir: Path,
    name: str,
    model,
    tokenizer,
    st: SFTState,
    optimizer,
    scheduler,
    dist: Dist,
    save_dtype: torch.dtype | None = None,
) -> None:
    """``checkpoints/NAME`` (HF format in ``save_dtype``, rank 0 writes it) with ``trainer_state.json``
    (:class:`SFTState`) and ``optimizer.pt``, and the float32 masters when ``save_dtype`` loses
    precision: enough to resume exactly from here."""
    path = run_dir / "checkpoints" / name
    check_before_save(model, dist, path)
    staged = stage_for_save(model, optimizer, path, dist)  # FSDP: gathered weights, sharded state
    if dist.is_main:
        save_resumable(path, model, tokenizer, asdict(st), optimizer, scheduler, save_dtype, staged)
    barrier(dist)


def _maybe_resume(cfg: SFTConfig, rundir: RunDir, model, optimizer, scheduler, dist: Dist):
    """(checkpoint, state) of the newest intact checkpoint of this run, restored into ``model``,
    ``optimizer`` and ``scheduler``; None when the run has none yet. Rank 0 chooses, every rank loads it."""

    def read(ckpt: Path, state: dict[str, Any]):
        st = SFTState(**{k: v for k, v in state.items() if k in SFTState.__dataclass_fields__})
        blob = read_resume_blob(ckpt)
        return st, blob, read_weights(ckpt, model, cfg.model.trust_remote_code)

    found = resume_from(rundir.path, rundir.run_id, read) if dist.is_main else None
    path = broadcast_object(str(found[0]) if found else "", dist)
    if not path:
        return None
    ckpt = Path(path)
    if found is None:
        found = (ckpt, read(ckpt, read_json(ckpt / "trainer_state.json")))
    st, blob, weights = found[1]
    apply_weights(model, weights, optimizer)  # the float32 masters (or a LoRA adapter, or FSDP shards), exactly
    apply_resume_blob(blob, optimizer, scheduler)
    return ckpt, st


def train_step(
    model,
    group: list[dict[str, torch.Tensor]],
    denominator: int,
    cfg: SFTConfig,
    moe: bool,
    top_k: int,
    device,
    loss_scale: float = 1.0,
    real: int | None = None,
) -> dict[str, float]:
    """Forward/backward over the micro-batches of one optimizer step (gradients accumulate).

    ``loss_scale`` multiplies what is back-propagated (the world size under DDP, which
    averages over ranks); under DDP only the last micro-batch's backward all-reduces.
    ``real``: the batches of ``group`` after the first ``real`` are zero-loss passes that only keep
    data-parallel ranks in step (:func:`ringrl.distributed.idle_pass`)."""
    nll: float = 0.0
    out: dict[str, Any] = {}
    with reaching(model):  # which modules the step's passes reach (data parallel: drop_unreached_grads)
        for i, g in enumerate(group):
            g = {k: v.to(device) for k, v in g.items()}
            idle = idle_pass(model) if real is not None and i >= real else contextlib.nullcontext()
            with sync_unless(model, skip=i < len(group) - 1), idle:
                # the output head runs in chunks over the target tokens only: no [B, T, V] logits
                st = token_stats(model, g["input_ids"], g["attention_mask"], targets_mask_BT=g["loss_mask"][:, 1:] != 0)
                router = st.router_logits
                loss, m = sft_loss_from_logprobs(st.logprobs_BT, g["loss_mask"], denominator)
                if moe and router:
                    share = float(m["tokens"]) / denominator  # token-weighted mean of the per-micro-batch router terms
                    aux, mm = moe_aux_loss(
                        router, top_k, g["attention_mask"], alpha_balance=cfg.alpha_balance, alpha_zloss=cfg.alpha_zloss
                    )
                    loss = loss + share * aux
                    for k in ("moe/balance_loss", "moe/z_loss", "moe/max_expert_load"):
                        out[k] = out.get(k, 0.0) + share * float(mm[k])
                (loss * loss_scale if loss_scale != 1.0 else loss).backward()
            nll += float(m["nll_sum"])
    out["nll"] = nll
    return out


def pool_evals(parts: list[PolicyEval]) -> PolicyEval:
    """One measurement from several ranks' shares: entropy weighted by tokens, accuracy by samples
    (the identity on one part)."""
    if len(parts) == 1:
        return parts[0]
    tokens = [p.mean_length * p.samples for p in parts]
    n_tok, n_samples = sum(tokens), sum(p.samples for p in parts)
    return PolicyEval(
        entropy=sum(p.entropy * t for p, t in zip(parts, tokens)) / max(1.0, n_tok),
        accuracy=sum(p.accuracy * p.samples for p in parts) / max(1, n_samples),
        mean_length=n_tok / max(1, n_samples),
        problems=sum(p.problems for p in parts),
        samples=n_samples,
    )


def _targets(e) -> int:
    """Target tokens of one example in the loss (``loss_mask[1:]``: the first position is never a target)."""
    return sum(max(0, end - max(start, 1)) for start, end in e.target_spans)


def _zero_mask(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with no target token: its backward gives zero gradients (and keeps DDP's all-reduce in step)."""
    return {**batch, "loss_mask": torch.zeros_like(batch["loss_mask"])}


def clip_and_step(model, optimizer, scheduler, grad_clip: float, loss: float | None = None) -> tuple[float, bool]:
    """One optimizer step (skipped when the loss or gradient is non-finite) and one schedule step;
    the norm before clipping and whether the update was applied."""
    norm, ok = optimizer_step(model, optimizer, grad_clip, loss)
    schedule_step(scheduler)
    return norm, ok


def finish_epoch(
    cfg, run_dir, model, tokenizer, held_rows, grader, epoch, step, tokens_seen, bar, dist: Dist | None = None
) -> dict[str, Any]:
    """Measure the policy's entropy and accuracy at checkpoint ``epoch-N`` (already written) on the
    held-out rows (each rank samples its share of them; the measures are pooled)."""
    dist = dist or Dist()
    name = f"epoch-{epoch}"
    path = run_dir / "checkpoints" / name
    if dist.is_main:
        bar.note(f"epoch {epoch}: saved {path}; measuring entropy on {len(held_rows)} held-out prompts")
    with gathered(model), compute_autocast(model):  # sample in the compute dtype (FSDP: gathered weights)
        mine = evaluate_policy(
            model,
            tokenizer,
            held_rows[dist.rank :: dist.world_size],
            grader,
            samples=cfg.entropy.samples,
            temperature=cfg.entropy.temperature,
            max_new_tokens=cfg.entropy.max_new_tokens,
            batch_size=cfg.entropy.batch_size,
            seed=(cfg.seed + epoch) * dist.world_size + dist.rank,
        )
    ev = pool_evals(gather_objects(mine, dist))
    model.train()
    if dist.is_main:
        bar.note(f"epoch {epoch}: entropy {ev.entropy:.3f}  accuracy {ev.accuracy:.3f}  length {ev.mean_length:.0f}")
    return {
        "name": name,
        "path": f"checkpoints/{name}",
        "epoch": epoch,
        "step": step,
        "tokens_seen": tokens_seen,
        **{k: v for k, v in asdict(ev).items() if k != "problems"},
        "eval_problems": ev.problems,
    }
