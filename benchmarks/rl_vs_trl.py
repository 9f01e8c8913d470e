"""ringrl's GRPO step against TRL's GRPOTrainer on the same model, prompts and settings.

Both trainers live in one process and their steps interleave: TRL runs its own training
loop, and a callback runs one ``ringrl`` step (a real :class:`ringrl.rl.trainer.RLTrainer`
with ``algo=grpo``) before TRL's step in odd rounds and after it in even rounds, so both see
the same machine load. Setup for both: the embedded tiny MoE (``ringrl.models.tiny``
defaults, saved with ``save_pretrained``), the same embedded arithmetic prompts rendered
with the model's chat template, L=8 prompts x K=8 samples, 64 new tokens, temperature 1,
top-p 1, no top-k, beta 1e-3 (so both run a reference model), lr 1e-5 constant, one PPO
epoch, fp32 on CPU, one torch thread, the same deterministic reward (1 when the decoded
response has an even number of characters). TRL runs without gradient checkpointing
(its default is on; ``--trl-gradient-checkpointing`` restores it), so it does no more
compute than ringrl. ringrl keeps its other defaults (entropy bonus, MoE router terms).

Printed: each side's median seconds per step over the rounds after ``--warmup``, the
ratio TRL / ringrl (> 1: ringrl faster), the same for CPU seconds (``time.process_time``
of the process over the step: on a machine shared with other jobs it varies far less
than wall time), and the per-phase split in wall seconds (medians): rollout
(generation), reward, loss pass (everything else in the step: forwards for the reference
and pi_old, loss, backward; for ringrl also advantages and batch forming), optimizer.

    pip install -e ".[bench]"
    python benchmarks/rl_vs_trl.py [--rounds 8] [--warmup 2] [--width 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import common


def build_model(root: Path, width: int) -> tuple[Path, list[dict], int]:
    """The embedded tiny MoE, its widths times ``width`` (1: ringrl.models.tiny defaults)."""
    from ringrl.models.tiny import TinyModelConfig, build_tiny
    from ringrl.tasks import corpus, make_split

    rows = make_split("math", "train", 400, seed=0)
    d = TinyModelConfig()
    shape = TinyModelConfig(
        hidden_size=d.hidden_size * width,
        expert_size=d.expert_size * width,
        shared_expert_size=d.shared_expert_size * width,
    )
    model_dir = build_tiny(root / f"tiny-moe-x{width}", corpus(rows), shape)
    prompts = [{"prompt": r["prompt"], "domain": r["domain"], "answer": r["answer"]} for r in rows]
    from transformers import AutoModelForCausalLM

    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
    return model_dir, prompts, n_params


def parity(text: str) -> float:
    return float(len(text) % 2 == 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8, help="interleaved steps per side (first --warmup not counted)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default=None, help="working directory (default: a temporary one)")
    ap.add_argument("--trl-gradient-checkpointing", action="store_true")
    ap.add_argument("--width", type=int, default=1, help="hidden and expert sizes x this (2: a 4.9M-parameter MoE)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import ringrl.rl.trainer as ringrl_trainer
    from ringrl.config import load_config
    from ringrl.data.prompts import render_prompt
    from ringrl.rl.config import RLConfig
    from ringrl.utils.checkpoint import quiet_transformers

    quiet_transformers()
    root = Path(args.out or tempfile.mkdtemp(prefix="rl_vs_trl-"))
    root.mkdir(parents=True, exist_ok=True)
    model_dir, rows, n_params = build_model(root, args.width)
    tok = AutoTokenizer.from_pretrained(model_dir)
    (root / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    L, K, new_tokens, steps = 8, 8, 64, args.rounds

    # ---------------------------------------------------------------- ringrl
    cfg = load_config(
        RLConfig,
        overrides=[
            f"model.path={model_dir}",
            "model.device=cpu",
            "model.dtype=float32",
            f"out={root / 'ringrl'}",
            "algo=grpo",
            f"steps={steps}",
            f"rollout.prompts_per_step={L}",
            f"rollout.samples_per_prompt={K}",
            f"rollout.max_new_tokens={new_tokens}",
            "rollout.temperature=1.0",
            "rollout.top_p=1.0",
            f"data.train={root / 'prompts.jsonl'}",
            "loss.beta=1e-3",
            "optim.lr=1e-5",
            "optim.warmup_ratio=0",
            "optim.schedule=constant",
            "threads=1",
            "progress=false",
            "tensorboard=false",
        ],
    )
    opt_seconds: list[float] = []
    real_optimizer_step = ringrl_trainer.optimizer_step

    def timed_optimizer_step(*a, **kw):
        t = time.perf_counter()
        out = real_optimizer_step(*a, **kw)
        opt_seconds.append(time.perf_counter() - t)
        return out

    ringrl_trainer.optimizer_step = timed_optimizer_step
    mine = ringrl_trainer.RLTrainer(cfg, score=lambda rows_, responses: [parity(r) for r in responses])
    ours: dict[str, list[float]] = defaultdict(list)

    def ringrl_step() -> None:
        opt_seconds.clear()
        t, c = time.perf_counter(), time.process_time()
        m = mine.step()
        total = time.perf_counter() - t
        ours["cpu step"].append(time.process_time() - c)
        opt = sum(opt_seconds)
        ours["step"].append(total)
        ours["rollout"].append(m["time/rollout"])
        ours["reward"].append(m["time/reward"])
        ours["optimizer"].append(opt)
        ours["loss pass"].append(total - m["time/rollout"] - m["time/reward"] - opt)
        ours["tokens"].append(m["response_length/mean"])

    # ---------------------------------------------------------------- TRL
    prompts = [render_prompt(tok, r) for r in rows]
    dataset = Dataset.from_dict({"prompt": prompts})
    trl_args = GRPOConfig(
        output_dir=str(root / "trl"),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=L * K,
        num_generations=K,
        max_completion_length=new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=1e-3,
        learning_rate=1e-5,
        lr_scheduler_type="constant",
        max_steps=steps,
        num_iterations=1,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        gradient_checkpointing=args.trl_gradient_checkpointing,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )

    def trl_reward(completions, **kw):
        return [parity(c) for c in completions]

    theirs: dict[str, list[float]] = defaultdict(list)
    phase: dict[str, float] = defaultdict(float)

    class Interleave(TrainerCallback):
        def __init__(self) -> None:
            self.round = 0
            self.t0 = self.c0 = 0.0
            self.t_opt = 0.0

        def on_step_begin(self, a, state, control, **kw):
            if self.round % 2 == 1:
                ringrl_step()
            phase.clear()
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_pre_optimizer_step(self, a, state, control, **kw):
            self.t_opt = time.perf_counter()

        def on_optimizer_step(self, a, state, control, **kw):
            phase["optimizer"] += time.perf_counter() - self.t_opt

        def on_step_end(self, a, state, control, **kw):
            total = time.perf_counter() - self.t0
            theirs["cpu step"].append(time.process_time() - self.c0)
            theirs["step"].append(total)
            for k in ("rollout", "reward", "optimizer"):
                theirs[k].append(phase[k])
            theirs["loss pass"].append(total - phase["rollout"] - phase["reward"] - phase["optimizer"])
            if self.round % 2 == 0:
                ringrl_step()
            self.round += 1

    trainer = GRPOTrainer(
        model=str(model_dir),
        reward_funcs=trl_reward,
        args=trl_args,
        train_dataset=dataset,
        processing_class=tok,
        callbacks=[Interleave()],
    )

    def timed(name, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phase[name] += time.perf_counter() - t

        return wrapper

    trainer._generate_single_turn = timed("rollout", trainer._generate_single_turn)
    trainer._calculate_rewards = timed("reward", trainer._calculate_rewards)
    trainer.train()
    mine.close()

    # ---------------------------------------------------------------- report
    w = args.warmup

    def med(d, k):
        return statistics.median(d[k][w:])

    print(f"machine: {common.machine_line()}")
    print(f"commit: {common.code_version()}")
    import transformers
    import trl

    print(
        f"model: embedded tiny MoE (ringrl.models.tiny defaults, widths x{args.width}), {n_params / 1e6:.2f}M parameters; "
        f"TRL {trl.__version__}, transformers {transformers.__version__}"
    )
    print(
        f"setup: L={L} K={K} new tokens {new_tokens}, beta 1e-3, lr 1e-5, {steps} interleaved rounds, "
        f"first {w} not counted; TRL gradient checkpointing {'on' if args.trl_gradient_checkpointing else 'off'}"
    )
    print(f"ringrl mean response length (tokens): {statistics.fmean(ours['tokens'][w:]):.1f}")
    print(f"{'phase (median s)':<18}{'TRL':>10}{'ringrl':>10}")
    for k in ("rollout", "reward", "loss pass", "optimizer", "step"):
        print(f"{k:<18}{med(theirs, k):>10.3f}{med(ours, k):>10.3f}")
    ratio = med(theirs, "step") / med(ours, "step")
    cpu_ratio = med(theirs, "cpu step") / med(ours, "cpu step")
    print(f"{'CPU s/step':<18}{med(theirs, 'cpu step'):>10.3f}{med(ours, 'cpu step'):>10.3f}")
    print(f"TRL s/step {med(theirs, 'step'):.3f}  ringrl s/step {med(ours, 'step'):.3f}  ratio TRL/ringrl {ratio:.2f}x")
    print(f"CPU seconds per step (process_time, less disturbed by a shared machine): ratio TRL/ringrl {cpu_ratio:.2f}x")


if __name__ == "__main__":
    main()
