"""Bad input for ``ringrl rl``: config errors at start (one line, exit 2); a NaN loss or gradient
skips the update, is logged, stops the run after ``max_nonfinite``, and never reaches a checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

import ringrl.rl.trainer as trainer_mod
import ringrl.rl.update as update_mod
from ringrl.cli import main
from ringrl.config import load_config
from ringrl.errors import ConfigError
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import NonFiniteStop, RLTrainer

BASE = [
    "model.device=cpu",
    "steps=5",
    "rollout.prompts_per_step=2",
    "rollout.samples_per_prompt=4",
    "rollout.max_new_tokens=8",
    "former.budget_tokens=24",
    "data.train_size=8",
    "optim.lr=1e-2",
    "loss.beta=0.1",
    "progress=false",
    "threads=1",
    "tensorboard=false",
    "save_every=1",
    "max_nonfinite=2",
]


def nan_score(rows, responses):
    return [float("nan")] * len(responses)


def assert_finite_checkpoints(out, util):
    for d in (out / "checkpoints").glob("*"):
        assert not d.name.startswith("."), f"temporary directory left: {d}"
        assert all(torch.isfinite(p).all() for p in util.load_weights(d).values()), d


def test_nan_rewards_skip_updates_and_stop(tmp_path, ringrl_moe_dir, ringrl_util):
    out = tmp_path / "nan"
    cfg = load_config(RLConfig, overrides=[f"model.path={ringrl_moe_dir}", f"out={out}", *BASE])
    trainer = RLTrainer(cfg, score=nan_score)
    with pytest.raises(NonFiniteStop, match="max_nonfinite=2"):
        trainer.fit()
    m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in m] == [1, 2]  # stopped after the second skip
    assert all(r["train/skipped_nonfinite"] == 1 for r in m)
    # no update happened: the weights are the initial ones
    init = ringrl_util.load_weights(ringrl_moe_dir)
    for n, p in trainer.model.named_parameters():
        assert torch.equal(p.detach(), init[n]), n
    assert not (out / "checkpoints" / "final").exists()
    assert_finite_checkpoints(out, ringrl_util)


def test_nan_loss_via_cli_exit_2(tmp_path, ringrl_moe_dir, ringrl_util, monkeypatch, capsys):
    """A loss that turns non-finite after one good step: the good update stays, the bad ones are skipped."""
    real_loss, real_train_rl = update_mod.policy_loss, trainer_mod.train_rl
    calls = {"n": 0}

    def flaky_loss(*args, **kwargs):
        loss, m = real_loss(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("inf") if calls["n"] > 1 else loss), m

    monkeypatch.setattr(update_mod, "policy_loss", flaky_loss)
    # the CLI builds its own reward pool; give it the fake verifier instead
    monkeypatch.setattr(
        trainer_mod, "train_rl", lambda cfg, score=None: real_train_rl(cfg, score=ringrl_util.parity_score)
    )
    out = tmp_path / "cli"
    code = main(["rl", f"model.path={ringrl_moe_dir}", f"out={out}", "micro_batch_tokens=100000", *BASE])
    err = capsys.readouterr().err.strip()
    assert code == 2
    *alerts, last = err.splitlines()
    assert last.startswith("ringrl rl: error: ") and "updates skipped for a non-finite loss or gradient" in last
    assert all(line.startswith("alert ") for line in alerts), alerts  # the stability monitor's lines, no traceback
    assert any(line.startswith("alert skipped_updates at step 3") for line in alerts)
    m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/skipped_nonfinite"] for r in m] == [0, 1, 1]
    assert m[1]["train/loss"] in ("inf", "nan", "-inf")  # logged, visible as a string
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-1", "step-2"]
    assert_finite_checkpoints(out, ringrl_util)
    # step-2's weights are step-1's: the non-finite update was skipped
    w1 = ringrl_util.load_weights(out / "checkpoints" / "step-1")
    w2 = ringrl_util.load_weights(out / "checkpoints" / "step-2")
    assert all(torch.equal(w1[n], w2[n]) for n in w1)
    assert not all(torch.equal(w1[n], v) for n, v in ringrl_util.load_weights(ringrl_moe_dir).items())


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["former.budget_tokens=100", "rollout.max_new_tokens=200"], "former.budget_tokens"),
        (["rollout.samples_per_prompt=1"], "rollout.samples_per_prompt"),
        (["loss.eps_low=1.0"], "loss.eps_low"),
        (["loss.eps_low=-0.1"], "loss.eps_low"),
        (["loss.eps_high=-0.2"], "loss.eps_high"),
        (["loss.beta=-1"], "loss.beta"),
        (["algo=ppo"], "algo"),
        (["rollout.top_p=0"], "rollout.top_p"),
        (["former.leftover=keep"], "former.leftover"),
    ],
)
def test_config_errors_one_line_via_cli(tmp_path, capsys, ringrl_moe_dir, overrides, key):
    with pytest.raises(ConfigError):
        load_config(RLConfig, overrides=overrides)
    code = main(["rl", f"model.path={ringrl_moe_dir}", f"out={tmp_path / 'run'}", *overrides])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"ringrl rl: error: config key '{key}'"), err
    assert not (tmp_path / "run").exists()  # rejected before anything ran


def test_budget_check_is_c3po_only():
    cfg = load_config(RLConfig, overrides=["algo=grpo", "former.budget_tokens=100", "rollout.max_new_tokens=200"])
    assert cfg.former.budget_tokens == 100


def test_reference_with_another_tokenizer_is_rejected(tmp_path, capsys, ringrl_moe_dir, ringrl_other_tok_dir):
    code = main(
        [
            "rl",
            f"model.path={ringrl_moe_dir}",
            f"ref_model={ringrl_other_tok_dir}",
            f"out={tmp_path / 'run'}",
            "loss.beta=0.001",
            "progress=false",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "config key 'ref_model'" in err and "different tokenizer" in err


def test_missing_model_path_and_non_causal_model(tmp_path, capsys):
    from transformers import BertConfig

    assert main(["rl", f"out={tmp_path / 'run'}"]) == 2
    assert "config key 'model.path'" in capsys.readouterr().err
    BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        architectures=["BertForMaskedLM"],
    ).save_pretrained(tmp_path / "bert")
    assert main(["rl", f"model.path={tmp_path / 'bert'}", f"out={tmp_path / 'run'}"]) == 2
    assert "not a causal language model" in capsys.readouterr().err


def test_malformed_rl_row_names_file_line_field(tmp_path, capsys, ringrl_moe_dir):
    data = tmp_path / "rl.jsonl"
    data.write_text(
        json.dumps({"prompt": "What is 1 + 1?", "domain": "math", "answer": "2"})
        + "\n"
        + json.dumps({"prompt": "What is 2 + 2?", "domain": "math"})
        + "\n"
    )
    assert (
        main(["rl", f"model.path={ringrl_moe_dir}", f"data.train={data}", f"out={tmp_path / 'run'}", "loss.beta=0"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == f"ringrl rl: error: {data}:2: field 'answer' missing (math rows need the reference answer)"
