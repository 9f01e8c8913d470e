"""GPU check: a random ~1B-parameter Qwen3-MoE trained with bf16 compute over float32 masters.

One command for one accelerator (written for one H200; needs only torch and transformers,
no download, no reward pool: rewards come from a deterministic fake verifier):

1. builds a random Qwen3-MoE from a config (``--preset 1b``: vocabulary 151,936, hidden
   1024, 16 layers of 32 experts, top-4; about 1.0B total and 0.3B active parameters) with
   a word-level tokenizer of the same vocabulary size, saved in bf16;
2. SFT: ``--sft-steps`` (20) optimizer steps of ringrl's SFT step (``train_step`` +
   ``clip_and_step``: chunked output head, router terms, AdamW on float32 masters) on
   ``--sft-seqs`` random sequences of 1,024 tokens each, lr 3e-6;
3. RL: ``--rl-steps`` (5) C3PO steps of ``RLTrainer.step()`` (L=32 prompts x K=8 samples,
   1,024 new tokens, Phi = L x K x 1,024 / 4, KL reference on, lr 3e-6) on the embedded
   math prompts, through the rollout engine this tree has;
4. RL again with ``parallel.strategy=fsdp`` on the one GPU (world size 1: FSDP2's code path
   with a process group of one rank: sharding, gathered rollout, float32 reduction),
   ``--fsdp-rl-steps`` (2) steps, its figures printed next to the ddp ones (``0`` skips it).
   ringrl's fsdp needs torch >= 2.13 (``ringrl.fsdp.fsdp_supported``); on an older torch this
   phase is skipped with a one-line note.

Prints tokens/s of the rollout (generated tokens), of the RL loss pass (prompt + response
tokens of the trained sequences) and of SFT; the model FLOP/s utilisation
``MFU = 6 x active parameters x tokens / seconds / peak`` for the loss pass and SFT (2 x
for the rollout, which has no backward), with ``peak`` = 989e12 FLOP/s, the H200's dense
bf16 tensor-core peak (``--peak`` to change); peak GPU memory of each phase; the fraction
of weight elements the updates changed (float32 masters against the initial weights).
Each phase prints its figures as soon as it finishes. A phase that raises prints one line
with the error and the check goes on to the next phase; the exit status is then 1. The time
budget ``--budget-s`` (default 420 s for the whole check) is checked before each phase
builds its model or trainer and before each step: no phase and no step starts once it is
spent (a step already running finishes), and the phases left are reported as skipped. Each
phase reports how many of its steps ran.

    python benchmarks/gpu_check.py                 # on the GPU, < 8 minutes on one H200
    python benchmarks/gpu_check.py --dry-run       # tiny model on CPU: checks the script end to end
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PRESETS = {
    # ~1.0B total, ~0.3B active (the tied embedding counts once; the LM head is active)
    "1b": dict(hidden_size=1024, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
               num_experts=32, num_experts_per_tok=4, moe_intermediate_size=512, intermediate_size=2048,
               vocab_size=151_936),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                 num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, intermediate_size=64,
                 vocab_size=4096),
}  # fmt: skip


class OverBudget(Exception):
    """The time budget was spent before a phase could build its model or trainer."""


def count_params(cfg) -> tuple[int, int]:
    """(total, active per token) parameters of a Qwen3-MoE config (tied embeddings; the head is active)."""
    h, L, E, k = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_experts, cfg.num_experts_per_tok
    attn = h * cfg.head_dim * (cfg.num_attention_heads * 2 + cfg.num_key_value_heads * 2) + 2 * cfg.head_dim
    expert = 3 * h * cfg.moe_intermediate_size
    layer_total = attn + E * expert + h * E + 2 * h
    layer_active = attn + k * expert + h * E + 2 * h
    embed = cfg.vocab_size * h
    return embed + L * layer_total + h, embed + L * layer_active + h


def build(out: Path, preset: str, device: str):
    from memory import build_tokenizer
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    p = PRESETS[preset]
    tok = build_tokenizer(p["vocab_size"])
    cfg = Qwen3MoeConfig(
        **p,
        decoder_sparse_step=1,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        router_aux_loss_coef=0.0,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3MoeForCausalLM(cfg)
    model.to(torch.bfloat16)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    total, active = count_params(cfg)
    real = sum(t.numel() for t in model.parameters())
    del model
    return total, active, real


def snapshot(model) -> dict[str, torch.Tensor]:
    from ringrl.fsdp import full_value

    return {n: full_value(p.detach()).clone() for n, p in model.named_parameters()}


def changed_fraction(before: dict[str, torch.Tensor], model) -> float:
    from ringrl.fsdp import full_value

    changed = sum(int((before[n] != full_value(p.detach())).sum()) for n, p in model.named_parameters())
    return changed / sum(t.numel() for t in before.values())


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _score(rows, responses):
    return [float(len(r) % 2 == 0) for r in responses]


def run_sft(model_dir: Path, a, device: str, deadline: float) -> dict:
    from ringrl.common_config import make_optimizer
    from ringrl.config import load_config
    from ringrl.models.loading import is_moe, load_for_training, moe_top_k
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.trainer import clip_and_step, train_step

    if time.perf_counter() > deadline:
        raise OverBudget
    cfg = load_config(
        SFTConfig,
        overrides=[
            f"model.path={model_dir}",
            f"model.device={device}",
            "model.dtype=bfloat16",
            "optim.lr=3e-6",
            "optim.warmup_ratio=0",
        ],
    )
    model, tok = load_for_training(cfg.model, model_dir, device)
    model.train()
    before = snapshot(model)
    opt, sched = make_optimizer(model, cfg.optim, a.sft_steps)
    rng = random.Random(0)
    V, T = model.config.vocab_size, a.seq_len
    prompt = T // 8
    reset_peak(device)
    seconds, tokens, steps = 0.0, 0, 0
    for _ in range(a.sft_steps):
        if time.perf_counter() > deadline:  # no step starts once the budget is spent
            break
        ids = torch.tensor([[rng.randrange(100, V) for _ in range(T)] for _ in range(a.sft_seqs)])
        loss_mask = torch.ones_like(ids)
        loss_mask[:, :prompt] = 0
        group = [
            {"input_ids": ids[i : i + a.sft_micro], "attention_mask": torch.ones_like(ids[i : i + a.sft_micro]),
             "loss_mask": loss_mask[i : i + a.sft_micro]}
            for i in range(0, a.sft_seqs, a.sft_micro)
        ]  # fmt: skip
        sync(device)
        t0 = time.perf_counter()
        train_step(model, group, a.sft_seqs * (T - prompt), cfg, is_moe(model), moe_top_k(model), torch.device(device))
        clip_and_step(model, opt, sched, cfg.optim.grad_clip)
        sync(device)
        if steps > 0:  # the first step (allocator and kernel warm-up) is not timed
            seconds += time.perf_counter() - t0
            tokens += ids.numel()
        steps += 1
    out = {"steps": steps, "asked": a.sft_steps, "tokens": tokens, "seconds": seconds, "peak_gb": peak_gb(device)}
    out["updated"] = changed_fraction(before, model)
    del model, opt, before
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def run_rl(model_dir: Path, a, device: str, deadline: float, strategy: str = "ddp", steps: int | None = None) -> dict:
    from ringrl.config import load_config
    from ringrl.rl.config import RLConfig
    from ringrl.rl.trainer import RLTrainer

    L, K, new = a.prompts, a.samples, a.new_tokens
    n_steps = a.rl_steps if steps is None else steps
    if time.perf_counter() > deadline:
        raise OverBudget
    cfg = load_config(
        RLConfig,
        overrides=[
            f"model.path={model_dir}",
            f"model.device={device}",
            "model.dtype=bfloat16",
            "algo=c3po",
            f"parallel.strategy={strategy}",
            f"steps={n_steps}",
            f"rollout.prompts_per_step={L}",
            f"rollout.samples_per_prompt={K}",
            f"rollout.max_new_tokens={new}",
            f"rollout.batch_size={a.rollout_batch}",
            f"former.budget_tokens={max(new, L * K * new // 4)}",
            "max_fill_rounds=0",
            f"micro_batch_tokens={a.micro_batch_tokens}",
            "optim.lr=3e-6",
            "optim.warmup_ratio=0",
            "data.train_size=2000",
            "progress=false",
            "tensorboard=false",
            f"out={tempfile.mkdtemp()}",
        ],
    )
    trainer = RLTrainer(cfg, score=_score)
    try:
        return _rl_steps(trainer, n_steps, device, deadline)
    finally:  # also after a failed step: the next phase starts clean
        trainer.close()


def _rl_steps(trainer, n_steps: int, device: str, deadline: float) -> dict:
    """Up to ``n_steps`` steps of ``trainer`` (none started after ``deadline``) and their figures."""
    from ringrl.data.prompts import render_prompt

    before = snapshot(trainer.model)
    reset_peak(device)
    rows = []
    for _ in range(n_steps):
        if time.perf_counter() > deadline:  # no step starts once the budget is spent
            break
        sync(device)
        rows.append(trainer.step())
        sync(device)
    # the loss pass also runs each trained response's prompt through the model
    sample = trainer.stream.take(8)
    prompt_tokens = [
        len(trainer.tokenizer(render_prompt(trainer.tokenizer, r), add_special_tokens=False)["input_ids"])
        for r in sample
    ]
    return {
        "steps": len(rows),
        "asked": n_steps,
        "generated": sum(r["response_length/mean"] * r["rollout/responses"] for r in rows),
        "rollout_s": sum(r["time/rollout"] for r in rows),
        "trained": sum(r["train/tokens"] for r in rows),
        "train_s": sum(r["time/train"] for r in rows),
        "peak_gb": peak_gb(device),
        "updated": changed_fraction(before, trainer.model),
        "mean_prompt_tokens": sum(prompt_tokens) / max(1, len(prompt_tokens)),
        "responses_trained": sum(r["train/responses"] for r in rows),
    }


def rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny model on CPU, few steps: checks the script only")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="1b")
    ap.add_argument("--sft-steps", type=int, default=20, help="SFT optimizer steps (0: no SFT phase)")
    ap.add_argument("--sft-seqs", type=int, default=64, help="sequences per SFT step")
    ap.add_argument("--sft-micro", type=int, default=16, help="sequences per SFT micro-batch")
    ap.add_argument("--seq-len", type=int, default=1024, help="SFT sequence length")
    ap.add_argument("--rl-steps", type=int, default=5, help="RL steps with parallel.strategy=ddp (0: none)")
    ap.add_argument("--fsdp-rl-steps", type=int, default=2, help="RL steps with parallel.strategy=fsdp (0: none)")
    ap.add_argument("--prompts", type=int, default=32, help="L")
    ap.add_argument("--samples", type=int, default=8, help="K")
    ap.add_argument("--new-tokens", type=int, default=1024)
    ap.add_argument("--rollout-batch", type=int, default=256, help="sequences per generate call")
    ap.add_argument("--micro-batch-tokens", type=int, default=65536)
    ap.add_argument("--peak", type=float, default=989e12, help="peak FLOP/s for MFU (H200 dense bf16: 989e12)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="no phase or step starts after this many seconds")
    a = ap.parse_args(argv)
    if a.dry_run:  # the smallest run that goes through every phase (step counts may be lowered further)
        a.preset, a.sft_seqs, a.sft_micro, a.seq_len = "tiny", 4, 2, 64
        a.prompts, a.samples, a.new_tokens, a.rollout_batch = 2, 4, 16, 8
        a.sft_steps, a.rl_steps, a.fsdp_rl_steps = min(a.sft_steps, 2), min(a.rl_steps, 1), min(a.fsdp_rl_steps, 1)
    device = "cuda" if torch.cuda.is_available() and not a.dry_run else "cpu"
    if device == "cpu" and not a.dry_run:
        print("gpu_check: no CUDA device (use --dry-run to check the script on CPU)", file=sys.stderr)
        return 2
    if device == "cpu":
        torch.set_num_threads(1)
    from common import code_version

    from ringrl.fsdp import fsdp_supported

    t_start = time.perf_counter()
    deadline = t_start + a.budget_s
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; code {code_version()}", flush=True)
    results: dict = {"peak_flops": a.peak}
    failed: list[str] = []

    def mfu(factor: float, tokens: float, seconds: float) -> str:
        if device != "cuda" or seconds <= 0:
            return "n/a (CPU)" if device != "cuda" else "n/a"
        return f"{factor * results['active_params'] * tokens / seconds / a.peak:.1%}"

    def print_sft(r: dict) -> None:
        print(f"SFT: {r['steps']} of {r['asked']} steps ran (first untimed), {rate(r['tokens'], r['seconds']):,.0f} "
              f"tokens/s, MFU {mfu(6, r['tokens'], r['seconds'])}, peak memory {r['peak_gb']:.1f} GiB, "
              f"weights updated {r['updated']:.4f}", flush=True)  # fmt: skip

    def print_rl(r: dict) -> None:
        print(f"RL rollout: {r['steps']} of {r['asked']} steps ran, {r['generated']:,.0f} generated tokens, "
              f"{rate(r['generated'], r['rollout_s']):,.0f} tokens/s, "
              f"MFU (2 x active, no backward) {mfu(2, r['generated'], r['rollout_s'])}")  # fmt: skip
        processed = r["trained"] + r["responses_trained"] * r["mean_prompt_tokens"]
        print(f"RL loss pass + optimizer: {r['trained']:,} trained tokens (~{processed:,.0f} with prompts), "
              f"{rate(processed, r['train_s']):,.0f} tokens/s, MFU {mfu(6, processed, r['train_s'])} "
              "(reference forward not counted)")  # fmt: skip
        print(f"RL: peak memory {r['peak_gb']:.1f} GiB, weights updated {r['updated']:.4f}", flush=True)

    def print_fsdp(r: dict) -> None:
        f_ro, f_lp = rate(r["generated"], r["rollout_s"]), rate(r["trained"], r["train_s"])
        line = (f"RL fsdp (world size 1): {r['steps']} of {r['asked']} steps ran; rollout {f_ro:,.0f} generated "
                f"tokens/s; loss pass {f_lp:,.0f} trained tokens/s; peak memory {r['peak_gb']:.1f} GiB; "
                f"weights updated {r['updated']:.4f}")  # fmt: skip
        d = results.get("rl")
        if d:  # next to the ddp phase's figures
            line += (f" (ddp: rollout {rate(d['generated'], d['rollout_s']):,.0f}, loss pass "
                     f"{rate(d['trained'], d['train_s']):,.0f} tokens/s, peak {d['peak_gb']:.1f} GiB)")  # fmt: skip
        print(line, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "qwen3moe"
        try:
            total, active, real = build(model_dir, a.preset, device)
        except Exception as e:  # nothing can run without the model
            print(f"model: failed: {type(e).__name__}: {e}", flush=True)
            return 1
        results.update(active_params=active, total_params=real)
        print(f"model: random Qwen3-MoE '{a.preset}', {real / 1e6:,.1f}M parameters ({total / 1e6:,.1f}M by formula), "
              f"{active / 1e6:,.1f}M active per token; bf16 compute, float32 masters; built in "
              f"{time.perf_counter() - t_start:.0f} s", flush=True)  # fmt: skip
        phases = [
            ("sft", "SFT", a.sft_steps, lambda: run_sft(model_dir, a, device, deadline), print_sft),
            ("rl", "RL", a.rl_steps, lambda: run_rl(model_dir, a, device, deadline), print_rl),
            ("rl_fsdp", "RL fsdp", a.fsdp_rl_steps,
             lambda: run_rl(model_dir, a, device, deadline, "fsdp", a.fsdp_rl_steps), print_fsdp),
        ]  # fmt: skip
        for key, label, asked, run, show in phases:
            results[key] = None
            if asked <= 0:
                print(f"{label}: skipped (0 steps asked)", flush=True)
            elif key == "rl_fsdp" and not fsdp_supported():
                print(f"{label}: skipped: ringrl's fsdp needs torch >= 2.13 (FSDP2's "
                      f"set_reduce_scatter_unused_params); this is torch {torch.__version__}", flush=True)  # fmt: skip
            elif time.perf_counter() > deadline:
                print(f"{label}: skipped: the {a.budget_s:g} s budget is spent", flush=True)
            else:
                try:
                    results[key] = run()
                    show(results[key])
                except OverBudget:
                    print(f"{label}: skipped: the {a.budget_s:g} s budget is spent", flush=True)
                except Exception as e:  # one line, then the next phase
                    failed.append(label)
                    print(
                        f"{label}: failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True
                    )
                finally:
                    if device == "cuda":
                        torch.cuda.empty_cache()
    ran = ", ".join(
        f"{label} {results[k]['steps'] if results[k] else 0}/{n}"
        for k, label, n in (
            ("sft", "SFT", a.sft_steps),
            ("rl", "RL", a.rl_steps),
            ("rl_fsdp", "RL fsdp", a.fsdp_rl_steps),
        )
    )
    print(f"steps run: {ran}; MFU peak used: {a.peak:.3g} FLOP/s (H200 dense bf16); total "
          f"{time.perf_counter() - t_start:.0f} s{'; failed: ' + ', '.join(failed) if failed else ''}")  # fmt: skip
    print("JSON " + json.dumps(results), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
