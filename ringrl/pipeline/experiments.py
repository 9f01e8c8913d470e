"""The paper's three findings as pipelines over seeds (``ringrl experiment NAME``).

Each experiment is a :class:`~ringrl.pipeline.spec.PipelineSpec` built from the
quickstart's stage settings (so it runs on the embedded default in minutes per seed)
and then a report over all its runs:

- ``c3po-vs-grpo``: one SFT and selection, then RL stage 1 with ``algo=c3po`` and with
  ``algo=grpo`` for every seed (same seeds, model and prompts): token-per-step, step-time
  and gradient-norm stability, reward curves (the paper's Figures 7 and 8), and the
  held-out scores of the start point and of every run.
- ``sft-epochs``: RL from the checkpoint of every SFT epoch, for every seed: entropy of
  the start point against RL gain, and token efficiency = RL tokens / SFT tokens
  (Figures 5 and 9).
- ``two-stage-vs-mixed``: from the selected checkpoint, math RL then code+logic RL,
  against one mixed run with the same total steps drawing the domains in the same
  proportion (math 40 x 16 prompts : code and logic 10 x 16 between them), for every
  seed, evaluated on the synthetic test splits (the paper's domain-conflict finding).

``--smoke`` shrinks every stage as the quickstart's smoke mode does. ``--stress`` (for
``c3po-vs-grpo``) trains on the ``arithmetic-styles`` task, whose correct answers are short or
long, so response length is free to drift, and runs RL longer, at a higher learning rate and
with a larger length cap (:data:`STRESS_RL`): the setting where GRPO's instability can show.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import yaml

from ringrl.config import merge
from ringrl.errors import UserError
from ringrl.pipeline.spec import PipelineSpec, parse_pipeline

EXPERIMENTS = ("c3po-vs-grpo", "sft-epochs", "two-stage-vs-mixed")

STRESS_TASK = {"tasks": ["arithmetic-styles"], "levels": {"arithmetic-styles": [1, 2]}, "weights": None}
#: RL settings of ``--stress``: 60 steps at 1e-3 (the quickstart's calibration saw the KL drift from
#: 6e-4 and a collapse at 1e-3), 400-token cap, the monitor on (alerts logged, the run goes on).
STRESS_RL: dict[str, Any] = {
    "steps": 60,
    "optim": {"lr": 1.0e-3},
    "rollout": {"max_new_tokens": 400},
    "data": STRESS_TASK,
}


def _quickstart_stages(smoke: bool) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(resources.files("ringrl.configs").joinpath("quickstart.yaml").read_text())
    smoke_cfg = data.get("smoke", {})
    stages = {}
    for st in data["stages"]:
        st = copy.deepcopy(st)
        if smoke:
            st["config"] = merge(st.get("config") or {}, smoke_cfg.get(st["kind"], {}))
        stages[st["name"]] = st
    return stages


def _rl(name: str, source: str, base: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {"name": name, "kind": "rl", "from": source, "config": merge(copy.deepcopy(base["config"]), config)}


def _mixed_data(*stages: dict[str, Any]) -> dict[str, Any]:
    """One data section drawing every task of ``stages`` at the levels each stage used, and in
    the proportion the stages drew it: a stage's prompts (steps x L) shared by its tasks by
    their weights. So the mixed run sees the same mix of domains, only not in sequence."""
    tasks: list[str] = []
    levels: dict[str, list[int]] = {}
    weights: dict[str, float] = {}
    for st in stages:
        cfg = st["config"]
        data = cfg.get("data", {})
        lv, own_w = data.get("levels"), data.get("weights") or {}
        stage_tasks = data.get("tasks", ["math"])
        prompts = cfg.get("steps", 50) * cfg.get("rollout", {}).get("prompts_per_step", 16)
        total_w = sum(own_w.get(t, 1.0) for t in stage_tasks)
        for t in stage_tasks:
            if t not in tasks:
                tasks.append(t)
            own = lv.get(t) if isinstance(lv, dict) else lv
            if own:
                levels[t] = sorted({*levels.get(t, []), *own})
            weights[t] = weights.get(t, 0.0) + prompts * own_w.get(t, 1.0) / total_w
    return {"tasks": tasks, "levels": levels or None, "weights": weights}


def _stress(q: dict[str, dict[str, Any]], smoke: bool) -> None:
    """The quickstart's stages turned into the stress setting, in place: SFT on the two-style task
    (both styles learnt), a fixed last-epoch start, longer and hotter RL on the same task."""
    sft = q["sft"]["config"]
    sft["data"] = merge({k: v for k, v in sft.get("data", {}).items() if k not in STRESS_TASK}, STRESS_TASK)
    epochs = sft.get("epochs", 3)
    q["select"] = {"name": "select", "kind": "select", "from": "sft", "epoch": epochs}
    rl = q["rl-math"]["config"]
    q["rl-math"]["config"] = merge(rl, {k: v for k, v in STRESS_RL.items() if not (smoke and k == "steps")})
    q["rl-math"]["config"]["data"] = STRESS_TASK
    q["eval"]["benchmarks"] = ["synthetic-math-l1", "synthetic-math-l2"]


def experiment_spec(name: str, out: str, seeds: list[int], smoke: bool = False, stress: bool = False) -> PipelineSpec:
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment '{name}' (known: {', '.join(EXPERIMENTS)})")
    if not seeds:
        raise UserError("--seeds: give at least one seed")
    if stress and name != "c3po-vs-grpo":
        raise UserError("--stress applies to c3po-vs-grpo only")
    q = _quickstart_stages(smoke)
    if stress:
        _stress(q, smoke)
    stages: list[dict[str, Any]] = [q["sft"], q["select"]]
    evals: list[str] = []
    if name == "c3po-vs-grpo":
        evals.append("select")  # the common start point
        for s in seeds:
            for algo in ("c3po", "grpo"):
                stages.append(_rl(f"rl-{algo}-seed{s}", "select", q["rl-math"], algo=algo, seed=s))
                evals.append(f"rl-{algo}-seed{s}")
    elif name == "sft-epochs":
        epochs = q["sft"]["config"].get("epochs", 3)
        stages = [q["sft"]]
        for e in range(1, epochs + 1):
            stages.append({"name": f"epoch{e}", "kind": "select", "from": "sft", "epoch": e})
            evals.append(f"epoch{e}")  # the start point, so the eval shows each run's gain
            for s in seeds:
                stages.append(_rl(f"rl-epoch{e}-seed{s}", f"epoch{e}", q["rl-math"], seed=s))
                evals.append(f"rl-epoch{e}-seed{s}")
    else:  # two-stage-vs-mixed
        steps1 = q["rl-math"]["config"].get("steps", 20)
        steps2 = q["rl-code"]["config"].get("steps", 10)
        for s in seeds:
            stages.append(_rl(f"stage1-seed{s}", "select", q["rl-math"], seed=s))
            stages.append(_rl(f"stage2-seed{s}", f"stage1-seed{s}", q["rl-code"], seed=s))
            stages.append(
                _rl(
                    f"mixed-seed{s}",
                    "select",
                    q["rl-math"],
                    seed=s,
                    steps=steps1 + steps2,
                    data=_mixed_data(q["rl-math"], q["rl-code"]),
                )
            )
            evals += [f"stage2-seed{s}", f"mixed-seed{s}"]
        evals.insert(0, "select")  # the common start point
    if evals:
        stages.append(
            {
                "name": "eval",
                "kind": "eval",
                "models": evals,
                "benchmarks": q["eval"]["benchmarks"],
                "config": q["eval"].get("config", {}),
            }
        )
    stages.append({"name": "report", "kind": "report"})
    return parse_pipeline({"out": out, "stages": stages}, f"experiment {name}", out)
