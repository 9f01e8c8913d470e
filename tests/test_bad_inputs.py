"""Every bad input is one line on stderr and exit code 2, before any work starts: a test per class
(data encoding, output paths, model directories, resume artefacts, pipeline options and stage
configs, file formats, oversize rows). Config values: tests/test_config_bounds.py; run
directories (locks, finished runs, read-only and file outputs): tests/test_rundir.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ringrl.cli import main

QUICK_SFT = ["model.device=cpu", "epochs=1", "data.eval_size=2", "entropy.max_new_tokens=4", "progress=false"]
QUICK_RL = [
    "model.device=cpu",
    "steps=2",
    "save_every=1",
    "rollout.prompts_per_step=2",
    "rollout.samples_per_prompt=2",
    "rollout.max_new_tokens=6",
    "former.budget_tokens=12",
    "data.train_size=6",
    "progress=false",
    "tensorboard=false",
    "threads=1",
    "reward_workers=1",
]


def one_line_exit_2(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("ringrl: note:")]
    assert code == 2, err
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def latin1(tmp_path) -> Path:
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b'{"prompt": "1+1?", "domain": "math", "answer": "2", "response": "2"}\n')
    p.write_bytes(
        p.read_bytes() + '{"prompt": "café", "domain": "math", "answer": "1", "response": "1"}\n'.encode("latin-1")
    )
    return p


def test_non_utf8_data_files(capsys, tmp_path, latin1, ringrl_moe_dir):
    expect = f"{latin1}:2: not UTF-8 text (byte 0xe9 at column 16); convert the file to UTF-8"
    line = one_line_exit_2(capsys, ["sft", f"data.train={latin1}", f"out={tmp_path / 's'}", *QUICK_SFT])
    assert line.endswith(expect)
    line = one_line_exit_2(
        capsys, ["rl", f"model.path={ringrl_moe_dir}", f"data.train={latin1}", f"out={tmp_path / 'r'}", *QUICK_RL]
    )
    assert line.endswith(expect)
    out = tmp_path / "e.json"
    line = one_line_exit_2(
        capsys, ["eval", "--model", str(ringrl_moe_dir), "--benchmarks", f"mine={latin1}", "--output", str(out)]
    )
    assert line.endswith(expect)
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes("epochs: 1 # é\n".encode("latin-1"))
    assert "not UTF-8 text" in one_line_exit_2(capsys, ["sft", "--config", str(cfg)])


@pytest.mark.parametrize("case", ["directory", "under-a-file"])
def test_eval_output_paths(capsys, tmp_path, ringrl_moe_dir, case):
    f = tmp_path / "f"
    f.write_text("x")
    out = tmp_path if case == "directory" else f / "results.json"
    line = one_line_exit_2(
        capsys, ["eval", "--model", str(ringrl_moe_dir), "--benchmarks", "gsm8k", "--output", str(out)]
    )
    assert ("is a directory; give a file name" if case == "directory" else f"{f} is a file, not a directory") in line


def test_a_model_directory_without_tokenizer_files(capsys, tmp_path, ringrl_moe_dir):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(ringrl_moe_dir / name, bare / name)
    line = one_line_exit_2(capsys, ["sft", f"model.path={bare}", f"out={tmp_path / 's'}", *QUICK_SFT])
    assert f"{bare}: no tokenizer files (one of tokenizer.json" in line
    line = one_line_exit_2(capsys, ["rl", f"model.path={bare}", f"out={tmp_path / 'r'}", *QUICK_RL])
    assert "no tokenizer files" in line


def test_a_parquet_file_that_is_not_parquet(capsys, tmp_path):
    fake = tmp_path / "rows.parquet"
    fake.write_text('{"prompt": "p", "response": "r"}\n')
    line = one_line_exit_2(capsys, ["sft", f"data.train={fake}", f"out={tmp_path / 's'}", *QUICK_SFT])
    assert line.endswith(f"{fake}: not a Parquet file (no PAR1 magic bytes); JSONL files end in .jsonl")


def test_an_oversize_row_is_refused_before_any_tokenising(capsys, tmp_path, monkeypatch):
    import ringrl.sft.trainer as sft_trainer

    def never(*a, **k):
        raise AssertionError("rows were tokenised")

    monkeypatch.setattr(sft_trainer, "encode_rows", never)
    rows = tmp_path / "rows.jsonl"
    small = json.dumps({"prompt": "1+1?", "response": "2"})
    big = json.dumps({"prompt": "x" * 5000, "response": "y"})
    rows.write_text(small + "\n" + big + "\n" + small + "\n")
    argv = ["sft", f"data.train={rows}", f"out={tmp_path / 's'}", "data.max_row_bytes=4096", *QUICK_SFT]
    line = one_line_exit_2(capsys, argv)
    assert line.endswith(f"{rows}:2: row longer than 4,096 bytes (raise data.max_row_bytes to accept it)")


def test_the_row_limit_reads_no_more_than_the_limit(tmp_path):
    """A 50 MB line is refused after reading limit + 1 bytes of it, never held whole."""
    from ringrl.errors import DataError
    from ringrl.utils.io import iter_jsonl

    p = tmp_path / "huge.jsonl"
    with p.open("w") as f:
        f.write('{"a": 1}\n')
        f.write('{"a": "' + "x" * 50_000_000 + '"}\n')
    rows = iter_jsonl(p, limit=1000)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(DataError, match=r"huge.jsonl:2: row longer than 1,000 bytes"):
        next(rows)


def padded_row(n_bytes: int) -> bytes:
    """A JSON object of exactly ``n_bytes`` bytes (no newline)."""
    row = b'{"a": ""}'
    return b'{"a": "' + b"x" * (n_bytes - len(row)) + b'"}'


@pytest.mark.parametrize("last", [False, True], ids=["newline", "at-eof-without-newline"])
def test_the_row_limit_at_and_one_byte_above(tmp_path, last):
    """The limit counts a row's bytes without its newline: exactly ``limit`` bytes is read,
    ``limit + 1`` is refused, whether the row ends in a newline or ends the file without one."""
    from ringrl.errors import DataError
    from ringrl.utils.io import iter_jsonl

    limit = 64
    end = b"" if last else b"\n"
    at = tmp_path / "at.jsonl"
    at.write_bytes(b'{"a": 1}\n' + padded_row(limit) + end)
    assert len(padded_row(limit)) == limit
    assert list(iter_jsonl(at, limit=limit)) == [(1, {"a": 1}), (2, {"a": "x" * (limit - 9)})]
    above = tmp_path / "above.jsonl"
    above.write_bytes(b'{"a": 1}\n' + padded_row(limit + 1) + end)
    rows = iter_jsonl(above, limit=limit)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(DataError, match=r"above.jsonl:2: row longer than 64 bytes"):
        next(rows)


@pytest.fixture(scope="module")
def rl_run(tmp_path_factory, ringrl_moe_dir, ringrl_util):
    """A finished 2-step RL run with checkpoints step-1 and final (reward: the parity score)."""
    from ringrl.config import load_config
    from ringrl.rl.config import RLConfig
    from ringrl.rl.trainer import RLTrainer

    parity_score = ringrl_util.parity_score
    out = tmp_path_factory.mktemp("rl") / "run"
    RLTrainer(
        load_config(RLConfig, overrides=[f"model.path={ringrl_moe_dir}", f"out={out}", *QUICK_RL]), score=parity_score
    ).fit()
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run, dst)
    return dst


def _resume(run: Path, model_dir: Path, parity_score, steps: int = 3) -> dict:
    from ringrl.config import load_config
    from ringrl.rl.config import RLConfig
    from ringrl.rl.trainer import RLTrainer

    overrides = [f"model.path={model_dir}", f"out={run}", *QUICK_RL, f"steps={steps}", "resume=true"]
    return RLTrainer(load_config(RLConfig, overrides=overrides), score=parity_score).fit()


def test_resume_past_a_truncated_optimizer_state_and_a_torn_metrics_line(
    capfd, tmp_path, rl_run, ringrl_moe_dir, ringrl_util
):
    run = _copy(rl_run, tmp_path)
    opt = run / "checkpoints" / "final" / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])  # truncated
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "reward/me')  # a line torn by a kill
    capfd.readouterr()
    summary = _resume(run, ringrl_moe_dir, ringrl_util.parity_score)
    err = capfd.readouterr().err
    assert f"checkpoint {run / 'checkpoints' / 'final'} is damaged" in err and "resuming from step-1 instead" in err
    assert summary["resumed_from"].endswith("step-1") and summary["steps"] == 3
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert "dropped 1 unreadable line(s)" in err


def test_resume_with_every_checkpoint_damaged_is_one_line(capsys, tmp_path, rl_run, ringrl_moe_dir):
    run = _copy(rl_run, tmp_path)
    (run / "checkpoints" / "final" / "trainer_state.json").write_text("{not json")  # corrupt
    opt = run / "checkpoints" / "step-1" / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[:100])
    line = one_line_exit_2(capsys, ["rl", f"model.path={ringrl_moe_dir}", f"out={run}", *QUICK_RL, "resume=true"])
    assert f"{run}: no intact checkpoint to resume from (final, step-1 damaged); overwrite=true starts" in line


def _pipeline(tmp_path: Path, model_dir: Path, select: str, rl_config: str) -> Path:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"""\
out: {tmp_path / "out"}
stages:
  - name: sft
    kind: sft
    config: {{model: {{path: {model_dir}, device: cpu}}, epochs: 1, progress: false}}
  - name: select
    kind: select
    from: sft
    {select}
  - name: rl
    kind: rl
    from: select
    config: {rl_config}
""")
    return cfg


def test_a_typo_in_a_pipeline_stage_option(capsys, tmp_path, ringrl_moe_dir):
    cfg = _pipeline(tmp_path, ringrl_moe_dir, "bandd: [0.1, 0.5]", "{steps: 2}")
    line = one_line_exit_2(capsys, ["pipeline", str(cfg)])
    assert line.endswith(
        f"{cfg}:6: unknown key 'bandd' in a select stage (did you mean 'band'? known: name, kind, from, band, epoch)"
    )
    cfg = _pipeline(tmp_path, ringrl_moe_dir, "band: [0.5]", "{steps: 2}")
    assert "'band' must be [LOW, HIGH]" in one_line_exit_2(capsys, ["pipeline", str(cfg)])


def test_an_invalid_rl_stage_value_fails_before_any_stage_runs(capsys, tmp_path, ringrl_moe_dir):
    cfg = _pipeline(tmp_path, ringrl_moe_dir, "band: [0.1, 0.5]", "{optim: {betas: [0.9, 1.0]}}")
    line = one_line_exit_2(capsys, ["pipeline", str(cfg)])
    assert line.endswith(f"{cfg}:10: stage 'rl': config key 'optim.betas[1]': must be in [0, 1), got 1.0")
    assert not (tmp_path / "out" / "sft").exists()  # the SFT stage never started
    cfg = _pipeline(tmp_path, ringrl_moe_dir, "band: [0.1, 0.5]", "{steps: 2}")
    line = one_line_exit_2(capsys, ["pipeline", str(cfg), "rl.loss.beta=-1"])  # a command-line override too
    assert "stage 'rl': config key 'loss.beta': must be >= 0" in line
    assert not (tmp_path / "out" / "sft").exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ('{"prompt": "p", "domain": "general", "answer": "1"}\n', "data.jsonl:1: field 'domain'"),
        ('{"prompt": "p", "domain": "math", "answer": "1"}\n{"prompt": \n', "data.jsonl:2: invalid JSON"),
        (None, "data.jsonl: data file not found"),
    ],
)
def test_a_bad_data_file_of_a_later_stage_fails_before_any_stage_runs(capsys, tmp_path, ringrl_moe_dir, rows, message):
    data = tmp_path / "data.jsonl"
    if rows is not None:
        data.write_text(rows)
    cfg = _pipeline(tmp_path, ringrl_moe_dir, "band: [0.1, 0.5]", f"{{steps: 2, data: {{train: {data}}}}}")
    line = one_line_exit_2(capsys, ["pipeline", str(cfg)])
    assert f"{cfg}:10: stage 'rl': " in line and message in line, line
    assert not (tmp_path / "out" / "sft").exists()  # the SFT stage never started
