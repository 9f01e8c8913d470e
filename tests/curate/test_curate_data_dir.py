"""``ringrl curate`` finds benchmarks as ``ringrl eval`` does: ``$RINGRL_DATA_DIR`` and the names eval takes."""

from __future__ import annotations

import json

import pytest

from ringrl.cli import main
from ringrl.errors import UserError


def _bench(folder, name, question):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"question": question, "answer": "1"}) + "\n")


def test_curate_honours_the_data_dir_variable_and_eval_names(tmp_path, monkeypatch, capsys):
    from ringrl.curate import benchmark_files, find_data_dir

    data = tmp_path / "bench"
    q = "What is the number of ways to tile a two by nine board with dominoes exactly?"
    _bench(data, "math500_test.jsonl", q)
    _bench(data, "gsm8k_test.jsonl", "Janet has three apples and buys four more apples at the market today.")
    monkeypatch.setenv("RINGRL_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)
    assert find_data_dir() == data
    assert benchmark_files(data, ["math500", "GSM8K", "math500_test"]) == [
        data / "math500_test.jsonl",
        data / "gsm8k_test.jsonl",
        data / "math500_test.jsonl",
    ]
    with pytest.raises(
        UserError, match=r"benchmark 'aime2024': no file .*aime2024.jsonl \(known: gsm8k_test, math500_test\)"
    ):
        benchmark_files(data, ["aime2024"])
    # end to end: a training row that copies the MATH-500 question is removed, with no --data-dir
    rows = tmp_path / "in.jsonl"
    rows.write_text(
        json.dumps({"prompt": q, "domain": "math", "answer": "55"})
        + "\n"
        + json.dumps(
            {
                "prompt": "Add seventeen and twenty five and report the sum as a number.",
                "domain": "math",
                "answer": "42",
            }
        )
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert main(["curate", str(rows), "--output", str(out), "--benchmarks", "math500"]) == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["answer"] for r in kept] == ["42"]


def test_a_data_dir_variable_that_is_not_a_directory_is_one_line(tmp_path, monkeypatch):
    from ringrl.curate import find_data_dir

    monkeypatch.setenv("RINGRL_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(UserError, match=r"\$RINGRL_DATA_DIR=.*missing: not a directory"):
        find_data_dir()
