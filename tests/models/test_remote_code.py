"""``model.trust_remote_code``: a model whose architecture is Python code in its own directory
(the way Ling/Ring's BailingMoe ships) is refused in one line without the key, never with a
prompt on standard input, and trains (SFT and RL, router terms included) with it."""

from __future__ import annotations

import json

import pytest
import torch

from ringrl.cli import main
from ringrl.config import load_config
from ringrl.errors import UserError
from ringrl.models.loading import is_moe, load_policy
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import RLTrainer
from ringrl.sft.config import SFTConfig
from ringrl.sft.trainer import train_sft

from .custom_moe import write_custom_moe


@pytest.fixture(scope="module")
def custom_dir(tmp_path_factory, ringrl_moe_dir):
    return write_custom_moe(tmp_path_factory.mktemp("custom") / "tinymoe", ringrl_moe_dir)


@pytest.fixture
def no_prompt(monkeypatch):
    """transformers asks ``[y/N]`` with input(); any such call fails the test."""

    def boom(*args, **kwargs):
        raise AssertionError(f"prompted on stdin: {args}")

    monkeypatch.setattr("builtins.input", boom)


def weights(path):
    model, _ = load_policy(path, "cpu", "float32", trust_remote_code=True)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_refused_without_the_key(custom_dir, no_prompt):
    with pytest.raises(UserError, match=r"config.json 'auto_map'.*model\.trust_remote_code=true"):
        load_policy(custom_dir, "cpu")


@pytest.mark.parametrize("command", ["sft", "rl"])
def test_cli_one_line_exit_2(custom_dir, tmp_path, capsys, no_prompt, command):
    code = main([command, f"model.path={custom_dir}", "model.device=cpu", f"out={tmp_path / 'run'}", "progress=false"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "model.trust_remote_code=true" in err, err


def test_eval_names_its_flag(custom_dir, tmp_path, capsys, no_prompt):
    code = main(["eval", "--model", str(custom_dir), "--benchmarks", "synthetic-math", "--limit", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--trust-remote-code" in err, err


def test_loads_as_a_moe_with_router_logits(custom_dir, no_prompt):
    model, _ = load_policy(custom_dir, "cpu", trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules.")  # the directory's own code
    assert is_moe(model)
    ids = torch.randint(5, 100, (2, 7))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_router_logits=True)
    assert len(out.router_logits) == 2 and out.router_logits[0].shape == (14, 4)


def test_rl_trains_with_the_key(custom_dir, tmp_path, ringrl_util, no_prompt):
    out = tmp_path / "rl"
    cfg = load_config(
        RLConfig,
        overrides=[
            f"model.path={custom_dir}",
            "model.device=cpu",
            "model.trust_remote_code=true",
            f"out={out}",
            "steps=2",
            "rollout.prompts_per_step=2",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=8",
            "former.budget_tokens=29",
            "data.train_size=8",
            "optim.lr=1e-2",
            "optim.warmup_ratio=0",
            "loss.alpha_balance=1e-2",
            "loss.alpha_zloss=1e-3",
            "progress=false",
            "threads=1",
            "tensorboard=false",
        ],
    )
    RLTrainer(cfg, score=ringrl_util.parity_score).fit()
    m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(m) == 2
    # the router terms come from the custom model's router logits
    assert all(r["moe/z_loss"] > 0 and r["moe/balance_loss"] > 0 for r in m)
    assert all(f"moe/load/layer{i}/expert{j}" in m[0] for i in range(2) for j in range(4))
    before, after = weights(custom_dir), weights(out / "checkpoints" / "final")
    moved = [n for n in before if not torch.equal(before[n], after[n])]
    assert any(".mlp.gate." in n for n in moved)  # the router is trained (balance + z-loss)
    assert len(moved) >= 0.9 * len(before), sorted(set(before) - set(moved))


def test_sft_trains_with_the_key(custom_dir, tmp_path, ringrl_util, no_prompt):
    out = tmp_path / "sft"
    cfg = load_config(
        SFTConfig,
        overrides=[
            f"model.path={custom_dir}",
            "model.device=cpu",
            "model.trust_remote_code=true",
            f"out={out}",
            "data.train_size=8",
            "data.eval_size=2",
            "epochs=1",
            "batch_tokens=1200",
            "optim.lr=1e-2",
            "optim.warmup_ratio=0",
            "entropy.max_new_tokens=4",
            "progress=false",
            "threads=1",
            "alpha_balance=1e-2",
        ],
    )
    train_sft(cfg, grader=ringrl_util.zero_grader)
    m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert m and all(r["moe/balance_loss"] > 0 for r in m)
    before, after = weights(custom_dir), weights(out / "checkpoints" / "epoch-1")
    assert sum(not torch.equal(before[n], after[n]) for n in before) >= 0.9 * len(before)


def test_curate_difficulty_with_a_custom_code_model(custom_dir, tmp_path, capsys, no_prompt):
    rows = [{"prompt": f"What is {a} + {a}?", "answer": str(2 * a), "domain": "math"} for a in (3, 5, 7)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["curate", str(src), "-o", str(tmp_path / "out.jsonl"), "--no-decontam", "--model", str(custom_dir)]
    args += ["--samples", "2", "--max-new-tokens", "4", "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--trust-remote-code" in err, err
    assert main([*args, "--trust-remote-code"]) == 0
    report = json.loads((tmp_path / "curation_report.json").read_text())
    # a random model answers nothing in 4 tokens: every row is "never solved"
    assert report["removed_by_filter"]["too_hard"] == 3 and report["rows_kept"] == 0
