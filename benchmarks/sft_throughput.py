"""SFT training throughput: ringrl's step against a bare PyTorch loop (a benchmark, not a timed test).

Subject: the real SFT step of ``ringrl sft`` -- the denominator fixed before backward,
:func:`ringrl.sft.trainer.train_step` (``ringrl.models.forward.token_stats``: the chunked
output head with router logits, ``sft_loss_from_logprobs``, the MoE load-balance and
z-loss terms, backward per micro-batch) then :func:`ringrl.sft.trainer.clip_and_step` (global-norm clip, AdamW step, LR
schedule, zero_grad).

Baseline: a bare loop over the SAME model object and the SAME collated batches::

    logits = model(input_ids=..., attention_mask=..., use_cache=False).logits
    F.cross_entropy(logits[:, :-1], labels[:, 1:], ignore_index=-100, reduction="sum") / n_targets).backward()
    opt.step(); opt.zero_grad()

with a plain ``torch.optim.AdamW`` (no clipping, no schedule, no router terms).

Batches come from ``ringrl.sft.data`` (``encode_rows`` -> ``bucket_batches`` ->
``collate``) on embedded math rows; the model is the embedded tiny MoE
(``ringrl.models.tiny``: tokenizer trained on the rows, model freshly built) or any local
Hugging Face causal LM with ``--model-dir``. Both arms update the one shared model (each
with its own optimizer), so they see the same weights and the same MoE routing drift.

Timing: a few warm-up steps of each arm (not timed), then ``--repeats`` rounds; each
round runs one block of ``--block`` optimizer steps per arm on the same batches, the arm
order alternating between rounds (the machine is shared; interleaving cancels drift).
Reported: input (non-pad) tokens/s of each arm over all rounds, the per-round ratio
ringrl / bare (median, geometric mean, range), and the same ratio in CPU seconds
(``time.process_time``), which other load on a shared machine disturbs far less than wall
time. Target: ratio >= 0.9 (per-round median of the wall-time ratio).

    python benchmarks/sft_throughput.py [--repeats 30] [--block 2] [--batch-tokens 2048] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import common  # noqa: F401  (sets TOKENIZERS_PARALLELISM before tokenizers loads)


def build(args):
    """(model, tokenizer, description, device) for the run."""
    import torch

    from ringrl.models.loading import load_policy
    from ringrl.models.tiny import TinyModelConfig, build_model, train_tokenizer
    from ringrl.tasks import corpus, make_split

    if args.model_dir:
        model, tok = load_policy(args.model_dir, args.device, args.dtype)
        what = f"{args.model_dir} ({type(model).__name__})"
    else:
        cfg = TinyModelConfig()
        tok = train_tokenizer(corpus(make_split("math", "train", args.rows, seed=0)), cfg.vocab_size)
        model = build_model(cfg, tok)
        if args.device not in ("auto", "cpu"):
            model = model.to(args.device)
        what = "embedded tiny MoE (ringrl.models.tiny defaults, freshly built)"
    model.train()
    return model, tok, what, next(model.parameters()).device, torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=None, help="local HF causal LM directory (default: the embedded tiny MoE)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--rows", type=int, default=600, help="embedded math training rows to encode")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument(
        "--batch-tokens", type=int, default=2048, help="padded tokens per micro-batch (SFTConfig.batch_tokens)"
    )
    ap.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    ap.add_argument("--block", type=int, default=2, help="optimizer steps per timed block")
    ap.add_argument("--repeats", type=int, default=30, help="rounds (one block of each arm per round)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps of each arm first")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared: 1)")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    from common import geomean, header

    from ringrl.common_config import make_optimizer
    from ringrl.models.loading import is_moe, moe_top_k
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.data import bucket_batches, collate, encode_rows
    from ringrl.sft.trainer import clip_and_step, train_step
    from ringrl.tasks import make_split
    from ringrl.utils.checkpoint import quiet_transformers, seed_everything

    quiet_transformers()
    seed_everything(0)
    header("SFT throughput: ringrl train_step + clip_and_step vs a bare forward/backward/AdamW loop")
    model, tok, what, device, _ = build(args)
    cfg = SFTConfig(batch_tokens=args.batch_tokens, grad_accum=args.grad_accum, threads=args.threads)

    rows = make_split("math", "train", args.rows, seed=0)
    examples, skipped = encode_rows(tok, rows, args.max_length)
    lengths = [len(e.input_ids) for e in examples]
    if max(lengths) > args.batch_tokens:
        raise SystemExit(f"--batch-tokens {args.batch_tokens} is smaller than the longest example ({max(lengths)})")
    micro = [
        collate([examples[i] for i in b], tok.pad_token_id)
        for b in bucket_batches(lengths, args.batch_tokens, random.Random(0))
    ]
    steps = [micro[i : i + args.grad_accum] for i in range(0, len(micro) - args.grad_accum + 1, args.grad_accum)]
    for group in steps:  # the bare loop's labels: -100 outside the loss mask (data preparation, not timed)
        for g in group:
            g["labels"] = g["input_ids"].masked_fill(~g["loss_mask"], -100)
    needed = args.warmup + args.repeats * args.block
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {what}, {params / 1e6:.2f}M parameters, device {device}, dtype {next(model.parameters()).dtype}")
    print(
        f"data: {len(examples)} math rows ({skipped} over max_length), {len(micro)} micro-batches of <= "
        f"{args.batch_tokens} padded tokens, grad_accum {args.grad_accum}: {len(steps)} optimizer steps "
        f"(the run uses {needed} per arm, cycling)"
    )
    print(
        f"timing: {args.warmup} warm-up steps per arm, then {args.repeats} rounds x {args.block} steps per arm, "
        f"arm order alternating"
    )

    moe, top_k = is_moe(model), moe_top_k(model)
    opt_r, sched_r = make_optimizer(model, cfg.optim, needed)
    opt_b = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def on_device(group):
        return [{k: v.to(device) for k, v in g.items()} for g in group]

    def ringrl_step(group) -> None:
        denominator = sum(int(g["loss_mask"][:, 1:].sum()) for g in group)  # fixed before backward, as train_sft
        train_step(model, group, denominator, cfg, moe, top_k, device)
        clip_and_step(model, opt_r, sched_r, cfg.optim.grad_clip)

    def bare_loss(logits, labels, n: int):
        """Plain next-token cross-entropy over the labelled targets, divided by ``n``."""
        flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        return F.cross_entropy(flat, labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum") / n

    def bare_step(group) -> None:
        n = sum(int(g["loss_mask"][:, 1:].sum()) for g in group)
        for g in group:
            g = {k: v.to(device) for k, v in g.items()}
            logits = model(input_ids=g["input_ids"], attention_mask=g["attention_mask"], use_cache=False).logits
            bare_loss(logits, g["labels"], n).backward()
        opt_b.step()
        opt_b.zero_grad(set_to_none=True)

    # sanity: both objectives agree on the same weights and batch
    with torch.no_grad():
        from ringrl.models.forward import forward
        from ringrl.sft.loss import sft_loss

        g = on_device(steps[0])[0]
        logits, _ = forward(model, g["input_ids"], g["attention_mask"])
        n = int(g["loss_mask"][:, 1:].sum())
        ours = float(sft_loss(logits, g["input_ids"], g["loss_mask"], n)[0])
        bare = float(bare_loss(logits, g["labels"], n))
    print(f"loss on the first batch before training: ringrl sft_loss {ours:.6f}, bare cross-entropy {bare:.6f}")

    cursor = 0

    def take(k):
        nonlocal cursor
        out = [steps[(cursor + i) % len(steps)] for i in range(k)]
        cursor += k
        return out

    for group in take(args.warmup):
        ringrl_step(group)
        bare_step(group)

    arms = {"ringrl": ringrl_step, "bare": bare_step}
    secs = {"ringrl": [], "bare": []}
    cpu = {"ringrl": [], "bare": []}
    block_tokens = []
    print(f"\n{'round':>5} {'order':>12} {'tokens':>7} {'ringrl tok/s':>13} {'bare tok/s':>11} {'ratio':>6}")
    for r in range(args.repeats):
        block = [on_device(g) for g in take(args.block)]
        tokens = sum(int(g["attention_mask"].sum()) for group in block for g in group)
        block_tokens.append(tokens)
        order = ("ringrl", "bare") if r % 2 == 0 else ("bare", "ringrl")
        for name in order:
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            for group in block:
                arms[name](group)
            sync()
            secs[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        print(
            f"{r + 1:>5} {'/'.join(order):>12} {tokens:>7} {tokens / secs['ringrl'][-1]:>13.0f} "
            f"{tokens / secs['bare'][-1]:>11.0f} {secs['bare'][-1] / secs['ringrl'][-1]:>6.3f}"
        )

    total = sum(block_tokens)
    ratios = [b / o for b, o in zip(secs["bare"], secs["ringrl"])]
    tps_r, tps_b = total / sum(secs["ringrl"]), total / sum(secs["bare"])
    print(
        f"\nringrl train_step + clip_and_step: {tps_r:10.0f} input tokens/s ({total} tokens in {sum(secs['ringrl']):.1f} s)"
    )
    print(
        f"bare forward/backward/AdamW loop:  {tps_b:10.0f} input tokens/s ({total} tokens in {sum(secs['bare']):.1f} s)"
    )
    print(
        f"ratio ringrl / bare: overall {tps_r / tps_b:.3f}; per round median {statistics.median(ratios):.3f}, "
        f"geomean {geomean(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}"
    )
    cpu_ratios = [b / o for b, o in zip(cpu["bare"], cpu["ringrl"])]
    print(
        f"CPU-time ratio (process_time; less disturbed by other load): overall {sum(cpu['bare']) / sum(cpu['ringrl']):.3f}; "
        f"per round median {statistics.median(cpu_ratios):.3f}, range {min(cpu_ratios):.3f}-{max(cpu_ratios):.3f}"
    )
    verdict = "met" if statistics.median(ratios) >= 0.9 else "NOT met"
    print(f"target ratio >= 0.9 (per-round median): {verdict}")


if __name__ == "__main__":
    main()
