"""Sharded data parallelism (``parallel.strategy=fsdp``, FSDP2) on CPU: 2 gloo ranks under torchrun.

One torchrun launch (tests/fsdp_worker.py) trains RL and SFT under ddp and fsdp in the same
process group, and stops and resumes an fsdp RL run; the tests read its run directories:

- fsdp ends with the weights of ddp (max abs difference <= 1e-5 after 2 optimizer steps,
  float32; 1e-4 after 4 at lr 1e-2) and logs the same metrics;
- the rollout samples the weights the trainer just produced: the engine's log-probs equal
  the trainer's pi_old (``train/logprob_mismatch`` about 1e-7) under both strategies;
- checkpoints are plain Hugging Face directories (rank 0 writes the gathered weights) with
  the sharded resume state in ``distcp/``, and a resume after a kill continues exactly;
- resuming with another world size, or a ddp checkpoint with fsdp, is one line and exit 2.

The loss pass alone (fsdp gradients equal the one-process gradients, also with a rank that holds
no sequence) is tested in tests/test_distributed.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# the torchrun helpers, and their autouse fixture that gives every launch a per-rank log directory
from test_distributed import ROOT, _env, _run, _torchrun, _torchrun_logs  # noqa: F401

WORKER = Path(__file__).with_name("fsdp_worker.py")

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch build has no torch.distributed"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ringrl_moe_dir) -> Path:
    out = tmp_path_factory.mktemp("fsdp")
    cmd = _torchrun(2, str(WORKER), str(ringrl_moe_dir), str(out))
    _run(cmd, timeout=600)
    log_dir = Path(next(a.split("=", 1)[1] for a in cmd if a.startswith("--log-dir=")))
    for rank in (0, 1):
        (log,) = log_dir.glob(f"*/attempt_0/{rank}/stderr.log")
        (out / f"rank{rank}.log").write_text(log.read_text())
    return out


def test_rank_zero_alone_reports_monitor_alerts(runs):
    assert "alert length_at_cap at step 3" in (runs / "rank0.log").read_text()  # 8-token responses, all cut
    assert "alert " not in (runs / "rank1.log").read_text()


def _metrics(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


def _weights(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / name / "model.safetensors")


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_rl_fsdp_ends_with_the_ddp_weights(runs, ringrl_moe_dir):
    ddp, fsdp = runs / "rl-ddp", runs / "rl-fsdp"
    assert _max_diff(_weights(ddp, "step-2"), _weights(fsdp, "step-2")) <= 1e-5
    assert _max_diff(_weights(ddp, "final"), _weights(fsdp, "final")) <= 1e-4
    assert _max_diff(_weights(ddp, "final"), load_file(Path(ringrl_moe_dir) / "model.safetensors")) > 1e-2  # it trained
    a, b = _metrics(ddp), _metrics(fsdp)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    assert any(a[s]["batch/carried_trained"] > 0 for s in a)  # carried samples' pi_old came from a gathered pass
    for s in a:
        assert b[s]["train/tokens"] == a[s]["train/tokens"] == 40
        assert b[s]["reward/mean"] == a[s]["reward/mean"]  # the same rollouts
        for k in ("train/loss", "train/kl", "train/entropy", "train/grad_norm", "train/clip_fraction"):
            assert b[s][k] == pytest.approx(a[s][k], rel=1e-4, abs=1e-6), (s, k)


def test_hybrid_sharding_ends_with_the_ddp_weights(runs):
    ddp, hsdp = runs / "rl-ddp", runs / "rl-hsdp"
    assert _max_diff(_weights(ddp, "step-2"), _weights(hsdp, "step-2")) <= 1e-5
    assert _max_diff(_weights(ddp, "final"), _weights(hsdp, "final")) <= 1e-4


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "hsdp"])
def test_the_rollout_samples_the_trainers_pi_old(runs, strategy):
    for s, row in _metrics(runs / f"rl-{strategy}").items():
        assert 0 <= row["train/logprob_mismatch"] <= 1e-5, (s, row["train/logprob_mismatch"])


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_routing_replay_under_data_parallel(runs, strategy):
    """bf16 compute, 2 mini-batches: every rank's policy pass routes its tokens as its rollout did."""
    rows = _metrics(runs / f"replay-{strategy}")
    assert [r["moe/routing_agreement"] for r in rows.values()] == [1.0, 1.0]
    assert all(r["moe/balance_loss"] > 0 and r["train/grad_norm"] > 0 for r in rows.values())


def test_fsdp_checkpoint_is_a_plain_hf_directory_with_the_sharded_state_beside(runs, ringrl_moe_dir):
    from transformers import AutoModelForCausalLM

    ckpt = runs / "rl-fsdp" / "checkpoints" / "final"
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2MoeForCausalLM"]  # not the FSDP subclass
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    saved = _weights(runs / "rl-fsdp", "final")
    assert saved.keys() == load_file(Path(ringrl_moe_dir) / "model.safetensors").keys()  # tied head written once
    for n, p in model.state_dict().items():
        if n in saved:
            assert torch.equal(p, saved[n]), n
    shards = ckpt / "distcp"
    assert (shards / ".metadata").is_file() and len(list(shards.glob("*.distcp"))) == 2
    assert json.loads((shards / "ringrl.json").read_text()) == {"world_size": 2, "optimizer_started": True}
    blob = torch.load(ckpt / "optimizer.pt", weights_only=False)
    assert blob["optimizer"] is None and blob["scheduler"]  # the optimizer state lives in the shards
    assert not (ckpt / "master_weights.pt").exists()
    assert not list((runs / "rl-fsdp" / "checkpoints").glob(".*"))  # no staging directory left


def test_fsdp_resume_after_a_kill_continues_exactly(runs):
    whole, part = runs / "rl-fsdp", runs / "rl-part"
    assert json.loads((part / "summary.json").read_text())["resumed_from"].endswith("step-2")
    a, b = _metrics(whole), _metrics(part)
    assert sorted(b) == [1, 2, 3, 4]
    for s in (3, 4):
        for k in ("train/loss", "train/kl", "train/grad_norm", "reward/mean", "train/tokens", "train/lr"):
            assert b[s][k] == pytest.approx(a[s][k], rel=1e-6, abs=1e-7), (s, k)
    assert _max_diff(_weights(whole, "final"), _weights(part, "final")) <= 1e-6


def test_a_checkpoint_before_the_first_update_does_not_start_the_optimizer(runs):
    """Writing the sharded optimizer state of a fresh AdamW makes torch initialise it with a zero-lr
    step; were that kept, the first real update would be bias-corrected as AdamW's second (0.73x)."""
    assert (runs / "rl-rollback" / "checkpoints" / "step-0").is_dir()
    info = json.loads((runs / "rl-rollback" / "checkpoints" / "step-0" / "distcp" / "ringrl.json").read_text())
    assert info == {"world_size": 2, "optimizer_started": False}
    assert _max_diff(_weights(runs / "rl-fsdp", "step-2"), _weights(runs / "rl-rollback", "final")) <= 1e-6


def test_sft_fsdp_ends_with_the_ddp_weights(runs):
    """The same weights after 2 steps and after epoch 1 (whose last step leaves one rank without a
    batch) to 1e-5. Later checkpoints are compared loosely: float32 summation-order differences of
    1e-7 can flip a near-tied MoE top-k choice, and a token routed to another expert moves weights by
    about lr (seen once: 1 of 13,812 layer-token routings differed at such weights, and epoch 2 then
    differed by 4e-4 at lr 1e-2)."""
    ddp, fsdp = runs / "sft-ddp", runs / "sft-fsdp"
    assert _max_diff(_weights(ddp, "step-2"), _weights(fsdp, "step-2")) <= 1e-5
    assert _max_diff(_weights(ddp, "epoch-1"), _weights(fsdp, "epoch-1")) <= 1e-5
    assert _max_diff(_weights(ddp, "epoch-2"), _weights(fsdp, "epoch-2")) <= 2e-3
    a, b = _metrics(ddp), _metrics(fsdp)
    assert sorted(a) == sorted(b)
    for s in a:
        assert b[s]["train/loss"] == pytest.approx(a[s]["train/loss"], rel=1e-5)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (ddp, fsdp))
    for ca, cb in zip(sa["checkpoints"], sb["checkpoints"]):  # the gathered-weights evaluation
        assert cb["entropy"] == pytest.approx(ca["entropy"], rel=1e-4)


def _one_process_resume(run: Path, model_dir, strategy: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "ringrl",
        "rl",
        f"model.path={model_dir}",
        f"out={run}",
        f"parallel.strategy={strategy}",
        "resume=true",
        "steps=6",
        "model.device=cpu",
        "progress=false",
        "tensorboard=false",
        "reward_workers=1",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240, cwd=ROOT)


@pytest.mark.parametrize(
    "run, strategy, message",
    [
        ("rl-fsdp", "fsdp", "was written by 2 fsdp ranks and this run has 1"),
        ("rl-ddp", "fsdp", "has no sharded state (distcp/): it was written with parallel.strategy=ddp"),
        ("rl-fsdp", "ddp", "was written with parallel.strategy=fsdp (its masters and optimizer state are sharded"),
    ],
)
def test_resume_across_strategies_or_world_sizes_is_one_line(runs, ringrl_moe_dir, tmp_path, run, strategy, message):
    import shutil

    copy = tmp_path / run
    shutil.copytree(runs / run, copy)
    res = _one_process_resume(copy, ringrl_moe_dir, strategy)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and message in lines[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr


def test_cpu_offload_on_the_cpu_is_one_line(tmp_path, ringrl_moe_dir):
    cmd = [sys.executable, "-m", "ringrl", "rl", f"model.path={ringrl_moe_dir}", f"out={tmp_path / 'r'}"]
    cmd += ["model.device=cpu", "parallel.strategy=fsdp", "parallel.cpu_offload=true", "progress=false"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240, cwd=ROOT)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == (
        "ringrl rl: error: config key 'parallel.cpu_offload': offloads to host memory from a CUDA device; "
        "the model is on the CPU already"
    )
    assert not (tmp_path / "r").exists()  # refused at config time


def test_a_damaged_sharded_state_is_detected_before_anything_changes(runs, tmp_path):
    """``read_weights`` runs on rank 0 while it picks the checkpoint to resume from: an incomplete
    ``distcp/`` raises there (so an older checkpoint is taken); none at all (ddp) is left to the
    one-line error of the load."""
    import shutil

    from ringrl.fsdp import check_sharded

    ckpt = tmp_path / "final"
    shutil.copytree(runs / "rl-fsdp" / "checkpoints" / "final", ckpt)
    check_sharded(ckpt)
    sorted((ckpt / "distcp").glob("*.distcp"))[1].unlink()
    with pytest.raises(ValueError, match="incomplete"):
        check_sharded(ckpt)
    (ckpt / "distcp" / "ringrl.json").write_text("{")
    with pytest.raises(ValueError, match="unreadable"):
        check_sharded(ckpt)
    shutil.rmtree(ckpt / "distcp")
    check_sharded(ckpt)


@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
def test_parameters_no_rank_reaches_get_no_gradient(tmp_path, strategy):
    """A routed expert kept in its own module that got no token on one rank: FSDP reduces only the
    gradients that exist, so without ``set_reduce_scatter_unused_params`` the ranks' reduce-scatters
    differ in size (gloo: a collective mismatch; NCCL: a hang). With it: the mean of the ranks'. And
    one that no rank ran on real data (an idle pass does not count) has no gradient after
    ``drop_unreached_grads`` (not FSDP's or an idle pass's zeros), so AdamW skips it as on one
    process, under ddp too; a parameter in a ``ParameterDict`` counts as reached with its block, and
    one read directly by another module keeps its (nonzero) gradient."""
    _run(_torchrun(2, str(WORKER), "unused", str(tmp_path), strategy), timeout=240)
    for rank in (0, 1):
        saved = torch.load(tmp_path / f"unused-{strategy}-rank{rank}.pt")
        assert any(float(g.abs().max()) > 0 for n, g in saved["want"].items() if "experts.1" in n)
        for n, g in saved["want"].items():
            torch.testing.assert_close(saved["got"][n], g, msg=n)
        assert saved["kept"] == sorted(saved["want"])
        everything_but_expert_1 = sorted(n for n in saved["want"] if "experts.1" not in n)
        assert any("scale.a" in n for n in everything_but_expert_1)
        assert "side.weight" in everything_but_expert_1  # no holder ran, but its gradient is real: kept
        assert saved["kept_after_none"] == everything_but_expert_1
        assert saved["kept_after_idle"] == everything_but_expert_1


def test_torch_without_unused_parameter_reduction_is_refused_before_sharding(monkeypatch, ringrl_moe_dir):
    from torch.distributed.fsdp import FSDPModule

    from ringrl.errors import ConfigError
    from ringrl.fsdp import is_fsdp, shard_model
    from ringrl.models.loading import load_policy

    monkeypatch.delattr(FSDPModule, "set_reduce_scatter_unused_params")
    model, _ = load_policy(ringrl_moe_dir, "cpu", "float32")
    with pytest.raises(ConfigError, match=r"'parallel.strategy': fsdp needs torch >= 2.13"):
        shard_model(model, torch.float32, True, False)
    assert not is_fsdp(model)  # refused before anything was wrapped
