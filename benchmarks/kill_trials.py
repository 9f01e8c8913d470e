"""Kill trials: SIGKILL ``ringrl sft`` at random moments, resume, and compare with an uninterrupted run.

One uninterrupted run (its training window measured: from the first metrics line to the
end), then TRIALS runs, each killed with SIGKILL at a random moment of its training window
(once its first step is logged, after a delay drawn uniformly from the window's length; a
checkpoint is written every step, so kills land in steps, in saves and between them) and
resumed with ``resume=true`` to the end. The finished run's weights must equal the uninterrupted
run's bit for bit (fp32, CPU, one thread), and every step must be logged once. Prints one line
per kill (when it landed: which checkpoints existed, leftovers of a torn save) and a summary.

    python benchmarks/kill_trials.py MODEL_DIR [--trials 10] [--seed 0]

MODEL_DIR: any small HF causal LM directory (e.g. one ``ringrl sft`` built under RUN/base).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sft_argv(model: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ringrl",
        "sft",
        f"model.path={model}",
        "model.device=cpu",
        "model.dtype=float32",
        f"out={out}",
        "data.train_size=20",
        "data.eval_size=2",
        "epochs=2",
        "batch_tokens=800",
        "grad_accum=2",
        "save_every=1",
        "optim.lr=1e-2",
        "optim.warmup_ratio=0.2",
        "entropy.max_new_tokens=4",
        "progress=false",
        "tensorboard=false",
        "threads=1",
    ]


def env() -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    return e


def wait_first_step(proc: subprocess.Popen, run: Path) -> float:
    """Wait until ``run`` logs its first step (or the process ends); returns that moment."""
    metrics = run / "metrics.jsonl"
    while proc.poll() is None and not (metrics.is_file() and metrics.stat().st_size > 0):
        time.sleep(0.02)
    return time.perf_counter()


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run / "checkpoints" / "epoch-2" / "model.safetensors")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="ringrl-kill-"))
    try:
        whole = tmp / "whole"
        proc = subprocess.Popen(
            sft_argv(args.model, whole), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started = wait_first_step(proc, whole)
        proc.wait()
        window = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr.read().decode()[-2000:])
            return 1
        ref = weights(whole)
        steps = len((whole / "metrics.jsonl").read_text().splitlines())
        print(f"uninterrupted: {steps} steps; training window (first step logged to exit) {window:.1f} s")
        kills, exact, resumes = 0, 0, 0
        for trial in range(args.trials):
            part = tmp / f"trial{trial}"
            proc = subprocess.Popen(
                sft_argv(args.model, part), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            wait_first_step(proc, part)
            delay = rng.uniform(0.0, window)
            try:
                proc.wait(timeout=delay)
                print(f"trial {trial}: finished before the kill ({delay:.1f} s after its first step)")
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                logged = len((part / "metrics.jsonl").read_text().splitlines())
                ckpts = sorted(p.name for p in (part / "checkpoints").glob("*"))
                print(
                    f"trial {trial}: killed {delay:.1f} s after its first step; {logged} steps logged; checkpoints {ckpts}"
                )
                res = subprocess.run(
                    [*sft_argv(args.model, part), "resume=true"], env=env(), capture_output=True, text=True
                )
                if res.returncode != 0:
                    print(f"trial {trial}: resume exited {res.returncode}: {res.stderr[-1000:]}")
                    return 1
                resumes += 1
            got = weights(part)
            same = got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)
            logged = [json.loads(line)["step"] for line in (part / "metrics.jsonl").read_text().splitlines()]
            ok = same and logged == list(range(1, steps + 1))
            exact += ok
            print(
                f"trial {trial}: {'bit-exact' if ok else 'DIFFERENT'} weights, steps logged once: {logged == list(range(1, steps + 1))}"
            )
        print(
            f"{kills} SIGKILLs, {resumes} resumed runs; {exact}/{args.trials} trials end with the uninterrupted weights"
        )
        return 0 if exact == args.trials else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
