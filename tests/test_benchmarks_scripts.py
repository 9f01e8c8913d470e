"""``benchmarks/gpu_check.py`` on CPU: ``--dry-run`` goes through every phase and prints each
phase's figures; on a torch without what ringrl's fsdp needs (simulated by removing FSDP2's
``set_reduce_scatter_unused_params``, the attribute ``ringrl.fsdp.fsdp_supported`` looks for) the
fsdp phase is skipped with a one-line note; a phase that raises is one line and the next phase
still runs (exit status 1); a spent time budget skips the phases left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check(ringrl_util):
    return ringrl_util.load_script("gpu_check")


def test_dry_run_prints_every_phase_figures():
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES="")
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--sft-steps", "2", "--rl-steps", "1", "--fsdp-rl-steps", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    lines = res.stdout.splitlines()
    for prefix in (
        "SFT: 2 of 2 steps ran (first untimed), ",
        "RL rollout: 1 of 1 steps ran, ",
        "RL loss pass + optimizer: ",
        "RL: peak memory ",
        "RL fsdp (world size 1): 1 of 1 steps ran; ",
        "steps run: SFT 2/2, RL 1/1, RL fsdp 1/1; ",
        "JSON ",
    ):
        assert any(line.startswith(prefix) for line in lines), (prefix, res.stdout)
    assert "tokens/s" in next(line for line in lines if line.startswith("SFT: "))
    assert "failed" not in res.stdout


def test_old_torch_skips_the_fsdp_phase_with_a_note(gpu_check, monkeypatch, capsys):
    from torch.distributed.fsdp import FSDPModule

    from ringrl.fsdp import fsdp_supported

    monkeypatch.delattr(FSDPModule, "set_reduce_scatter_unused_params")  # what torch < 2.13 lacks
    assert not fsdp_supported()
    rc = gpu_check.main(["--dry-run", "--sft-steps", "0", "--rl-steps", "0", "--fsdp-rl-steps", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    notes = [line for line in out.splitlines() if line.startswith("RL fsdp: ")]
    assert len(notes) == 1 and notes[0].startswith("RL fsdp: skipped: ringrl's fsdp needs torch >= 2.13"), out
    assert "steps run: SFT 0/0, RL 0/0, RL fsdp 0/1; " in out


def test_a_failing_phase_is_one_line_and_the_next_phase_runs(gpu_check, monkeypatch, capsys):
    def boom(*a, **k):
        raise RuntimeError("boom\nsecond line")

    reached = []
    monkeypatch.setattr(gpu_check, "run_sft", boom)
    monkeypatch.setattr(gpu_check, "run_rl", lambda *a, **k: reached.append(a[4:]) or boom())
    rc = gpu_check.main(["--dry-run", "--sft-steps", "2", "--rl-steps", "1", "--fsdp-rl-steps", "1"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "SFT: failed: RuntimeError: boom\n" in out and "second line" not in out
    assert "RL: failed: RuntimeError: boom\n" in out
    from ringrl.fsdp import fsdp_supported

    # the ddp RL phase ran after SFT failed, and the fsdp one after it (where this torch supports it)
    assert reached == ([(), ("fsdp", 1)] if fsdp_supported() else [()])
    assert ("; failed: SFT, RL, RL fsdp\n" if fsdp_supported() else "; failed: SFT, RL\n") in out


def test_a_spent_budget_skips_the_phases_left(gpu_check, capsys):
    rc = gpu_check.main(["--dry-run", "--budget-s", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    from ringrl.fsdp import fsdp_supported

    for label in ("SFT", "RL", "RL fsdp") if fsdp_supported() else ("SFT", "RL"):
        assert f"{label}: skipped: the 0 s budget is spent\n" in out
    assert "steps run: SFT 0/2, RL 0/1, RL fsdp 0/1; " in out
