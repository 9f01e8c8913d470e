"""Data parallelism under torchrun on CPU (gloo, 2 processes), RL and SFT.

- The loss pass of a formed batch split over 2 ranks gives the one-process gradient and
  metrics, for every batch former, also when one rank has no sequence at all (DESIGN.md,
  "Scale-out": every rank divides by the same global denominator).
- ``torchrun -m ringrl rl`` trains with both ranks: one metrics file, exactly Phi tokens per
  step, the rollout gathered from both ranks, checkpoints that load with plain
  transformers (written only after the ranks' weights were checked equal).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("dp_worker.py")
_spec = importlib.util.spec_from_file_location("ringrl_dp_worker", WORKER)
_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_worker)
CASES = _worker.CASES
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch build has no torch.distributed"
)


LOG_ROOT: Path | None = None  # per-rank logs of every torchrun of this module (set by the fixture below)


@pytest.fixture(scope="module", autouse=True)
def _torchrun_logs(tmp_path_factory):
    global LOG_ROOT
    LOG_ROOT = tmp_path_factory.mktemp("torchrun-logs")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _run(cmd, timeout=240):
    """Run ``cmd``; under torchrun, check every rank: the launcher exits 0 only when every rank's exit
    code is 0 (a failed rank is named with its exit code in its report), and no rank's own log
    (``--log-dir``) shows an abort at exit."""
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout, cwd=ROOT)
    failed = re.findall(r"rank\s*:\s*(\d+)\s*\(local_rank: \d+\)\s*exitcode\s*:\s*(-?\d+)", res.stderr)
    assert res.returncode == 0, f"ranks (rank, exit code) failed: {failed}\n" + res.stdout[-2000:] + res.stderr[-4000:]
    if "--log-dir" in " ".join(map(str, cmd)):
        log_dir = Path(next(str(a).split("=", 1)[1] for a in cmd if str(a).startswith("--log-dir=")))
        n = int(next(str(a).split("=", 1)[1] for a in cmd if str(a).startswith("--nproc_per_node=")))
        logs = {int(p.parent.name): p.read_text() for p in log_dir.glob("*/attempt_0/*/stderr.log")}
        assert sorted(logs) == list(range(n)), f"per-rank logs: {sorted(logs)}"
        for rank, text in logs.items():
            assert "terminate called" not in text and "Traceback" not in text, f"rank {rank}:\n{text[-3000:]}"
    return res


def _torchrun(n, *args):
    """``python -m torch.distributed.run`` (no dependence on a ``torchrun`` script on PATH), each rank's
    output also written to its own log."""
    log_dir = Path(tempfile.mkdtemp(prefix="torchrun-", dir=LOG_ROOT))
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        f"--log-dir={log_dir}",
        "--tee=3",
        *args,
    ]


@pytest.fixture(scope="module")
def loss_pass_runs(tmp_path_factory, ringrl_moe_dir):
    """One process, then 2 ranks under DDP and under FSDP2 (parallel.strategy=fsdp)."""
    one = tmp_path_factory.mktemp("dp1")
    _run([sys.executable, str(WORKER), str(ringrl_moe_dir), str(one)])
    two = {}
    for strategy in ("ddp", "fsdp"):
        two[strategy] = tmp_path_factory.mktemp(f"dp2-{strategy}")
        _run(_torchrun(2, str(WORKER), str(ringrl_moe_dir), str(two[strategy]), strategy))
    return one, two


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_give_the_one_process_gradient(loss_pass_runs, case, strategy):
    """FSDP: the reduce-scattered shards, gathered whole, are the one-process gradient too (also when
    one rank holds no sequence and runs only zero-weight passes in step with the other)."""
    one_dir, two_dirs = loss_pass_runs
    two_dir = two_dirs[strategy]
    one = torch.load(one_dir / f"{case}-rank0.pt")
    ranks = [torch.load(two_dir / f"{case}-rank{r}.pt") for r in (0, 1)]
    assert one["world_size"] == 1 and all(r["world_size"] == 2 for r in ranks)
    # the batch really was split: each rank trained a part (in "lone" one rank had nothing)
    assert sum(r["sequences"] for r in ranks) == one["sequences"]
    if case == "lone":
        assert one["sequences"] == 1 and sorted(r["sequences"] for r in ranks) == [0, 1]
        assert one["batch_tokens"] == 3
    else:
        assert all(r["sequences"] > 0 for r in ranks)
    assert any(float(g.abs().max()) > 0 for g in one["grads"].values())
    for r in ranks:
        assert r["grads"].keys() == one["grads"].keys()
        for n, g in one["grads"].items():
            torch.testing.assert_close(r["grads"][n], g, atol=1e-6, rtol=1e-4, msg=f"{case}: {n}")
        for k in ("train/loss", "train/entropy", "train/kl", "train/clip_fraction", "train/logprob_mismatch"):
            assert r["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-4, abs=1e-7), (case, k)
    # after the all-reduce both ranks hold the very same gradient
    for n in one["grads"]:
        assert torch.equal(ranks[0]["grads"][n], ranks[1]["grads"][n]), n


def _rl_argv(model_dir, out):
    return [
        "-m",
        "ringrl",
        "rl",
        f"model.path={model_dir}",
        "model.device=cpu",
        f"out={out}",
        "steps=2",
        "save_every=1",
        "rollout.prompts_per_step=3",
        "rollout.samples_per_prompt=4",
        "rollout.max_new_tokens=8",
        "former.budget_tokens=40",
        "data.train_size=16",
        "optim.lr=1e-2",
        "optim.warmup_ratio=0",
        "threads=1",
        "reward_workers=1",
        "progress=false",
        "tensorboard=false",
    ]


def test_torchrun_rl_trains_on_two_ranks(tmp_path, ringrl_moe_dir):
    """Also the default suite's clean-exit check: every rank exits 0, no abort at exit in any rank's log."""
    out = tmp_path / "run"
    res = _run(_torchrun(2, *_rl_argv(ringrl_moe_dir, out)))
    assert res.stdout.count("over 2 steps") == 1, res.stdout  # rank 0 alone reports
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["train/tokens"] == 40
        assert r["rollout/responses"] >= 12  # 3 prompts x 4 samples, sampled by both ranks (1 and 2 prompts)
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "final")
    assert all(torch.isfinite(p).all() for p in final.parameters())
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
    assert json.loads((out / "run.json").read_text())["finished"] is True  # rank 0 kept the run record
    assert not (out / ".lock").exists()  # and released the lock


def test_a_locked_run_directory_stops_every_rank_with_one_line(tmp_path, ringrl_moe_dir):
    """Rank 0 takes the lock for all ranks: while another process holds it, the ranks exit 2 with
    the same line (or are stopped by torchrun once the first has), before any work."""
    from ringrl.utils.rundir import open_run_dir

    out = tmp_path / "run"
    held = open_run_dir(out, "rl", resume=False, overwrite=False)
    try:
        cmd = _torchrun(2, *_rl_argv(ringrl_moe_dir, out))
        res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240, cwd=ROOT)
    finally:
        held.close()
    assert res.returncode != 0
    codes = dict(re.findall(r"rank\s*:\s*(\d+)\s*\(local_rank: \d+\)\s*exitcode\s*:\s*(-?\d+)", res.stderr))
    # each rank exits 2 with its line, unless torchrun, seeing the first one exit, stopped it first (SIGTERM)
    assert "2" in codes.values() and set(codes.values()) <= {"2", "-15"}, res.stderr[-3000:]
    log_dir = Path(next(a.split("=", 1)[1] for a in cmd if a.startswith("--log-dir=")))
    for rank in (0, 1):
        (err,) = log_dir.glob(f"*/attempt_0/{rank}/stderr.log")
        lines = [line for line in err.read_text().splitlines() if "error:" in line]
        if codes.get(str(rank), "0") == "2":
            assert len(lines) == 1 and "is in use by process" in lines[0], err.read_text()[-2000:]
        assert "Traceback" not in err.read_text(), err.read_text()[-2000:]
    assert not (out / "config.yaml").exists()  # no rank started work


def test_torchrun_sft_matches_one_process_with_the_same_accumulation(tmp_path, ringrl_moe_dir):
    """2 ranks x grad_accum 1 take the same batches per optimizer step as 1 process x grad_accum 2:
    the same denominators, losses and (router terms off, so exactly) the same weights."""
    common = [
        f"model.path={ringrl_moe_dir}",
        "model.device=cpu",
        "data.train_size=24",
        "data.eval_size=2",
        "epochs=2",
        "batch_tokens=600",
        "optim.lr=1e-2",
        "optim.warmup_ratio=0",
        "alpha_balance=0",
        "alpha_zloss=0",
        "entropy.max_new_tokens=4",
        "progress=false",
        "tensorboard=false",
        "threads=1",
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "ringrl", "sft", *common, f"out={one}", "grad_accum=2"])
    res = _run(_torchrun(2, "-m", "ringrl", "sft", *common, f"out={two}", "grad_accum=1"))
    assert res.stdout.count("run directory") == 1, res.stdout
    m1, m2 = ([json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (one, two))
    assert len(m1) == len(m2) >= 4
    for a, b in zip(m1, m2):
        assert a["train/tokens"] == b["train/tokens"] and a["train/input_tokens"] == b["train/input_tokens"]
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-4)
    from safetensors.torch import load_file

    w1, w2 = (load_file(d / "checkpoints" / "epoch-2" / "model.safetensors") for d in (one, two))
    assert w1.keys() == w2.keys()
    for n in w1:
        torch.testing.assert_close(w2[n], w1[n], atol=1e-4, rtol=1e-4, msg=n)
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert s1["tokens_seen"] == s2["tokens_seen"] and len(s2["checkpoints"]) == 2


@pytest.mark.slow
@pytest.mark.timeout(2400)  # 20 launches of about 20-60 s each on a busy 2-core machine
def test_twenty_consecutive_two_rank_runs_exit_cleanly(tmp_path, ringrl_moe_dir):
    """The abort at exit seen in 3 of 14 runs (rank 1: ``terminate called without an active
    exception``, exit code 1 after a finished run) does not come back: 20 runs in a row, every
    rank exits 0 with a clean log (the default suite runs this once, above)."""
    for i in range(20):
        _run(_torchrun(2, *_rl_argv(ringrl_moe_dir, tmp_path / f"run{i}")))


def test_commands_that_run_on_one_process_refuse_torchrun(monkeypatch, capsys):
    from ringrl.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["eval", "--model", "nope", "--benchmarks", "gsm8k"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "under torchrun only sft, rl, pipeline" in err


def test_pooled_entropy_is_token_weighted_and_accuracy_sample_weighted():
    """Two ranks' shares of the held-out samples pooled into one measurement, by hand:
    rank 0: 2 samples of 10 tokens, entropy 0.5, accuracy 1/2; rank 1: 1 sample of 30 tokens, entropy 0.1, accuracy 1."""
    from ringrl.sft.evaluate import PolicyEval
    from ringrl.sft.trainer import pool_evals

    a = PolicyEval(entropy=0.5, accuracy=0.5, mean_length=10.0, problems=2, samples=2)
    b = PolicyEval(entropy=0.1, accuracy=1.0, mean_length=30.0, problems=1, samples=1)
    p = pool_evals([a, b])
    assert p.entropy == pytest.approx((0.5 * 20 + 0.1 * 30) / 50)
    assert p.accuracy == pytest.approx(2 / 3) and p.mean_length == pytest.approx(50 / 3)
    assert (p.problems, p.samples) == (3, 3)
    assert pool_evals([a]) is a
    empty = PolicyEval(entropy=0.0, accuracy=0.0, mean_length=0.0, problems=0, samples=0)  # a rank with no row
    assert pool_evals([a, empty]) == PolicyEval(entropy=0.5, accuracy=0.5, mean_length=10.0, problems=2, samples=2)


def test_torchrun_pipeline_trains_on_every_rank_and_writes_once(tmp_path, ringrl_moe_dir):
    """sft and rl stages data parallel, select/eval/report on rank 0; a re-run skips every stage."""
    out = tmp_path / "pipe"
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"""\
out: {out}
stages:
  - name: sft
    kind: sft
    config: {{model: {{path: {ringrl_moe_dir}, device: cpu}}, epochs: 1, data: {{train_size: 12, eval_size: 2}},
             batch_tokens: 600, entropy: {{max_new_tokens: 4}}, progress: false, tensorboard: false, threads: 1}}
  - name: select
    kind: select
    from: sft
    band: [0.0, 100.0]
  - name: rl
    kind: rl
    from: select
    config: {{model: {{device: cpu}}, steps: 2, rollout: {{prompts_per_step: 2, samples_per_prompt: 2, max_new_tokens: 8}},
             former: {{budget_tokens: 16}}, data: {{train_size: 8}}, reward_workers: 1, progress: false,
             tensorboard: false, threads: 1}}
  - name: eval
    kind: eval
    models: [rl]
    benchmarks: [synthetic-math]
    config: {{samples: 1, limit: 2, max_new_tokens: 8}}
  - name: report
    kind: report
""")
    res = _run(_torchrun(2, "-m", "ringrl", "pipeline", str(cfg)))
    assert res.stdout.count("pipeline finished") == 1, res.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["sft", "select", "rl", "eval", "report"]
    assert all((out / n / "stage.json").is_file() for n in ("sft", "select", "rl", "eval", "report"))
    rows = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["train/tokens"] == 16 for r in rows)
    assert (out / "report" / "report.html").is_file()
    again = _run(_torchrun(2, "-m", "ringrl", "pipeline", str(cfg)))
    assert again.stderr.count("done, skipped") == 5, again.stderr[-2000:]  # rank 0 alone says so
