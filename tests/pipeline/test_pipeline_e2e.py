"""A real pipeline end to end on a tiny model: SFT, select, two RL stages, eval, report.

Every stage runs the real trainer, verifiers and report (sizes cut to seconds). Checks
the stage chain (each stage starts from its source's output), the two-stage RL token
accounting, and that a re-run skips everything and an RL stage re-run after its
stage.json is removed resumes from its final checkpoint without training again.
"""

from __future__ import annotations

import json

from ringrl.pipeline import run_pipeline
from ringrl.pipeline.spec import parse_pipeline

TINY = {
    "vocab_size": 300,
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "num_kv_heads": 1,
    "num_experts": 4,
    "experts_per_token": 2,
    "expert_size": 16,
    "shared_expert_size": 32,
}


def spec_for(out):
    rl = {
        "threads": 1,
        "algo": "c3po",
        "steps": 2,
        "model": {"device": "cpu"},
        "rollout": {"prompts_per_step": 2, "samples_per_prompt": 2, "max_new_tokens": 16},
        "former": {"budget_tokens": 40},
        "tensorboard": False,
        "progress": False,
    }
    return parse_pipeline(
        {
            "out": str(out),
            "stages": [
                {
                    "name": "sft",
                    "kind": "sft",
                    "config": {
                        "threads": 1,
                        "epochs": 2,
                        "batch_tokens": 512,
                        "model": {"device": "cpu", "tiny": TINY},
                        "data": {
                            "tasks": ["math", "logic"],
                            "levels": {"math": [1]},
                            "weights": {"math": 2},
                            "train_size": 24,
                            "eval_size": 4,
                        },
                        "entropy": {"max_new_tokens": 16},
                        "tensorboard": False,
                        "progress": False,
                    },
                },
                {"name": "select", "kind": "select", "from": "sft", "band": [0.0, 100.0]},
                {"name": "rl-math", "kind": "rl", "from": "select", "config": {**rl, "data": {"tasks": ["math"]}}},
                {"name": "rl-logic", "kind": "rl", "from": "rl-math", "config": {**rl, "data": {"tasks": ["logic"]}}},
                {
                    "name": "eval",
                    "kind": "eval",
                    "models": ["select", "rl-logic"],
                    "benchmarks": ["synthetic-math-l1"],
                    "config": {"samples": 1, "limit": 3, "max_new_tokens": 16},
                },
                {"name": "report", "kind": "report"},
            ],
        },
        "test",
        str(out),
    )


def test_pipeline_runs_every_stage_and_skips_them_on_a_re_run(tmp_path):
    out = tmp_path / "run"
    result = run_pipeline(spec_for(out))
    st = {s["name"]: s for s in result["stages"]}
    assert list(st) == ["sft", "select", "rl-math", "rl-logic", "eval", "report"]
    # the SFT data: math weighted 2:1 and level 1 only, logic at every level
    sft_cfg = (out / "sft" / "config.yaml").read_text()
    assert "weights" in sft_cfg and len(st["sft"]["checkpoints"]) == 2
    assert st["select"]["model"] == str((out / "sft" / "checkpoints" / "epoch-2").resolve())  # most-trained in band
    for name, source in (("rl-math", st["select"]["model"]), ("rl-logic", st["rl-math"]["model"])):
        rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert [r["train/tokens"] for r in rows] == [40, 40]  # C3PO: Phi tokens every step
        assert json.loads((out / name / "summary.json").read_text())["init"] == source
    assert st["rl-math"]["rl_tokens"] == 80
    scores = json.loads((out / "eval" / "summary.json").read_text())["models"]
    assert set(scores) == {"select", "rl-logic"} and scores["select"]["synthetic-math-l1"]["problems"] == 3
    assert (out / "report" / "report.html").stat().st_size > 10_000
    assert json.loads((out / "summary.json").read_text())["stages"][-1]["name"] == "report"

    again = run_pipeline(spec_for(out))
    assert [s["seconds"] for s in again["stages"]] == [s["seconds"] for s in result["stages"]]  # all skipped

    (out / "rl-logic" / "stage.json").unlink()  # as if interrupted after its last checkpoint
    (out / "eval" / "stage.json").unlink()
    before = (out / "rl-logic" / "metrics.jsonl").read_text()
    third = {s["name"]: s for s in run_pipeline(spec_for(out))["stages"]}
    assert (out / "rl-logic" / "metrics.jsonl").read_text() == before  # resumed at the end: no step re-run
    assert third["rl-logic"]["model"] == st["rl-logic"]["model"]
