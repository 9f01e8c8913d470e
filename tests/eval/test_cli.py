"""``ringrl eval`` on the command line: responses mode, model mode, bad input as one line + exit 2."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from eval_helpers import FIXTURES, BoxedGrader

from ringrl.cli import main
from ringrl.eval import runner

TOY = f"toy={FIXTURES / 'toy_math.jsonl'}"


@pytest.fixture
def fake_grader(monkeypatch: pytest.MonkeyPatch) -> BoxedGrader:
    g = BoxedGrader()
    monkeypatch.setattr(runner, "_default_grader", lambda cfg: contextlib.nullcontext(g))
    return g


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ringrl eval: error: ")
    return err[0]


def test_responses_mode(tmp_path: Path, fake_grader: BoxedGrader, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res.json"
    code = main(
        ["eval", "--benchmarks", TOY, "--responses", str(FIXTURES / "toy_responses.jsonl"), "--output", str(out)]
    )
    cap = capsys.readouterr()
    assert code == 0
    assert "warning: 1 response id(s) (2 rows)" in cap.err
    assert "toy" in cap.out and "55.56" in cap.out  # pass@1 = 5/9 in the printed table
    res = json.loads(out.read_text())
    assert res["toy"]["pass_at_1"] == pytest.approx(5 / 9)
    assert (tmp_path / "res.samples.jsonl").is_file()


def test_model_mode_with_config_and_overrides(
    tmp_path: Path, tiny_model_dir: Path, fake_grader: BoxedGrader, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("samples: 3\nmax_new_tokens: 99\nlimit: 2\n")
    out = tmp_path / "res.json"
    argv = ["eval", "--model", str(tiny_model_dir), "--benchmarks", TOY, "--config", str(cfg), "--samples", "2"]
    code = main([*argv, "--output", str(out), "max_new_tokens=4"])
    assert code == 0, capsys.readouterr().err
    r = json.loads(out.read_text())["toy"]
    # YAML < flags < overrides
    assert (r["problems"], r["samples"], r["settings"]["max_new_tokens"]) == (2, 4, 4)


@pytest.mark.parametrize(
    "argv,match",
    [
        (
            ["--benchmarks", "gsm9k"],
            "unknown benchmark 'gsm9k'; known: gsm8k, math500, aime2024, aime2025, humaneval, mbpp",
        ),
        (["--benchmarks", "gsm8k", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir/gsm8k_test.jsonl not found"),
        (["--benchmarks", TOY, "samples=0"], "config key 'samples': must be at least 1"),
    ],
)
def test_bad_input_one_line_exit_2(
    argv: list[str], match: str, fake_grader: BoxedGrader, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["eval", "--responses", str(FIXTURES / "toy_responses.jsonl"), *argv])
    assert code == 2
    assert match in one_error_line(capsys)


def test_empty_responses_file(tmp_path: Path, fake_grader: BoxedGrader, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["eval", "--benchmarks", TOY, "--responses", str(empty)]) == 2
    assert one_error_line(capsys) == f"ringrl eval: error: {empty}: no responses (the file is empty)"


def test_no_output_written_on_error(
    tmp_path: Path, fake_grader: BoxedGrader, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res.json"
    assert (
        main(
            ["eval", "--benchmarks", "nope", "--responses", str(FIXTURES / "toy_responses.jsonl"), "--output", str(out)]
        )
        == 2
    )
    assert not out.exists()


def test_responses_lengths_in_tokens_with_tokenizer(
    tmp_path: Path, tiny_model_dir: Path, fake_grader: BoxedGrader, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoTokenizer

    out = tmp_path / "res.json"
    argv = ["eval", "--benchmarks", TOY, "--responses", str(FIXTURES / "toy_responses.jsonl"), "--output", str(out)]
    assert main([*argv, "--tokenizer", str(tiny_model_dir)]) == 0
    r = json.loads(out.read_text())["toy"]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lines = [json.loads(x) for x in (tmp_path / "res.samples.jsonl").read_text().splitlines()]
    assert r["length_unit"] == "tokens"
    assert all(s["length"] == len(tok.encode(s["response"], add_special_tokens=False)) for s in lines)
    assert main(argv) == 0
    assert json.loads(out.read_text())["toy"]["length_unit"] == "characters"
