"""bf16 compute over float32 master weights: autocast against a bf16 compute copy of the model.

Both arms run the same training step (the chunked token pass of
:func:`ringrl.models.forward.token_stats`, a weighted log-prob loss, backward, AdamW on
float32 masters) on the same batch:

* ``autocast``: the model's parameters are the float32 masters; the forward runs under
  ``torch.autocast(dtype=bfloat16)`` (what ringrl does: :func:`compute_autocast`).
* ``copy``: a bf16 copy of the model runs forward and backward without autocast; its
  gradients are upcast into the masters' ``.grad``, AdamW steps the masters, and the
  masters are copied back into the bf16 model.

Interleaved rounds (the arm order alternates), one torch thread; prints each arm's median
seconds per step and the ratio copy / autocast (> 1: autocast is faster). The model: a
Qwen2-MoE of ``--hidden`` width, 4 layers, 8 experts (top-2), vocabulary ``--vocab``.

    python benchmarks/autocast_vs_copy.py [--rounds 5] [--hidden 256] [--vocab 8192] [--tokens 2048]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from common import code_version, machine_line
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    from ringrl.models.forward import set_compute, token_stats

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--tokens", type=int, default=2048, help="tokens per step (sequences of 256)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    h = args.hidden
    cfg = Qwen2MoeConfig(
        vocab_size=args.vocab,
        hidden_size=h,
        intermediate_size=2 * h,
        moe_intermediate_size=h // 2,
        shared_expert_intermediate_size=2 * h,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=8,
        num_experts_per_tok=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    master = Qwen2MoeForCausalLM(cfg).train()
    set_compute(master, torch.bfloat16, 512)
    low = copy.deepcopy(master).to(torch.bfloat16)
    set_compute(low, torch.bfloat16, 512)
    opt = torch.optim.AdamW(master.parameters(), lr=3e-6)
    B = max(1, args.tokens // 256)
    ids = torch.randint(0, args.vocab, (B, 256))
    attn = torch.ones_like(ids)
    w = torch.full((B, 255), 1.0 / (B * 255))

    def step_autocast() -> None:
        st = token_stats(master, ids, attn)  # autocast to bf16 inside
        (-(w * st.logprobs_BT).sum()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def step_copy() -> None:
        st = token_stats(low, ids, attn)  # parameters already bf16: no autocast
        (-(w * st.logprobs_BT).sum()).backward()
        for pm, pl in zip(master.parameters(), low.parameters()):
            pm.grad = None if pl.grad is None else pl.grad.float()
            pl.grad = None
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for pm, pl in zip(master.parameters(), low.parameters()):
                pl.copy_(pm)

    arms = {"autocast": step_autocast, "copy": step_copy}
    for fn in arms.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in arms}
    for r in range(args.rounds):
        order = list(arms) if r % 2 == 0 else list(reversed(arms))
        for name in order:
            t0 = time.perf_counter()
            arms[name]()
            times[name].append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in master.parameters())
    print(f"machine: {machine_line()}\ncode: {code_version()}")
    print(f"model: Qwen2-MoE {n_params / 1e6:.1f}M parameters, vocab {args.vocab}; {B * 256} tokens per step")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:9s} median {v:.3f} s/step over {args.rounds} rounds")
    print(f"ratio copy / autocast: {med['copy'] / med['autocast']:.2f} (> 1: autocast is faster)")


if __name__ == "__main__":
    main()
