"""Weights & Biases logging, offline (no network here): the run's files sit under RUN_DIR/wandb,
and what they hold is every metric of metrics.jsonl, the config and the summary."""

from __future__ import annotations

import importlib.util
import json

import pytest

from ringrl.cli import main
from ringrl.rl.trainer import RLTrainer

from .test_rl_trainer import read_metrics, rl_config


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")


def wandb_bytes(out) -> bytes:
    files = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    return files[0].read_bytes()


def test_rl_run_logs_metrics_config_and_summary_offline(tmp_path, ringrl_moe_dir, ringrl_util, offline):
    out = tmp_path / "my-run"
    cfg = rl_config(ringrl_moe_dir, out, "logger.wandb=true", "steps=2")
    summary = RLTrainer(cfg, score=ringrl_util.parity_score).fit()
    data = wandb_bytes(out)
    for key in read_metrics(out)[0]:  # every metric of the JSONL, step included
        assert key.encode() in data, key
    # the config (a nested key and its value) and the summary's scalars
    assert b"budget_tokens" in data and b"reward_last" in data and b"my-run" in data
    assert json.dumps(summary["rl_tokens"]).encode() in data
    run_id = (out / "wandb" / "run-id").read_text().strip()
    assert run_id.encode() in data


def test_missing_wandb_is_one_line(tmp_path, ringrl_moe_dir, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    code = main(["rl", f"model.path={ringrl_moe_dir}", f"out={tmp_path / 'run'}", "logger.wandb=true"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "ringrl rl: error: config key 'logger.wandb': needs the wandb package: pip install 'ringrl[wandb]'"


def test_pipeline_stages_are_named_and_grouped(tmp_path):
    from ringrl.pipeline.runner import _wandb_names
    from ringrl.pipeline.spec import PipelineSpec, Stage

    spec = PipelineSpec(out=str(tmp_path / "recipe"), stages=[])
    assert _wandb_names(spec, Stage(name="rl-math", kind="rl")) == {
        "logger": {"wandb_group": "recipe", "wandb_name": "recipe/rl-math"}
    }
