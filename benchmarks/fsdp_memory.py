"""Memory per rank under ``parallel.strategy`` ddp and fsdp: the formulas of docs/scale.md, checked.

Launches ``torch.distributed.run`` with N CPU ranks (gloo) once per strategy. Each rank
builds the same random Qwen2-MoE (default about 60M parameters), wraps it as the trainers
do (``ringrl.distributed.wrap_model``; a frozen reference in the compute dtype, sharded
too under fsdp), makes the AdamW optimizer, and runs one training step (forward through
the chunked head, backward, optimizer step). It then reports, per rank:

* the bytes of the tensors it holds (its shards under fsdp): parameters, gradients, AdamW
  state, reference, and the total against the formula ``(16 + c) P / N`` (fsdp) or
  ``(16 + c) P`` (ddp) with c the compute dtype's bytes (4 here: float32 on CPU);
* the bytes of the whole model gathered for a rollout (fsdp: ``c P``, inside ``gathered``);
* the peak RSS of the process (``ru_maxrss``: interpreter, torch and activations included);
* seconds of a training step, of one no-grad forward of the batch, and of gathering the
  whole model for a rollout and freeing it after (fsdp: ``ringrl.fsdp.gathered``).

Prints one line per strategy and the ratio fsdp / ddp of the tensor bytes and of the peak RSS.

    python benchmarks/fsdp_memory.py [--ranks 2] [--hidden 512] [--layers 8] [--experts 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bytes(tensors) -> int:
    from torch.distributed.tensor import DTensor

    total = 0
    for t in tensors:
        local = t.to_local() if isinstance(t, DTensor) else t
        total += local.numel() * local.element_size()
    return total


def worker(args: argparse.Namespace) -> None:
    import copy

    import torch
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    from ringrl.common_config import ParallelConfig
    from ringrl.distributed import close_distributed, init_distributed, wrap_model
    from ringrl.fsdp import gathered, release, shard_model
    from ringrl.models.forward import token_stats

    torch.set_num_threads(1)
    torch.manual_seed(0)
    sharded = args.strategy == "fsdp"
    dist, _ = init_distributed("cpu", sharded=sharded)
    cfg = Qwen2MoeConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        moe_intermediate_size=args.hidden,
        shared_expert_intermediate_size=2 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=8,
        num_key_value_heads=4,
        num_experts=args.experts,
        num_experts_per_tok=2,
        tie_word_embeddings=False,
    )
    model = Qwen2MoeForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    ref = copy.deepcopy(model).requires_grad_(False)
    parallel = ParallelConfig(strategy=args.strategy)
    train_model = wrap_model(model, dist, parallel, torch.float32)
    if sharded:
        shard_model(ref, torch.float32, True, False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, args.vocab, (2, args.tokens), generator=torch.Generator().manual_seed(dist.rank))
    step_s = []
    for _ in range(2):  # the second step is timed (the first includes FSDP's lazy initialisation)
        t = time.perf_counter()
        st = token_stats(train_model, ids, torch.ones_like(ids), router=False)
        st.logprobs_BT.sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=False)
        step_s.append(time.perf_counter() - t)
    with torch.no_grad():  # one full forward, the unit of a rollout's cost (a decode step is cheaper)
        t = time.perf_counter()
        model(input_ids=ids)
        release(model)  # a no-grad pass leaves the root gathered (no backward to free it)
        forward_s = time.perf_counter() - t
    held = {
        "params": _bytes(model.parameters()),
        "grads": _bytes(p.grad for p in model.parameters() if p.grad is not None),
        "adam": _bytes(v for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0),
        "reference": _bytes(ref.parameters()),
    }
    gathered_bytes, gather_s = 0, 0.0
    if sharded:
        t = time.perf_counter()
        with gathered(model):
            gathered_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        gather_s = time.perf_counter() - t
    c = 4  # float32 compute on CPU
    world = max(1, dist.world_size)
    formula = (16 + c) * n_params / (world if sharded else 1)
    rec = {
        "strategy": args.strategy,
        "rank": dist.rank,
        "world": world,
        "parameters": n_params,
        **held,
        "total": sum(held.values()),
        "formula": formula,
        "gathered_for_rollout": gathered_bytes,
        "gather_s": gather_s,
        "step_s": step_s[-1],
        "forward_s": forward_s,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    print("RESULT " + json.dumps(rec), flush=True)
    close_distributed()


def launch(args: argparse.Namespace, strategy: str) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.ranks}"]
    cmd += [__file__, "--worker", "--strategy", strategy]
    cmd += [f"--{k}={getattr(args, k)}" for k in ("hidden", "layers", "experts", "vocab", "tokens")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return [json.loads(line[len("RESULT ") :]) for line in out.stdout.splitlines() if line.startswith("RESULT ")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--strategy", default="ddp", help=argparse.SUPPRESS)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--tokens", type=int, default=128, help="tokens per sequence of the training step (2 sequences)")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    mb = 1 / 2**20
    rows = {s: launch(args, s) for s in ("ddp", "fsdp")}
    for s, recs in rows.items():
        for r in sorted(recs, key=lambda r: r["rank"]):
            print(
                f"{s:4} rank {r['rank']}: P={r['parameters'] / 1e6:.1f}M  params {r['params'] * mb:7.1f} MiB  "
                f"grads {r['grads'] * mb:7.1f}  adam {r['adam'] * mb:7.1f}  reference {r['reference'] * mb:7.1f}  "
                f"total {r['total'] * mb:7.1f} (formula {r['formula'] * mb:7.1f})  "
                f"gathered for rollout {r['gathered_for_rollout'] * mb:6.1f}  peak RSS {r['peak_rss'] * mb:7.1f} MiB"
            )
            print(
                f"     training step {r['step_s']:.3f} s, one forward {r['forward_s']:.3f} s, "
                f"gathering the model for a rollout (and freeing it) {r['gather_s']:.3f} s"
            )
    worst = {s: max(recs, key=lambda r: r["peak_rss"]) for s, recs in rows.items()}
    tensors = max(r["total"] for r in rows["fsdp"]) / max(r["total"] for r in rows["ddp"])
    print(
        f"ratio fsdp/ddp per rank: tensors held {tensors:.3f}, peak RSS {worst['fsdp']['peak_rss'] / worst['ddp']['peak_rss']:.3f}"
    )


if __name__ == "__main__":
    main()
