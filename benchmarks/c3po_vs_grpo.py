"""C3PO against GRPO: tokens per step, step time, gradient norm and reward (a benchmark, not a timed test).

The same seed, model and prompt stream under ``algo=c3po`` and ``algo=grpo``, each a real
:class:`ringrl.rl.trainer.RLTrainer` (config from ``ringrl.config.load_config(RLConfig,
overrides=[...])``). The two trainers are alive together and their steps interleave
(grpo 1, c3po 1, c3po 2, grpo 2, grpo 3, ...: the order alternates) so that both see
the same load on a shared machine. Each step is logged to RUN_DIR/{grpo,c3po}/metrics.jsonl
with ringrl's own ``MetricsLogger`` as ``RLTrainer.fit`` does; the report is read back
from those files. The first step (warm-up: one-time allocations fall on whichever
trainer runs first) is left out of the statistics.

Reported per algorithm, as coefficients of variation (population std / mean):
``train/tokens`` (tokens in the optimizer step), ``time/step`` (rollout + reward +
forming + loss pass + optimizer), ``time/train`` (loss pass + optimizer: the part the
batch former controls), ``time/rollout``, ``train/grad_norm``; and three keys this
script adds to the logged records: ``bench/forward_tokens`` (prompt + trained response
tokens of the selected responses: what the loss pass computes on), ``bench/padded_tokens``
(count x longest, summed over the micro-batches) and ``bench/cpu_step`` /
``bench/cpu_train`` (CPU seconds from ``time.process_time``, which a shared machine's
load disturbs far less than wall time). Then, per step, ``train/tokens``, ``reward/mean``,
mean length, gradient norm and times side by side.

The model: ``--model-dir``, or by default a quick SFT checkpoint of the embedded tiny MoE
(``ringrl.sft.trainer.train_sft`` on a few hundred embedded arithmetic rows, so that
responses end with the end token at varied lengths; a freshly initialised model never
stops and every response would have max_new_tokens tokens under both algorithms).

Rewards (``--reward``): ``verifier`` is the real ``ringrl.rewards.RewardPool`` (Math-Verify
on the boxed answer). A tiny model that had a minute of SFT solves no arithmetic, so every
reward is 0, every advantage is 0 and the policy-gradient term vanishes (only the KL,
entropy and router terms give a gradient): the comparison of gradient norms says little.
``parity`` (the default) is the test suite's deterministic stand-in verifier: reward 1
when the decoded response has an even number of characters; groups get mixed rewards and
non-zero advantages, so both algorithms train on a real policy-gradient signal.

C3PO's budget Phi (``former.budget_tokens``): ``--budget``, or by default
``--budget-frac`` (0.6) x the tokens of a probe rollout of the first step's prompts with
the run's own seed and sampling settings (L x K x mean length), so that a step's pool
normally covers it; ``former.fill=sample_more`` (the default) tops up a short pool.

    python benchmarks/c3po_vs_grpo.py [--steps 13] [--model-dir DIR] [--out DIR] [--reward parity|verifier]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sets TOKENIZERS_PARALLELISM before tokenizers loads)


def quick_sft(out: Path, args) -> Path:
    """A tiny MoE that has seen a little SFT: responses end with the end token at varied lengths."""
    from ringrl.config import load_config
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.trainer import train_sft

    cfg = load_config(
        SFTConfig,
        overrides=[
            f"out={out}",
            "overwrite=true",  # a re-run with the same --out trains this SFT again
            f"threads={args.threads}",
            f"epochs={args.sft_epochs}",
            "batch_tokens=1024",
            "data.tasks=[math]",
            f"data.train_size={args.sft_rows}",
            f"data.levels={args.levels}",
            "data.eval_size=4",
            "optim.lr=2e-3",
            "optim.warmup_ratio=0.03",
            "entropy.max_new_tokens=32",
            "entropy.batch_size=4",
            "tensorboard=false",
            "progress=false",
        ],
    )
    t0 = time.perf_counter()
    train_sft(cfg, grader=lambda rows, responses: [0.0] * len(rows))
    ckpt = out / "checkpoints" / f"epoch-{args.sft_epochs}"
    print(
        f"quick SFT checkpoint: {ckpt} ({args.sft_rows} arithmetic rows, levels {args.levels}, "
        f"{args.sft_epochs} epochs, {time.perf_counter() - t0:.0f} s)"
    )
    return ckpt


def parity_score(rows, responses):
    """Deterministic stand-in verifier (tests/conftest.py has the same): 1 for an even number of characters."""
    return [float(len(r) % 2 == 0) for r in responses]


def rl_config(model_dir: Path, out: Path, algo: str, budget: int, args):
    from ringrl.config import load_config
    from ringrl.rl.config import RLConfig

    return load_config(
        RLConfig,
        overrides=[
            f"model.path={model_dir}",
            f"out={out}",
            f"algo={algo}",
            f"steps={args.steps}",
            f"seed={args.seed}",
            f"threads={args.threads}",
            "data.tasks=[math]",
            f"data.levels={args.levels}",
            f"data.train_size={args.prompts}",
            f"rollout.prompts_per_step={args.L}",
            f"rollout.samples_per_prompt={args.K}",
            f"rollout.max_new_tokens={args.max_new_tokens}",
            f"rollout.batch_size={args.L * args.K}",
            f"former.budget_tokens={budget}",
            f"former.fill={args.fill}",
            f"optim.lr={args.lr}",
            f"reward_workers={args.reward_workers}",
            f"micro_batch_tokens={args.micro_batch_tokens}",
            f"pack_sequences={str(args.pack).lower()}",
            "tensorboard=false",
            "progress=false",
            "expert_load_per_layer=false",
        ],
    )


def probe_tokens(model_dir: Path, args) -> tuple[int, float]:
    """Generated tokens of the first step's L x K rollout (same prompts, seed and sampling as the runs)."""
    from ringrl.models.loading import load_policy
    from ringrl.rl.data import PromptStream, load_rl_rows
    from ringrl.rl.rollout import collect_groups
    from ringrl.rollout import HFEngine

    cfg = rl_config(model_dir, Path(tempfile.gettempdir()) / "unused", "grpo", args.max_new_tokens, args)
    model, tok = load_policy(str(model_dir), cfg.model.device, cfg.model.dtype)
    rows = PromptStream(load_rl_rows(cfg.data), seed=cfg.data.seed).take(args.L)
    ro = collect_groups(
        HFEngine(model, tok, batch_size=cfg.rollout.batch_size),
        tok,
        rows,
        lambda r, s: [0.0] * len(r),
        cfg.rollout,
        (cfg.seed * 1_000_003) * 16,
        "probe",
    )
    truncated = sum(not s.finished for g in ro.groups for s in g.samples) / len(ro.lengths)
    return ro.generated_tokens, truncated


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model-dir", default=None, help="policy directory (default: a quick SFT checkpoint of the tiny MoE)"
    )
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    ap.add_argument(
        "--steps", type=int, default=13, help="steps per algorithm (the first is warm-up, left out of the CVs)"
    )
    ap.add_argument("--warmup-steps", type=int, default=1, help="leading steps left out of the statistics")
    ap.add_argument(
        "--reward",
        default="parity",
        choices=["parity", "verifier"],
        help="parity: deterministic stand-in with mixed rewards; verifier: the real RewardPool",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--L", type=int, default=4, help="prompts per step (few: the mix of levels varies per step)")
    ap.add_argument("--K", type=int, default=8, help="samples per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument(
        "--levels",
        default="[2,3]",
        help="embedded arithmetic levels (teacher answers at commit f539a58: 1 ~70 tokens, 2 ~100, 3 ~185, 4 ~240)",
    )
    ap.add_argument("--prompts", type=int, default=400, help="embedded RL prompts")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--budget", type=int, default=0, help="C3PO Phi in tokens (0: --budget-frac x a probe rollout)")
    ap.add_argument("--budget-frac", type=float, default=0.6)
    ap.add_argument("--fill", default="sample_more", choices=["sample_more", "train_fewer"])
    ap.add_argument(
        "--micro-batch-tokens",
        type=int,
        default=16384,
        help="RLConfig.micro_batch_tokens: padded tokens per micro-batch (ringrl's default 16384)",
    )
    ap.add_argument(
        "--pack",
        action="store_true",
        help="RLConfig.pack_sequences: packed micro-batches (no padding) in the loss pass",
    )
    ap.add_argument("--sft-rows", type=int, default=400)
    ap.add_argument("--sft-epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reward-workers", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from common import cv, header

    from ringrl.algorithms.microbatch import split_by_tokens
    from ringrl.rl.trainer import RLTrainer
    from ringrl.utils.checkpoint import quiet_transformers
    from ringrl.utils.metrics import MetricsLogger, read_metrics

    quiet_transformers()
    header("C3PO vs GRPO: tokens per optimizer step, step time, gradient norm, reward")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "bench"
        model_dir = Path(args.model_dir) if args.model_dir else quick_sft(out / "sft", args)
        if args.budget:
            budget = args.budget
            print(f"C3PO budget Phi = {budget} tokens (--budget)")
        else:
            probe, trunc = probe_tokens(model_dir, args)
            budget = max(args.max_new_tokens, int(args.budget_frac * probe))
            print(
                f"probe rollout of step 1 ({args.L} prompts x {args.K}): {probe} tokens, mean length "
                f"{probe / (args.L * args.K):.1f}, truncated {trunc:.0%}; C3PO budget Phi = {budget} "
                f"({args.budget_frac:.0%} of it)"
            )
        print(
            f"settings: L={args.L} K={args.K} max_new_tokens={args.max_new_tokens} levels {args.levels} "
            f"lr {args.lr} steps {args.steps} seed {args.seed} former.fill={args.fill} "
            f"micro_batch_tokens={args.micro_batch_tokens} pack={args.pack} threads {args.threads}"
        )

        algos = ("grpo", "c3po")
        score = parity_score if args.reward == "parity" else None  # None: RLTrainer's own RewardPool
        print(
            f"reward: {'parity stand-in (even number of characters)' if score else 'ringrl.rewards.RewardPool (Math-Verify)'}"
        )
        trainers = {a: RLTrainer(rl_config(model_dir, out / a, a, budget, args), score=score) for a in algos}
        loggers = {a: MetricsLogger(out / a, tensorboard=False) for a in algos}
        extra: dict[str, dict[str, float]] = {}
        for a, t in trainers.items():
            # CPU seconds of the loss pass + optimizer (wall time is at the mercy of the load), and the
            # tokens that pass computes on: prompt + trained response tokens, and padded (count x longest)
            def timed_train(batch, _f=t._train, _a=a, _mbt=t.cfg.micro_batch_tokens):
                lengths = [len(x.sample.prompt_ids) + x.n_tokens for x in batch.selected]
                parts = split_by_tokens(lengths, _mbt) if lengths else []
                padded = sum(len(idx) * max(lengths[i] for i in idx) for idx in parts)
                c0 = time.process_time()
                out_ = _f(batch)
                extra[_a] = {
                    "bench/cpu_train": time.process_time() - c0,
                    "bench/forward_tokens": sum(lengths),
                    "bench/padded_tokens": padded,
                }
                return out_

            t._train = timed_train
        try:
            for step in range(args.steps):
                for a in algos if step % 2 == 0 else algos[::-1]:
                    c0 = time.process_time()
                    m = trainers[a].step()
                    m["bench/cpu_step"] = time.process_time() - c0
                    m.update(extra[a])
                    loggers[a].log(trainers[a].state.step, m)
        finally:
            for a in algos:
                loggers[a].close()
                trainers[a].close()
        rows = {a: read_metrics(out / a) for a in algos}

    w = args.warmup_steps

    def series(a, key):
        return [float(r[key]) for r in rows[a][w:]]

    print(
        f"\ncoefficient of variation (population std / mean) over steps {w + 1}-{args.steps} "
        f"({args.steps - w} steps; the first {w} left out as warm-up):"
    )
    keys = [
        "train/tokens",
        "bench/forward_tokens",
        "bench/padded_tokens",
        "time/step",
        "time/train",
        "time/rollout",
        "bench/cpu_step",
        "bench/cpu_train",
        "train/grad_norm",
        "train/responses",
        "response_length/mean",
        "reward/mean",
    ]
    print(f"{'metric':<20}" + "".join(f"{a + ' CV':>12}{a + ' mean':>13}" for a in algos))
    for k in keys:
        print(f"{k:<20}" + "".join(f"{cv(series(a, k)):>12.4f}{statistics.fmean(series(a, k)):>13.4g}" for a in algos))

    print("\nper step (every step, warm-up included):")
    head = [
        "step",
        "grpo tokens",
        "c3po tokens",
        "grpo reward",
        "c3po reward",
        "grpo len",
        "c3po len",
        "grpo gnorm",
        "c3po gnorm",
        "grpo s",
        "c3po s",
        "grpo train s",
        "c3po train s",
        "grpo cpu train",
        "c3po cpu train",
        "c3po extra",
    ]
    print(" ".join(f"{h:>{max(6, len(h))}}" for h in head))
    for i, (g, c) in enumerate(zip(rows["grpo"], rows["c3po"]), start=1):
        cells = [
            i,
            g["train/tokens"],
            c["train/tokens"],
            f"{g['reward/mean']:.3f}",
            f"{c['reward/mean']:.3f}",
            f"{g['response_length/mean']:.1f}",
            f"{c['response_length/mean']:.1f}",
            f"{g['train/grad_norm']:.4g}",
            f"{c['train/grad_norm']:.4g}",
            f"{g['time/step']:.2f}",
            f"{c['time/step']:.2f}",
            f"{g['time/train']:.3f}",
            f"{c['time/train']:.3f}",
            f"{g['bench/cpu_train']:.3f}",
            f"{c['bench/cpu_train']:.3f}",
            c["rollout/extra_rounds"],
        ]
        print(" ".join(f"{str(x):>{max(6, len(h))}}" for x, h in zip(cells, head)))

    tok_cv = cv(series("c3po", "train/tokens"))
    shortfall = sum(series("c3po", "train/shortfall_tokens"))
    extra_rounds = sum(series("c3po", "rollout/extra_rounds"))
    print(
        f"\nC3PO tokens per step constant (CV 0): {'held' if tok_cv == 0 else 'NOT held'} "
        f"(CV {tok_cv:.4f}, shortfall tokens {shortfall:.0f}, extra rollout rounds {extra_rounds:.0f})"
    )
    for k in ("time/step", "time/train", "bench/cpu_step", "bench/cpu_train"):
        g, c = cv(series("grpo", k)), cv(series("c3po", k))
        print(
            f"{k} CV c3po / grpo = {c:.4f} / {g:.4f} = {c / g if g else float('nan'):.2f} "
            f"(target <= 0.33: {'held' if g and c / g <= 1 / 3 else 'NOT held'})"
        )

    def corr(x, y) -> str:
        try:
            return f"{statistics.correlation(x, y):.2f}"
        except statistics.StatisticsError:  # fewer than 2 points, or a constant series
            return "n/a (constant)"

    for a in algos:
        step_s, cpu_train = statistics.fmean(series(a, "time/step")), series(a, "bench/cpu_train")
        print(
            f"{a}: rollout {statistics.fmean(series(a, 'time/rollout')) / step_s:.0%}, loss pass + optimizer "
            f"{statistics.fmean(series(a, 'time/train')) / step_s:.0%} of step time; CPU seconds of the loss pass "
            f"correlate with padded tokens {corr(series(a, 'bench/padded_tokens'), cpu_train)}, "
            f"with trained tokens {corr(series(a, 'train/tokens'), cpu_train)}"
        )


if __name__ == "__main__":
    main()
