"""Weights & Biases logging, offline (no network here): the run's files sit under RUN_DIR/wandb,
and what they hold is every metric of metrics.jsonl, the config and the summary."""

from __future__ import annotations

import importlib.util

import pytest

from ringrl.cli import main
from ringrl.rl.trainer import RLTrainer

from .test_rl_trainer import read_metrics, rl_config


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")


def test_rl_run_logs_metrics_config_and_summary_offline(tmp_path, ringrl_moe_dir, ringrl_util, offline, monkeypatch):
    """A real offline W&B run; what reaches it is read at its API (wandb.init, Run.log, summary)."""
    import wandb

    seen: dict[str, object] = {"log": []}
    real_init = wandb.init

    def spy_init(*args, **kwargs):
        run = real_init(*args, **kwargs)
        seen["init"] = kwargs
        real_log = run.log
        monkeypatch.setattr(run, "log", lambda data, *a, **k: (seen["log"].append(dict(data)), real_log(data, *a, **k)))
        return run

    monkeypatch.setattr(wandb, "init", spy_init)
    from wandb.sdk.wandb_summary import Summary

    seen["summary"] = {}
    real_update = Summary.update
    monkeypatch.setattr(
        Summary, "update", lambda self, d, *a, **k: (seen["summary"].update(d), real_update(self, d, *a, **k))[1]
    )
    out = tmp_path / "my-run"
    cfg = rl_config(ringrl_moe_dir, out, "logger.wandb=true", "steps=2")
    summary = RLTrainer(cfg, score=ringrl_util.parity_score).fit()
    rows = read_metrics(out)
    # every record of metrics.jsonl, step and time included, went to W&B unchanged
    assert seen["log"] == [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in rows]
    init = seen["init"]
    assert init["name"] == "my-run" and init["dir"] == str(out) and init["project"] == "ringrl"
    assert init["config"]["former"]["budget_tokens"] == 29  # the resolved config
    assert seen["summary"]["reward_last"] == summary["reward_last"] and seen["summary"]["kind"] == "rl"
    run_id = (out / "wandb" / "run-id").read_text().strip()
    assert init["id"] == run_id
    files = list((out / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 1 and files[0].stat().st_size > 0  # the run's files sit under RUN_DIR/wandb


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


def _spy_wandb(monkeypatch):
    """Every wandb.init's keyword arguments and every Run.log's data, as W&B received them."""
    import wandb

    inits: list[dict] = []
    logs: list[dict] = []
    real_init = wandb.init

    def spy_init(*args, **kwargs):
        run = real_init(*args, **kwargs)
        inits.append(kwargs)
        real_log = run.log
        monkeypatch.setattr(run, "log", lambda data, *a, **k: (logs.append(dict(data)), real_log(data, *a, **k)))
        return run

    monkeypatch.setattr(wandb, "init", spy_init)
    return inits, logs


def test_nonfinite_metrics_reach_wandb_as_floats(tmp_path, offline, monkeypatch):
    import json
    import math

    from ringrl.utils.metrics import LoggerConfig, MetricsLogger

    inits, logs = _spy_wandb(monkeypatch)
    with MetricsLogger(tmp_path, tensorboard=False, wandb=LoggerConfig(wandb=True)) as log:
        log.log(1, {"train/kl": math.nan, "a": math.inf, "b": -math.inf, "c": 0.5, "note": "text"})
    line = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert (line["train/kl"], line["a"], line["b"]) == ("nan", "inf", "-inf")  # JSON keeps them as strings
    (got,) = logs
    assert math.isnan(got["train/kl"]) and got["a"] == math.inf and got["b"] == -math.inf and got["c"] == 0.5
    assert "note" not in got and got["step"] == 1


def test_sft_run_logs_to_wandb_offline(tmp_path, ringrl_moe_dir, offline, monkeypatch, capsys):
    inits, logs = _spy_wandb(monkeypatch)
    out = tmp_path / "sft-run"
    args = ["sft", f"model.path={ringrl_moe_dir}", f"out={out}", "epochs=1", "data.train_size=8", "data.eval_size=2"]
    args += ["entropy.max_new_tokens=4", "progress=false", "tensorboard=false", "threads=1", "logger.wandb=true"]
    assert main(args) == 0, capsys.readouterr().err
    rows = read_metrics(out)
    assert logs == [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in rows]
    (init,) = inits
    assert init["name"] == "sft-run" and init["config"]["epochs"] == 1
    assert (out / "wandb" / "run-id").read_text().strip() == init["id"]


def test_pipeline_wandb_flag_gives_one_grouped_run_per_training_stage(tmp_path, offline, monkeypatch, capsys):
    import yaml
    from pipeline.test_pipeline_e2e import TINY  # tests/ is on sys.path (rootdir insertion)

    inits, _ = _spy_wandb(monkeypatch)
    common = {"threads": 1, "tensorboard": False, "progress": False, "model": {"device": "cpu"}}
    sft = {**common, "epochs": 1, "batch_tokens": 512, "model": {"device": "cpu", "tiny": TINY}}
    sft |= {"data": {"tasks": ["math"], "train_size": 8, "eval_size": 2}, "entropy": {"max_new_tokens": 4}}
    rl = {**common, "steps": 1, "rollout": {"prompts_per_step": 2, "samples_per_prompt": 2, "max_new_tokens": 8}}
    rl |= {"former": {"budget_tokens": 20}, "data": {"tasks": ["math"]}}
    config = tmp_path / "recipe.yaml"
    stages = [{"name": "sft", "kind": "sft", "config": sft}, {"name": "rl", "kind": "rl", "from": "sft", "config": rl}]
    config.write_text(yaml.safe_dump({"out": str(tmp_path / "recipe"), "stages": stages}))
    assert main(["pipeline", str(config), "--wandb", "rl.logger.wandb_project=mine"]) == 0, capsys.readouterr().err
    assert [(i["name"], i["group"], i["project"]) for i in inits] == [
        ("recipe/sft", "recipe", "ringrl"),
        ("recipe/rl", "recipe", "mine"),  # a stage's own logger override still applies
    ]
    for stage in ("sft", "rl"):
        assert (tmp_path / "recipe" / stage / "wandb" / "run-id").is_file()
