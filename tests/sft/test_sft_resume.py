"""SFT resume is exact: a run killed with SIGKILL (in the middle of a step, in the middle of a
checkpoint save, right after one) and resumed each time ends with the same weights, bit for
bit (fp32, CPU, one thread), and logs the same losses, as an uninterrupted run.

The kills are real ``kill -9`` of a ``python -m ringrl sft`` subprocess; where they land is made
deterministic by a wrapper that sends the signal from inside a patched ``AdamW.step``,
``torch.save`` (``optimizer.pt`` written into the temporary checkpoint directory, not yet
renamed) or ``os.replace`` (a checkpoint directory just renamed into place).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

KILLER = r"""
import os, signal, sys
from pathlib import Path
mode, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
count = [0]

def hit():
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)

import torch
if mode == "mid-step":
    real_step = torch.optim.AdamW.step
    def step(self, *a, **k):
        hit()
        return real_step(self, *a, **k)
    torch.optim.AdamW.step = step
elif mode == "mid-save":
    real_save = torch.save
    def save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        hit()
    torch.save = save
elif mode == "after-save":
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        if Path(dst).parent.name == "checkpoints" and not Path(dst).name.startswith("."):
            hit()
    os.replace = replace
from ringrl.cli import main
sys.exit(main(args))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _args(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "sft",
        f"model.path={model_dir}",
        "model.device=cpu",
        "model.dtype=float32",
        f"out={out}",
        "data.train_size=20",
        "data.eval_size=2",
        "epochs=2",
        "batch_tokens=800",
        "grad_accum=2",
        "save_every=2",
        "optim.lr=1e-2",
        "optim.warmup_ratio=0.2",
        "entropy.max_new_tokens=4",
        "progress=false",
        "tensorboard=false",
        "threads=1",
        *extra,
    ]


def _run(argv: list[str], kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    cmd = (
        [sys.executable, "-c", KILLER, kill[0], str(kill[1]), *argv]
        if kill
        else [sys.executable, "-m", "ringrl", *argv]
    )
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300, cwd=ROOT)


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["train/loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


def test_sigkill_at_any_point_then_resume_gives_the_uninterrupted_weights(tmp_path, ringrl_moe_dir):
    whole, part = tmp_path / "whole", tmp_path / "part"
    res = _run(_args(ringrl_moe_dir, whole))
    assert res.returncode == 0, res.stderr[-3000:]
    steps = max(_losses(whole))
    epoch1 = json.loads((whole / "checkpoints" / "epoch-1" / "trainer_state.json").read_text())["step"]
    assert steps >= 6 and 3 <= epoch1 < steps  # enough steps for a step checkpoint before and after epoch 1

    # 1. killed in the middle of optimizer step 3 (after the step-2 checkpoint)
    res = _run(_args(ringrl_moe_dir, part), kill=("mid-step", 3))
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    assert sorted(p.name for p in (part / "checkpoints").iterdir()) == ["step-2"]
    # 2. resumed, then killed in the middle of its first checkpoint save (optimizer.pt written, not renamed)
    res = _run(_args(ringrl_moe_dir, part, "resume=true"), kill=("mid-save", 1))
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    assert any(p.name.endswith(".tmp") for p in (part / "checkpoints").iterdir())  # the torn save is there
    # 3. resumed (the leftovers go), then killed right after its second checkpoint is complete
    res = _run(_args(ringrl_moe_dir, part, "resume=true"), kill=("after-save", 2))
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    assert "temporary file(s) of an interrupted save" in res.stderr
    assert not any(p.name.startswith(".") for p in (part / "checkpoints").iterdir())
    # 4. resumed to the end
    res = _run(_args(ringrl_moe_dir, part, "resume=true"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from" in res.stderr

    from safetensors.torch import load_file

    for epoch in (1, 2):
        wa, wb = (load_file(d / "checkpoints" / f"epoch-{epoch}" / "model.safetensors") for d in (whole, part))
        assert wa.keys() == wb.keys()
        for name in wa:
            assert wa[name].dtype == torch.float32
            assert torch.equal(wa[name], wb[name]), (epoch, name)
    la, lb = _losses(whole), _losses(part)
    assert sorted(lb) == list(range(1, steps + 1))  # every step once: lines past a checkpoint were dropped
    assert all(la[s] == lb[s] for s in la), [(s, la[s], lb[s]) for s in la if la[s] != lb[s]]
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (whole, part))
    assert sa["tokens_seen"] == sb["tokens_seen"]
    for ca, cb in zip(sa["checkpoints"], sb["checkpoints"], strict=True):
        for k in ("name", "step", "tokens_seen", "entropy", "accuracy"):
            assert ca[k] == cb[k], k
    assert json.loads((part / "run.json").read_text())["finished"] is True


def test_a_finished_sft_run_is_refused_then_resumed_as_a_no_op(tmp_path, ringrl_moe_dir, ringrl_util):
    """A re-run without resume is one line and exit 2; resume=true of a finished run trains nothing more."""
    from ringrl.cli import main
    from ringrl.config import load_config
    from ringrl.errors import UserError
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.trainer import train_sft

    out = tmp_path / "run"
    argv = _args(ringrl_moe_dir, out, "epochs=1", "save_every=0")[1:]
    first = train_sft(load_config(SFTConfig, overrides=argv), grader=ringrl_util.zero_grader)
    with pytest.raises(UserError, match="holds a finished sft run"):
        train_sft(load_config(SFTConfig, overrides=argv), grader=ringrl_util.zero_grader)
    assert main(["sft", *argv]) == 2
    again = train_sft(load_config(SFTConfig, overrides=[*argv, "resume=true"]), grader=ringrl_util.zero_grader)
    assert again["checkpoints"] == first["checkpoints"] and again["tokens_seen"] == first["tokens_seen"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == first["checkpoints"][-1]["step"]


def test_nonfinite_sft_losses_are_skipped_counted_and_stop_the_run(tmp_path, ringrl_moe_dir, ringrl_util, monkeypatch):
    """A NaN loss on every step: each update is skipped (weights unchanged), logged, and the run stops
    after max_nonfinite with one line; the progress text shows 'nan' instead of crashing."""
    from ringrl.config import load_config
    from ringrl.sft import trainer as sft_trainer
    from ringrl.sft.config import SFTConfig

    real = sft_trainer.sft_loss_from_logprobs

    def nan_loss(*a, **k):
        loss, m = real(*a, **k)
        return loss * float("nan"), {**m, "nll_sum": m["nll_sum"] * float("nan")}

    monkeypatch.setattr(sft_trainer, "sft_loss_from_logprobs", nan_loss)
    out = tmp_path / "nan"
    cfg = load_config(SFTConfig, overrides=[*_args(ringrl_moe_dir, out, "max_nonfinite=3", "progress=true")[1:]])
    with pytest.raises(sft_trainer.NonFiniteStop, match=r"3 updates skipped .*max_nonfinite=3.*stopping at step 3"):
        sft_trainer.train_sft(cfg, grader=ringrl_util.zero_grader)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/skipped_nonfinite"] for r in rows] == [1, 1, 1]
    assert all(r["train/loss"] == "nan" for r in rows)
    # no update was applied: the saved step-2 checkpoint holds the initial weights
    base = ringrl_util.load_weights(ringrl_moe_dir)
    after = ringrl_util.load_weights(out / "checkpoints" / "step-2")
    assert all(torch.equal(base[n], after[n]) for n in base)
    assert not math.isnan(json.loads((out / "checkpoints" / "step-2" / "trainer_state.json").read_text())["elapsed"])
