"""Routing agreement and log-prob mismatch between KV-cache sampling and the training forward.

On the embedded tiny MoE (``ringrl.models.tiny`` defaults, untrained, built here), in
bf16 weights (and fp32 for reference), on CPU with one torch thread:

1. *Rollout*: ``model.generate`` samples ``--prompts`` left-padded prompts, batched,
   with a KV cache, under :func:`ringrl.models.routing.record`; the engine's log-prob of
   each sampled token comes from the step's logits (``output_logits``).
2. *Training forward*: the same sequences, padding stripped and re-batched the way a
   loss pass does it (right-padded micro-batches of ``--micro-batch`` rows, no cache),
   a) plain (baseline) and b) replaying the rollout's routing
   (:func:`ringrl.models.routing.routing_pass`, the call the loss pass makes).

Prints ``moe/routing_agreement`` (fraction of (layer, token) whose top-k set equals the
rollout's: the routing in force, and the router's own choice under replay) and the
per-token log-prob mismatch |log pi_train - log pi_engine| over response tokens
(mean, p99, max), plus the share of tokens whose ratio exp(diff) leaves [0.5, 2], and
the mean mismatch over the tokens the plain forward's routing flips can reach (response
tokens predicted at or after the first position of their sequence whose top-k, in any
layer, differs from the rollout's): the tokens replay is for.

    python benchmarks/routing_agreement.py [--prompts 32] [--max-new-tokens 96] [--micro-batch 4]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path

import torch
from common import code_version, machine_line

from ringrl.models.routing import record, routing_pass, routing_rows


def build(root: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ringrl.models.tiny import build_tiny
    from ringrl.tasks import corpus, make_split

    rows = make_split("math", "train", 200, 0)
    path = build_tiny(root / "tiny", corpus(rows))
    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "left"
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True)
        for r in make_split("math", "test", 64, 1)
    ]
    return AutoModelForCausalLM.from_pretrained(str(path)).eval(), tok, prompts


@torch.no_grad()
def measure(model, tok, prompts: list[str], max_new: int, micro: int, seed: int) -> dict[str, float]:
    enc = tok(prompts, return_tensors="pt", padding=True)
    B, P = enc.input_ids.shape
    torch.manual_seed(seed)
    with record(model) as rec:
        out = model.generate(
            **enc, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=max_new,
            return_dict_in_generate=True, output_logits=True,
        )  # fmt: skip
    seqs = out.sequences  # [B, P + n]
    n = seqs.shape[1] - P
    resp = seqs[:, P:]
    eos = model.generation_config.eos_token_id
    # response tokens up to and including the first EOS
    is_eos = resp == eos
    after = (is_eos.cumsum(1) - is_eos.long()) > 0
    resp_mask = ~after  # [B, n]
    step_lp = torch.stack([torch.log_softmax(s.float(), -1) for s in out.logits], 1)  # [B, n, V]
    engine_lp = step_lp.gather(-1, resp[..., None])[..., 0]  # [B, n]

    fed = torch.cat([enc.attention_mask.bool(), resp_mask[:, :-1]], 1)  # positions fed and real
    per_seq = rec.sequences(fed)  # [L, T_i, k]: prompt tokens then response tokens but the last
    lens = enc.attention_mask.sum(1) + resp_mask.sum(1)  # tokens per sequence incl. the last response token
    plens = enc.attention_mask.sum(1)

    affected: dict[int, torch.Tensor] = {}  # from the plain pass

    def train_pass(use_replay: bool):
        agree_on, agree_own, n_tok = 0.0, 0.0, 0
        diffs = []
        for s in range(0, B, micro):
            idx = list(range(s, min(s + micro, B)))
            T = int(lens[idx].max())
            ids = torch.full((len(idx), T), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros(len(idx), T, dtype=torch.long)
            for r, b in enumerate(idx):
                row = torch.cat([seqs[b, :P][enc.attention_mask[b].bool()], resp[b][resp_mask[b]]])
                ids[r, : len(row)] = row
                mask[r, : len(row)] = 1
            placed = routing_rows([per_seq[b] for b in idx], [(r, 0) for r in range(len(idx))], (len(idx), T))
            with routing_pass(model, placed, replay_routing=use_replay) as rp:
                logits = model(input_ids=ids, attention_mask=mask).logits
            used = rp.in_force.calls()[0]  # [L, N, k]: the routing in force (replayed or chosen)
            own = rp.replay.natural_calls()[0] if rp.replay is not None else used  # the routers' own choice
            m = int((placed[0, :, 0] >= 0).sum())  # recorded positions
            agree_on += rp.agreement() * m
            agree_own += rp.router_agreement() * m
            n_tok += m
            lp = torch.log_softmax(logits.float(), -1)
            own_LBTk = own.reshape(used.shape[0], len(idx), T, -1)
            placed_LBTk = placed.reshape(used.shape[0], len(idx), T, -1)
            flip_BT = (
                (own_LBTk.sort(-1).values != placed_LBTk.sort(-1).values).any(-1) & (placed_LBTk[..., 0] >= 0)
            ).any(0)
            for r, b in enumerate(idx):
                p0, nr = int(plens[b]), int(resp_mask[b].sum())
                train = lp[r, p0 - 1 : p0 - 1 + nr].gather(-1, resp[b, :nr, None])[..., 0]
                diffs.append(train - engine_lp[b, :nr])
                if not use_replay:  # response tokens whose prediction sees a routing flip (at or before it)
                    first = int(flip_BT[r].nonzero()[0]) if bool(flip_BT[r].any()) else T
                    affected[b] = torch.arange(p0 - 1, p0 - 1 + nr) >= first
        d = torch.cat(diffs)
        hit = torch.cat([affected[b] for b in range(B)])
        return {
            "affected": float(hit.sum()),
            "affected_mean_abs": float(d[hit].abs().mean()) if bool(hit.any()) else float("nan"),
            "agreement": agree_on / n_tok,
            "router_own_agreement": agree_own / n_tok,
            "mean_abs": float(d.abs().mean()),
            "p99_abs": float(d.abs().quantile(0.99)),
            "max_abs": float(d.abs().max()),
            "ratio_out_0.5_2": float(((d.exp() < 0.5) | (d.exp() > 2)).float().mean()),
            "tokens": float(d.numel()),
        }

    return {"plain": train_pass(False), "replay": train_pass(True), "steps": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine_line()}")
    print(f"code: {code_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        model, tok, prompts = build(Path(tmp))
    prompts = prompts[: args.prompts]
    for dtype in (torch.bfloat16, torch.float32):
        model = model.to(dtype)
        res = measure(model, tok, prompts, args.max_new_tokens, args.micro_batch, args.seed)
        print(
            f"### {str(dtype).removeprefix('torch.')} weights, {len(prompts)} prompts, {res['steps']} new tokens, micro-batch {args.micro_batch}"
        )
        print(
            "| training forward | moe/routing_agreement (in force) | router's own choice | mean abs dlogp | p99 | max "
            "| ratio outside [0.5, 2] | response tokens | mean abs dlogp after a flip (tokens) |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name in ("plain", "replay"):
            r = res[name]
            print(
                f"| {name} | {r['agreement']:.4f} | {r['router_own_agreement']:.4f} | {r['mean_abs']:.4g} | "
                f"{r['p99_abs']:.4g} | {r['max_abs']:.4g} | {r['ratio_out_0.5_2']:.4f} | {int(r['tokens'])} | "
                f"{r['affected_mean_abs']:.4g} ({int(r['affected'])}) |"
            )
        p, q = res["plain"]["mean_abs"], res["replay"]["mean_abs"]
        print(f"mean abs dlogp, replay / plain: {q / p:.3f}" if p else "mean abs dlogp plain is 0")
        a, c = res["plain"]["affected_mean_abs"], res["replay"]["affected_mean_abs"]
        print(f"mean abs dlogp after a flip, replay / plain: {c / a:.3f}" if a == a and a else "no routing flip")


if __name__ == "__main__":
    main()
