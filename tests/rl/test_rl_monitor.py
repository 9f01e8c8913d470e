"""The stability monitor inside a real RL run on the tiny MoE: alerts are logged, ``monitor.stop``
ends the run with exit code 3 and a checkpoint, ``monitor.rollback`` reloads the last checkpoint
with the learning rate halved, and stops once its rollbacks run out.

The alert is provoked through a threshold the run must cross: the KL to the reference is 0 at
step 1 (the policy is the reference) and positive once an update has been made, so
``monitor.kl_max=1e-12`` fires ``kl_blowup`` at step 2."""

from __future__ import annotations

import json

import pytest

from ringrl.cli import main
from ringrl.monitor import MonitorStop
from ringrl.rl.state import TrainerState
from ringrl.rl.trainer import RLTrainer

from .test_rl_trainer import read_metrics, rl_config

KL_ALERT = "monitor.kl_max=1e-12"


def test_alerts_are_logged_and_the_run_goes_on(tmp_path, ringrl_moe_dir, ringrl_util):
    out = tmp_path / "run"
    RLTrainer(rl_config(ringrl_moe_dir, out, KL_ALERT), score=ringrl_util.parity_score).fit()
    m = read_metrics(out)
    assert [r["step"] for r in m] == [1, 2, 3]
    assert "alert/kl_blowup" not in m[0] and m[1]["alert/kl_blowup"] == 1
    assert "alert/kl_blowup" not in m[2]  # still above the threshold: one alert per bad stretch
    assert (out / "checkpoints" / "final").is_dir()


def test_monitor_disabled_logs_no_alert(tmp_path, ringrl_moe_dir, ringrl_util):
    out = tmp_path / "run"
    RLTrainer(rl_config(ringrl_moe_dir, out, KL_ALERT, "monitor.enabled=false"), score=ringrl_util.parity_score).fit()
    assert not any(k.startswith("alert/") for r in read_metrics(out) for k in r)


def test_stop_exits_3_with_one_line_and_a_checkpoint(tmp_path, ringrl_moe_dir, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "rl",
            f"model.path={ringrl_moe_dir}",
            "model.device=cpu",
            f"out={out}",
            "steps=4",
            "rollout.prompts_per_step=2",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=8",
            "former.budget_tokens=29",
            "data.train_size=16",
            "optim.lr=1e-2",
            "progress=false",
            "tensorboard=false",
            "threads=1",
            "reward_workers=1",
            KL_ALERT,
            "monitor.stop=true",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert err[-1].startswith("ringrl rl: error: step 2: alert kl_blowup (monitor.stop); last checkpoint "), err
    assert [r["step"] for r in read_metrics(out)] == [1, 2]
    state = json.loads((out / "checkpoints" / "step-2" / "trainer_state.json").read_text())
    assert state["step"] == 2
    assert not (out / "checkpoints" / "final").exists()


def test_rollback_halves_lr_then_stops_when_exhausted(tmp_path, ringrl_moe_dir, ringrl_util):
    out = tmp_path / "run"
    cfg = rl_config(ringrl_moe_dir, out, KL_ALERT, "monitor.rollback=true", "monitor.max_rollbacks=1")
    trainer = RLTrainer(cfg, score=ringrl_util.parity_score)
    with pytest.raises(
        MonitorStop, match="step 2: alert kl_blowup \\(rollbacks exhausted\\); last checkpoint .*step-0"
    ):
        trainer.fit()
    # step-0 was written at the start; the rollback returned to it and re-ran steps 1 and 2 at half the lr
    assert trainer.state.rollbacks == 1 and trainer.state.lr_scale == 0.5
    m = read_metrics(out)
    assert [r["step"] for r in m] == [1, 2]  # the abandoned steps were dropped from the log
    assert m[0]["train/lr"] == pytest.approx(0.5e-2) and m[1]["alert/kl_blowup"] == 1
    # step-0 is recent (within monitor.window steps), so the stop kept it rather than writing another
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0"]
    again = TrainerState.from_json(json.loads(json.dumps(trainer.state.to_json())))
    assert (again.rollbacks, again.lr_scale) == (1, 0.5)  # a later checkpoint carries them
