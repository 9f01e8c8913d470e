"""Without sandbox isolation (and no opt-in), RL and eval on code rows stop before any work with
one line, instead of training or scoring on refusals."""

from __future__ import annotations

import json

import pytest

from ringrl.cli import main
from ringrl.rewards import sandbox


@pytest.fixture
def no_isolation(monkeypatch):
    monkeypatch.setenv("RINGRL_SANDBOX_NO_NAMESPACES", "1")
    monkeypatch.delenv("RINGRL_SANDBOX_UNSAFE", raising=False)
    sandbox.isolation_problem.cache_clear()
    yield
    sandbox.isolation_problem.cache_clear()


def test_rl_on_code_rows_refuses_without_isolation(tmp_path, ringrl_moe_dir, no_isolation, capsys):
    data = tmp_path / "code.jsonl"
    data.write_text(json.dumps({"prompt": "print 1", "domain": "code", "tests": [{"input": "", "output": "1"}]}) + "\n")
    code = main(["rl", f"model.path={ringrl_moe_dir}", f"data.train={data}", f"out={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("ringrl rl: error: RL data: sandbox isolation is unavailable, so code is not run")
    assert "RINGRL_SANDBOX_NO_NAMESPACES=1 is set" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_eval_on_code_benchmarks_refuses_without_isolation(tmp_path, ringrl_moe_dir, no_isolation, capsys):
    code = main(
        ["eval", "--model", str(ringrl_moe_dir), "--benchmarks", "synthetic-code", "--output", str(tmp_path / "r.json")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines()[-1].startswith("ringrl eval: error: code benchmarks: sandbox isolation"), err


def test_math_rows_need_no_sandbox(tmp_path, ringrl_moe_dir, no_isolation):
    sandbox.require_isolation([{"domain": "math", "prompt": "1+1", "answer": "2"}], "RL data")  # no error
    with pytest.raises(Exception, match="sandbox isolation is unavailable"):
        sandbox.require_isolation([{"domain": "code"}], "RL data")
