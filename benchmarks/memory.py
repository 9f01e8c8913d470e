"""Peak memory (RSS) of one RL step and one SFT step, by default with a 151,936-token vocabulary.

The model: a random Qwen3-MoE with Qwen's vocabulary size (``--vocab``, 151,936), hidden
size ``--hidden`` (64), tied embeddings, ``--layers`` (2) layers of 8 experts (top-2): at
the defaults about 10M parameters, 40 MB in float32, so that almost all memory a step takes
comes from the vocabulary dimension. Its tokenizer is a word-level tokenizer with
``--vocab`` entries (one token per character of the prompt).

Cases, each in a fresh subprocess (peak RSS is ``ru_maxrss`` of that process, which
includes the interpreter, torch and the model; ``load`` is the same figure just before
the step, so ``peak - load`` is the step's own); ``N`` is ``--new-tokens`` (256):

* ``rl_step``: one ``RLTrainer.step()`` (C3PO, L=4 prompts x K=8 samples x N new
  tokens, Phi = 32 x N so all 32 responses are trained, KL reference model on): the
  rollout through the tree's rollout engine (which keeps each sampled token's log-prob and
  entropy, never the stacked logits), reward (a fake verifier), loss pass, optimizer.
* ``rl_step_rollout_batch_4`` (not in the default list): the same with
  ``rollout.batch_size=4`` (the engine decodes 4 sequences per call instead of all 32).
* ``rl_loss_pass``: the trainer's loss pass + optimizer step alone on a formed batch of 32
  random responses of N tokens after a 150-token prompt (reference model included).
* ``sft_step``: one SFT optimizer step (``train_step`` + ``clip_and_step``) on 32
  sequences of 32 prompt + N response tokens.

Each case runs against this tree and, for comparison, against the code before the change
(commit ``--baseline``, default 4032c27, checked out in a temporary ``git worktree``).
Every subprocess runs under an address-space limit (``--limit-gb``, default 8) so that a
case that would take more memory fails fast with MemoryError instead of exhausting the
shared machine; such a case is reported as "> limit". One torch thread.

    python benchmarks/memory.py [--cases rl_step,rl_loss_pass,sft_step] [--limit-gb 8] [--no-baseline]
        [--vocab 151936] [--hidden 64] [--layers 2] [--new-tokens 256]
        [--set model.head_chunk_tokens=128 ...]   # overrides for every case (this tree's keys)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_SEQ, PROMPT_TOKENS = 32, 150


@dataclass(frozen=True)
class Shape:
    """The sizes one invocation measures (the driver's ``--vocab``, ``--hidden``, ``--layers``,
    ``--new-tokens``); the child processes get them through the environment."""

    vocab: int = 151_936  # Qwen's vocabulary size
    hidden: int = 64
    layers: int = 2
    new_tokens: int = 256  # response tokens per sequence (RL: new tokens per sample)


VOCAB = Shape().vocab


def build_tokenizer(vocab_size: int = VOCAB):
    """A word-level tokenizer with ``vocab_size`` entries: ChatML specials, one token per
    printable ASCII character, then filler tokens (a model's vocabulary size without a download)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {w: i for i, w in enumerate(specials + chars)}
    for i in range(len(vocab), vocab_size):
        vocab[f"~{i}"] = i
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>", additional_special_tokens=specials[:2]
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return fast


def build_model(out: Path, shape: Shape = Shape()) -> Path:
    """The random Qwen3-MoE of ``shape`` with a ``shape.vocab``-entry word-level tokenizer, saved to
    ``out`` (heads of 32 dimensions, half as many key/value heads, experts of ``hidden`` width)."""
    import torch
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    fast = build_tokenizer(shape.vocab)
    heads = max(2, shape.hidden // 32)
    cfg = Qwen3MoeConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=2 * shape.hidden,
        moe_intermediate_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=32,
        num_experts=8,
        num_experts_per_tok=2,
        decoder_sparse_step=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = Qwen3MoeForCausalLM(cfg)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.generation_config.eos_token_id = fast.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


# ----------------------------------------------------------------------------------- the cases (child)
def _score(rows, responses):
    return [float(len(r) % 2 == 0) for r in responses]  # mixed rewards, no reward pool


def _rl_trainer(model_dir: str, out: str, rollout_batch: int = 32):
    from ringrl.config import load_config
    from ringrl.rl.config import RLConfig
    from ringrl.rl.trainer import RLTrainer

    cfg = load_config(
        RLConfig,
        overrides=[
            f"model.path={model_dir}",
            "model.device=cpu",
            f"out={out}",
            "steps=1",
            "rollout.prompts_per_step=4",
            "rollout.samples_per_prompt=8",
            f"rollout.max_new_tokens={_shape().new_tokens}",
            f"rollout.batch_size={rollout_batch}",
            f"former.budget_tokens={N_SEQ * _shape().new_tokens}",
            "max_fill_rounds=0",
            "data.train_size=16",
            "progress=false",
            "threads=1",
            "tensorboard=false",
            *_extra(),
        ],
    )
    return RLTrainer(cfg, score=_score)


def case_rl_step(model_dir: str, out: str, rollout_batch: int = 32) -> dict:
    trainer = _rl_trainer(model_dir, out, rollout_batch)
    load = _rss_mb()
    m = trainer.step()
    trainer.close()
    generated = round(m["response_length/mean"] * m["rollout/responses"])
    return {"load_mb": load, "trained_tokens": m["train/tokens"], "generated_tokens": generated}


def case_rl_step_rollout_batch_4(model_dir: str, out: str) -> dict:
    """The whole RL step with the engine decoding 4 sequences per call instead of all 32."""
    return case_rl_step(model_dir, out, rollout_batch=4)


def case_rl_loss_pass(model_dir: str, out: str) -> dict:
    import random

    from ringrl.algorithms import assign_advantages
    from ringrl.algorithms.types import Sample, ScoredGroup

    trainer = _rl_trainer(model_dir, out)
    sh = _shape()
    rng = random.Random(0)
    groups = []
    for g in range(4):
        prompt = [rng.randrange(4, sh.vocab) for _ in range(PROMPT_TOKENS)]
        samples = [
            Sample(f"g{g}", i, prompt, [rng.randrange(4, sh.vocab) for _ in range(sh.new_tokens)], reward=float(i % 2))
            for i in range(8)
        ]
        groups.append(ScoredGroup(f"g{g}", samples))
    batch = trainer.former(assign_advantages(groups), [], trainer.cfg.former, random.Random(0))
    load = _rss_mb()
    trainer._train(batch)
    trainer.close()
    return {"load_mb": load, "trained_tokens": batch.n_tokens}


def case_sft_step(model_dir: str, out: str) -> dict:
    import random

    import torch

    from ringrl.common_config import make_optimizer
    from ringrl.config import load_config
    from ringrl.models.loading import is_moe, load_policy, moe_top_k
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.trainer import clip_and_step, train_step

    cfg = load_config(SFTConfig, overrides=[f"model.path={model_dir}", "model.device=cpu", "threads=1", *_extra()])
    try:  # this tree: float32 masters and the model.* settings
        from ringrl.models.loading import load_for_training

        model, _ = load_for_training(cfg.model, model_dir, "cpu")
    except ImportError:  # the code before the change
        model, _ = load_policy(model_dir, "cpu", "float32")
    model.train()
    opt, sched = make_optimizer(model, cfg.optim, 10)
    rng = random.Random(0)
    sh = _shape()
    T = 32 + sh.new_tokens
    ids = torch.tensor([[rng.randrange(4, sh.vocab) for _ in range(T)] for _ in range(N_SEQ)])
    mask = torch.ones_like(ids)
    loss_mask = mask.clone()
    loss_mask[:, :32] = 0
    group = [{"input_ids": ids, "attention_mask": mask, "loss_mask": loss_mask}]
    load = _rss_mb()
    train_step(model, group, N_SEQ * sh.new_tokens, cfg, is_moe(model), moe_top_k(model), torch.device("cpu"))
    clip_and_step(model, opt, sched, cfg.optim.grad_clip)
    return {"load_mb": load, "trained_tokens": N_SEQ * sh.new_tokens}


def case_sft_short_two_steps(model_dir: str, out: str) -> dict:
    """Two SFT optimizer steps on 8 short sequences (8 x 64 tokens): activations are small, so the
    peak is the weights, their gradients and AdamW's two moments: what LoRA (``--set
    model.lora.rank=8``) saves, since only the adapters then get gradients and optimizer state."""
    import random

    import torch

    from ringrl.common_config import make_optimizer
    from ringrl.config import load_config
    from ringrl.models.loading import is_moe, load_for_training, moe_top_k
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.trainer import clip_and_step, train_step

    cfg = load_config(SFTConfig, overrides=[f"model.path={model_dir}", "model.device=cpu", "threads=1", *_extra()])
    model, _ = load_for_training(cfg.model, model_dir, "cpu")
    model.train()
    opt, sched = make_optimizer(model, cfg.optim, 10)
    rng = random.Random(0)
    ids = torch.tensor([[rng.randrange(4, _shape().vocab) for _ in range(64)] for _ in range(8)])
    mask = torch.ones_like(ids)
    loss_mask = mask.clone()
    loss_mask[:, :16] = 0
    group = [{"input_ids": ids, "attention_mask": mask, "loss_mask": loss_mask}]
    load = _rss_mb()
    for _ in range(2):  # the second step's peak holds the optimizer state the first created
        train_step(model, group, 8 * 48, cfg, is_moe(model), moe_top_k(model), torch.device("cpu"))
        clip_and_step(model, opt, sched, cfg.optim.grad_clip)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"load_mb": load, "trained_tokens": 2 * 8 * 48, "trainable_params": trainable}


CASES = {
    "sft_short_two_steps": case_sft_short_two_steps,
    "rl_step": case_rl_step,
    "rl_step_rollout_batch_4": case_rl_step_rollout_batch_4,
    "rl_loss_pass": case_rl_loss_pass,
    "sft_step": case_sft_step,
}


def _extra() -> list[str]:
    """The ``--set`` overrides, passed to the child through the environment."""
    return json.loads(os.environ.get("RINGRL_MEMORY_SET", "[]"))


def _shape() -> Shape:
    """The driver's sizes, passed to the child through the environment."""
    return Shape(**json.loads(os.environ.get("RINGRL_MEMORY_SHAPE", "{}")))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(case: str, model_dir: str) -> None:
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        try:
            res = CASES[case](model_dir, str(Path(out) / "run"))
            res["ok"] = True
        except MemoryError as e:
            res = {"ok": False, "error": f"MemoryError ({str(e)[:80]})"}
        except RuntimeError as e:  # torch reports a failed allocation as RuntimeError
            if "alloc" not in str(e).lower() and "memory" not in str(e).lower():
                raise
            res = {"ok": False, "error": f"allocation failed ({str(e).splitlines()[0][:80]})"}
    res.update(peak_mb=_rss_mb(), seconds=time.perf_counter() - t0)
    print("RESULT " + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------------- the driver
def run_case(
    tree: Path, case: str, model_dir: Path, limit_gb: float, timeout: float, sets: list[str], shape: Shape = Shape()
) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["RINGRL_MEMORY_SET"] = json.dumps(sets)
    env["RINGRL_MEMORY_SHAPE"] = json.dumps(asdict(shape))
    limit = int(limit_gb * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, "--model-dir", str(model_dir)]
    try:
        p = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, timeout=timeout, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "error": f"exit {p.returncode}: {tail[:160]}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="rl_step,rl_loss_pass,sft_step")
    ap.add_argument("--limit-gb", type=float, default=8.0, help="address-space limit of each case (GiB)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    ap.add_argument("--baseline", default="4032c27", help="commit measured as 'before'")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every case (repeatable)"
    )
    ap.add_argument(
        "--lora",
        type=int,
        default=0,
        metavar="RANK",
        help="also run each case of this tree with model.lora.rank=RANK and print full / LoRA peak",
    )
    ap.add_argument("--vocab", type=int, default=Shape.vocab, help="vocabulary size (default: Qwen's 151,936)")
    ap.add_argument("--hidden", type=int, default=Shape.hidden, help="hidden size (heads of 32 dimensions)")
    ap.add_argument("--layers", type=int, default=Shape.layers, help="decoder layers (8 experts each, top-2)")
    ap.add_argument("--new-tokens", type=int, default=Shape.new_tokens, help="response tokens per sequence")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.model_dir)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import code_version, machine_line

    cases = [c for c in args.cases.split(",") if c]
    shape = Shape(args.vocab, args.hidden, args.layers, args.new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / f"qwen3moe-{shape.vocab}", shape)
        n_params = sum(
            p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(model_dir).parameters()
        )
        print(
            f"model: random Qwen3-MoE, vocabulary {shape.vocab}, hidden {shape.hidden}, {shape.layers} layers, "
            f"{n_params / 1e6:.1f}M parameters ({n_params * 4 / 1e6:.0f} MB fp32); {N_SEQ} sequences x "
            f"{shape.new_tokens} new/trained tokens"
        )
        print(f"machine: {machine_line()}\ncode: {code_version()}; limit {args.limit_gb:g} GiB address space per case")
        if args.set:
            print(f"overrides: {' '.join(args.set)}")
        trees = {"this tree": ROOT}
        base = Path(tmp) / "baseline"
        if not args.no_baseline:
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(base), args.baseline],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            trees[f"before ({args.baseline})"] = base
        try:
            results = {}
            for case in cases:
                for name, tree in trees.items():
                    r = run_case(tree, case, model_dir, args.limit_gb, args.timeout, args.set, shape)
                    results[case, name] = r
                    peak = (
                        f"{r['peak_mb']:.0f} MB peak (load {r['load_mb']:.0f} MB)"
                        if r.get("ok")
                        else "> limit / failed"
                    )
                    extra = f"{r.get('seconds', 0):.0f} s" if r.get("ok") else r.get("error", "")
                    if r.get("generated_tokens") is not None:
                        extra += f", {r['generated_tokens']} generated / {r['trained_tokens']} trained tokens"
                    print(f"{case:13s} {name:20s} {peak:32s} {extra}", flush=True)
                if args.lora:
                    full = results[case, "this tree"]
                    lora = run_case(
                        ROOT,
                        case,
                        model_dir,
                        args.limit_gb,
                        args.timeout,
                        [*args.set, f"model.lora.rank={args.lora}"],
                        shape,
                    )
                    if lora.get("ok"):
                        print(
                            f"{case:13s} {'LoRA rank ' + str(args.lora):20s} {lora['peak_mb']:.0f} MB peak "
                            f"(load {lora['load_mb']:.0f} MB); trainable {lora.get('trainable_params', '?')} "
                            f"of {full.get('trainable_params', '?')}"
                        )
                        if full.get("ok"):
                            print(f"{case:13s} ratio full / LoRA: {full['peak_mb'] / lora['peak_mb']:.2f}x")
                    else:
                        print(f"{case:13s} LoRA failed: {lora.get('error', '')}")
                if len(trees) == 2:
                    a, b = (results[case, n] for n in trees)
                    if a.get("ok") and b.get("ok"):
                        print(f"{case:13s} ratio before / this tree: {b['peak_mb'] / a['peak_mb']:.2f}x")
                    elif a.get("ok"):
                        print(
                            f"{case:13s} ratio before / this tree: > {args.limit_gb * 1024 / a['peak_mb']:.1f}x "
                            f"(before exceeded the {args.limit_gb:g} GiB limit)"
                        )
        finally:
            if base.exists():
                subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
