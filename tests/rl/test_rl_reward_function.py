"""Reward functions from files named on the command line (reward.function=FILE.py:NAME)."""

from __future__ import annotations

import json
import math
import os
import statistics

import pytest

from ringrl.cli import main
from ringrl.rewards import RewardPool
from ringrl.rewards.custom import FileReward

FUNCS = """
import json, os, time

def length(prompt, response, row):
    value = len(response) / 100
    with open(os.environ["REWARD_LOG"], "a") as f:  # one line per call: what the trainer must have averaged
        f.write(json.dumps({"prompt": prompt, "response": response, "value": value}) + "\\n")
    return value

def has_x(prompt, response, row):
    return 1.0 if row.get("marker") in response else 0.0

def boom(prompt, response, row):
    raise ValueError("bad row")

def nan(prompt, response, row):
    return float("nan")

def text(prompt, response, row):
    return "1"

def slow(prompt, response, row):
    time.sleep(30)
    return 1.0

def judge(prompts, responses, rows):  # batched: one call per chunk, logged
    with open(os.environ["REWARD_LOG"] + ".batched", "a") as f:
        f.write(json.dumps({"prompts": prompts, "responses": responses, "pid": os.getpid()}) + "\\n")
    return [len(r) / 10 + (1.0 if row.get("marker", "\\0") in r else 0.0) for r, row in zip(responses, rows)]
judge.batched = True

def judge_raises(prompts, responses, rows):
    raise RuntimeError("judge down")
judge_raises.batched = True

def judge_short(prompts, responses, rows):
    return [1.0] * (len(responses) - 1)
judge_short.batched = True

def judge_nan_first(prompts, responses, rows):
    return [float("nan")] + [2.0] * (len(responses) - 1)
judge_nan_first.batched = True

def judge_slow(prompts, responses, rows):
    time.sleep(30)
    return [1.0] * len(responses)
judge_slow.batched = True
"""


@pytest.fixture
def funcs(tmp_path, monkeypatch):
    path = tmp_path / "my_rewards.py"
    path.write_text(FUNCS)
    monkeypatch.setenv("REWARD_LOG", str(tmp_path / "calls.jsonl"))
    return path


def test_weighted_sum_and_arguments(funcs):
    fr = FileReward.from_config([f"{funcs}:length", f"{funcs}:has_x"], [0.5, 2.0])
    v = fr({"messages": [{"role": "user", "content": "q?"}], "marker": "x"}, "ab x")
    assert (v.status, v.reward) == ("scored", pytest.approx(0.5 * 0.04 + 2.0 * 1.0))
    call = json.loads((funcs.parent / "calls.jsonl").read_text())
    assert call == {"prompt": "q?", "response": "ab x", "value": 0.04}  # prompt = the last user turn


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("boom", "my_rewards.py:boom raised ValueError: bad row"),
        ("nan", "my_rewards.py:nan returned nan, not a finite number"),
        ("text", "my_rewards.py:text returned '1', not a finite number"),
    ],
)
def test_a_bad_function_is_an_error_status_not_a_crash(funcs, name, detail):
    v = FileReward.from_config([f"{funcs}:{name}"], None)({"prompt": "q"}, "r")
    assert (v.status, v.reward, v.detail) == ("error", 0.0, detail)


def test_pool_runs_functions_in_workers_with_a_timeout(funcs):
    rows = [{"prompt": "p", "marker": "x"}] * 2
    with RewardPool(workers=2, timeout=2.0, reward_fn=FileReward.from_config([f"{funcs}:has_x"], None)) as pool:
        assert [v.reward for v in pool.score(rows, ["x", "y"])] == [1.0, 0.0]
    with RewardPool(workers=1, timeout=1.0, reward_fn=FileReward.from_config([f"{funcs}:slow"], None)) as pool:
        v = pool.score([{"prompt": "p"}], ["r"])[0]
    assert v.status == "timeout" and v.reward == 0.0


def _batched_calls(funcs):
    log = funcs.parent / "calls.jsonl.batched"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_batched_function_scores_chunks_in_the_workers(funcs):
    rows = [{"prompt": f"p{i}", "marker": "x"} for i in range(5)]
    responses = ["x", "yy", "xzz", "", "abcdx"]
    fr = FileReward.from_config([f"{funcs}:judge", f"{funcs}:has_x"], [1.0, 0.5])
    assert fr.batched
    with RewardPool(workers=2, timeout=2.0, reward_fn=fr) as pool:
        verdicts = pool.score(rows, responses)
    want = [len(r) / 10 + 1.5 * ("x" in r) for r in responses]  # judge + 0.5 * has_x
    assert [v.status for v in verdicts] == ["scored"] * 5
    assert [v.reward for v in verdicts] == pytest.approx(want)
    calls = sorted(_batched_calls(funcs), key=lambda c: c["prompts"][0])
    # one call per worker, each a contiguous chunk in input order, run in a worker process
    assert [c["responses"] for c in calls] == [responses[:2], responses[2:]]
    assert [c["prompts"] for c in calls] == [["p0", "p1"], ["p2", "p3", "p4"]]
    assert all(c["pid"] != os.getpid() for c in calls)


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("judge_raises", ["my_rewards.py:judge_raises raised RuntimeError: judge down"] * 3),
        ("judge_short", ["my_rewards.py:judge_short returned 2 values for 3 responses"] * 3),
        ("judge_nan_first", ["my_rewards.py:judge_nan_first returned nan, not a finite number", None, None]),
    ],
)
def test_a_bad_batched_function_errors_its_items_only(funcs, name, want):
    verdicts = FileReward.from_config([f"{funcs}:{name}"], None).score_many([{"prompt": "q"}] * 3, ["a", "b", "c"])
    assert [v.detail if v.status == "error" else None for v in verdicts] == want
    assert [v.reward for v in verdicts] == [0.0 if w else 2.0 for w in want]


def test_a_hanging_batched_function_times_out_its_chunk(funcs):
    fr = FileReward.from_config([f"{funcs}:judge_slow"], None)
    with RewardPool(workers=1, timeout=0.5, reward_fn=fr) as pool:
        verdicts = pool.score([{"prompt": "p"}] * 3, ["a", "b", "c"])
    assert [(v.status, v.reward) for v in verdicts] == [("timeout", 0.0)] * 3
    assert verdicts[0].detail == "grading took longer than 1.5s"  # the limit: timeout x the chunk's items


def _rl_run(tmp_path, model_dir, function, capsys):
    """Two C3PO steps on prompt-only rows (no verifier fields needed) scored by ``function``;
    the run's metrics."""
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"say something {i}"}) + "\n" for i in range(8)))
    out = tmp_path / "run"
    args = ["rl", f"model.path={model_dir}", f"data.train={data}", f"reward.function={function}", f"out={out}"]
    args += ["steps=2", "rollout.prompts_per_step=2", "rollout.samples_per_prompt=4", "rollout.max_new_tokens=8"]
    args += ["former.budget_tokens=29", "reward_workers=1", "progress=false", "tensorboard=false", "threads=1"]
    assert main(args) == 0, capsys.readouterr().err
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_rl_driven_by_a_file_reward(tmp_path, funcs, ringrl_moe_dir, capsys):
    metrics = _rl_run(tmp_path, ringrl_moe_dir, f"{funcs}:length", capsys)  # one function: no list needed
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == 2 * 2 * 4  # every response of every step went through the function
    for step, m in enumerate(metrics):
        values = [c["value"] for c in calls[step * 8 : (step + 1) * 8]]
        assert m["reward/mean"] == pytest.approx(statistics.fmean(values))
    assert any(not math.isclose(v["value"], 0.0) for v in calls)


def test_rl_driven_by_a_batched_file_reward(tmp_path, funcs, ringrl_moe_dir, capsys):
    metrics = _rl_run(tmp_path, ringrl_moe_dir, f"{funcs}:judge", capsys)
    calls = _batched_calls(funcs)
    assert [len(c["responses"]) for c in calls] == [8, 8]  # one call per step with one worker
    for m, c in zip(metrics, calls):
        assert m["reward/mean"] == pytest.approx(statistics.fmean(len(r) / 10 for r in c["responses"]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reward.function=[nofile.py:f]", "config key 'reward.function': nofile.py: no such Python file"),
        ("reward.function=[{funcs}]", "config key 'reward.function': expected FILE.py:NAME"),
        ("reward.function=[{funcs}:missing]", "has no function 'missing'"),
        ("reward.weights=[1.0]", "config key 'reward.weights': needs reward.function"),
        ("reward.timeout=0", "config key 'reward.timeout': must be a finite number > 0"),
        ("reward.timeout=nan", "config key 'reward.timeout': must be a finite number"),
    ],
)
def test_bad_reward_options_are_one_line(tmp_path, funcs, ringrl_moe_dir, capsys, override, message):
    code = main(["rl", f"model.path={ringrl_moe_dir}", f"out={tmp_path / 'run'}", override.format(funcs=funcs)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
