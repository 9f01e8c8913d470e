"""Throughput of ``ringrl eval`` (a benchmark, not a timed test).

1. Responses mode: MATH-500 gold answers, boxed, graded as responses. Reports problems
   graded per second through ``evaluate_responses`` (with ``ringrl.rewards.RewardPool``
   when present, else an in-process Math-Verify grader), against a baseline measured in
   the same run: a bare loop of ``math_verify.parse`` + ``verify`` on the same items.
2. Model mode: generated tokens per second of ``TransformersGenerator`` on the embedded
   tiny MoE (``ringrl.models.tiny``; a random 2-layer Qwen2 when it is absent), against a
   bare ``model.generate`` loop on the same prompts and settings; plus end-to-end problems
   per second of ``run_eval`` (generation and grading).

    python benchmarks/eval_throughput.py [--problems 200] [--gen-problems 16] [--samples 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class Verdict:
    reward: float
    status: str
    detail: str = ""


class InProcessMathGrader:
    """Math-Verify in this process, one item at a time (used when RewardPool is absent)."""

    def score(self, rows: list[dict[str, Any]], responses: list[str]) -> list[Verdict]:
        from math_verify import parse, verify

        out = []
        for row, text in zip(rows, responses):
            pred = parse(text)
            if not pred:
                out.append(Verdict(0.0, "no_answer"))
                continue
            ok = verify(parse(f"${row['answer']}$"), pred)
            out.append(Verdict(1.0, "correct") if ok else Verdict(0.0, "wrong"))
        return out


def grader_context() -> tuple[str, Any]:
    try:
        from ringrl.rewards import RewardPool  # type: ignore[attr-defined]
    except ImportError:
        return "in-process Math-Verify grader (ringrl.rewards.RewardPool not available)", contextlib.nullcontext(
            InProcessMathGrader()
        )
    return "ringrl.rewards.RewardPool (default workers)", RewardPool()


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_responses(n: int, repeats: int) -> None:
    """Two response sets: the gold answers (RewardPool settles most by exact string match)
    and every problem answered with the next problem's gold (wrong; each goes through
    Math-Verify). The baseline verifies the same responses in a bare loop."""
    from math_verify import parse, verify

    from ringrl.eval import evaluate_responses, load_benchmark

    every = load_benchmark("math500").rows
    rows, warm = every[:n], every[n : n + 20]
    boxed = "So the answer is $\\boxed{{{}}}$."
    sets = {
        "gold answers": {r["id"]: [boxed.format(r["answer"])] for r in every},
        "next problem's answer (wrong)": {
            r["id"]: [boxed.format(every[(i + 1) % len(every)]["answer"])] for i, r in enumerate(every)
        },
    }

    def baseline(items: list[dict[str, Any]], responses: dict[str, list[str]]) -> int:
        return sum(bool(verify(parse(f"${r['answer']}$"), parse(responses[r["id"]][0]))) for r in items)

    label, ctx = grader_context()
    print(f"## responses mode: MATH-500, {len(rows)} problems, 1 boxed response each, best of {repeats}")
    print(f"grader: {label}")
    with ctx as grader:
        for what, responses in sets.items():
            baseline(warm, responses)  # first use of the parser (grammar, regexes) is not timed
            evaluate_responses(warm, responses, grader)
            base_s, ours_s = [], []
            for _ in range(repeats):  # alternate, keep the best of each: the machine is shared
                t, correct = timed(lambda responses=responses: baseline(rows, responses))
                base_s.append(t)
                t, res = timed(lambda responses=responses: evaluate_responses(rows, responses, grader, name="math500"))
                ours_s.append(t)
            b, o = min(base_s), min(ours_s)
            print(f"### {what}")
            print(f"baseline bare math_verify loop: {len(rows) / b:10.1f} problems/s ({correct}/{len(rows)} verified)")
            print(f"ringrl evaluate_responses:      {len(rows) / o:10.1f} problems/s (pass@1 {res['pass_at_1']:.4f})")
            print(f"ratio ringrl / baseline:        {b / o:10.2f}x")


def tiny_model_dir(root: Path) -> tuple[Path, str]:
    try:
        from ringrl.models.tiny import build_tiny
        from ringrl.tasks import corpus, make_split
    except ImportError:
        return random_qwen2(root), "random 2-layer Qwen2 (hidden 32)"
    rows = make_split("math", "train", 200, 0)
    return build_tiny(root / "tiny", corpus(rows)), "embedded tiny MoE (ringrl.models.tiny defaults, untrained)"


def random_qwen2(root: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["What is 12 + 30? Please reason step by step \\boxed{42}"] * 8, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    cfg = Qwen2Config(
        vocab_size=len(hf),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=hf.eos_token_id,
        pad_token_id=hf.pad_token_id,
    )
    torch.manual_seed(0)
    out = root / "qwen2"
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    hf.save_pretrained(out)
    return out


def bench_model(n: int, samples: int, max_new_tokens: int, batch_size: int, repeats: int, threads: int) -> None:
    import torch

    from ringrl.data.prompts import render_prompt
    from ringrl.errors import UserError
    from ringrl.eval import Benchmark, EvalConfig, TransformersGenerator, load_benchmark, load_model, run_eval
    from ringrl.eval.runner import generate_responses

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, what = tiny_model_dir(Path(tmp))
        model, tok = load_model(model_dir)
        try:
            bench = load_benchmark("synthetic-math", limit=n)
        except UserError:  # the embedded tasks are not available
            bench = load_benchmark("gsm8k", limit=n)
        cfg = EvalConfig(samples=samples, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=0, limit=n)
        gen = TransformersGenerator(model, tok)
        generate_responses(Benchmark(bench.name, bench.rows[:2], bench.source), gen, tok, cfg)  # warm-up

        def baseline() -> int:
            """Bare model.generate on the same batches and settings; generated non-pad tokens."""
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            count = 0
            for start in range(0, len(bench.rows), batch_size):
                prompts = [render_prompt(tok, r) for r in bench.rows[start : start + batch_size]]
                tok.padding_side = "left"
                enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
                torch.manual_seed(start)
                with torch.no_grad():
                    out = model.generate(
                        **enc,
                        do_sample=True,
                        temperature=1.0,
                        top_p=0.95,
                        top_k=0,
                        max_new_tokens=max_new_tokens,
                        num_return_sequences=samples,
                        pad_token_id=pad,
                    )
                count += int((out[:, enc["input_ids"].shape[1] :] != pad).sum())
            return count

        def ours() -> int:
            responses = generate_responses(bench, gen, tok, cfg)
            return sum(len(c.token_ids) for group in responses.values() for c in group)

        base, mine = [], []
        for _ in range(repeats):  # alternate, keep the best of each: the machine is shared
            t, k = timed(baseline)
            base.append(k / t)
            base_tokens = k
            t, k = timed(ours)
            mine.append(k / t)
            ours_tokens = k

        label, ctx = grader_context()
        with ctx as grader:
            e2e_s, _ = timed(lambda: run_eval(None, [bench.name], cfg, engine=gen, tokenizer=tok, grader=grader))
    params = sum(p.numel() for p in model.parameters())
    print(f"\n## model mode: {what}, {params / 1e6:.2f}M parameters")
    print(
        f"{len(bench.rows)} {bench.name} prompts x {samples} samples, max_new_tokens {max_new_tokens}, "
        f"batch {batch_size} prompts, temperature 1.0, top-p 0.95, {torch.get_num_threads()} threads"
    )
    print(
        f"baseline bare model.generate:    {max(base):8.1f} generated tokens/s ({base_tokens} tokens), best of {repeats}"
    )
    print(
        f"ringrl TransformersGenerator:    {max(mine):8.1f} generated tokens/s ({ours_tokens} tokens), best of {repeats}"
    )
    print(f"ratio ringrl / baseline:         {max(mine) / max(base):8.2f}x")
    print(
        f"run_eval end to end (prompts, generation, grading): {len(bench.rows) / e2e_s:.2f} problems/s, "
        f"{e2e_s:.2f} s ({label}; the untrained model's responses have no boxed answer, so grading is cheap)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=200, help="MATH-500 problems graded in responses mode")
    ap.add_argument("--gen-problems", type=int, default=16, help="prompts in model mode")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="alternating timed repeats; the best is reported")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on a shared 2-core machine 2 threads ran a tiny model about 5x slower than 1",
    )
    args = ap.parse_args()
    print(f"# eval throughput  ({platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()})")
    bench_responses(args.problems, args.repeats)
    bench_model(args.gen_problems, args.samples, args.max_new_tokens, args.batch_size, args.repeats, args.threads)


if __name__ == "__main__":
    main()
