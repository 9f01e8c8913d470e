"""Checkpoints are written atomically and never with non-finite weights; bad data rows stop
``ringrl sft`` with one line naming file, line and field (exit 2, no traceback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ringrl.cli import main
from ringrl.utils.checkpoint import NonFiniteWeights, save_checkpoint
from ringrl.utils.io import atomic_dir, atomic_write_text


@pytest.fixture()
def policy(ringrl_moe_dir):
    from ringrl.models import load_policy

    return load_policy(ringrl_moe_dir, device="cpu")


class Boom(Exception):
    pass


def test_interrupted_checkpoint_leaves_nothing_loadable(tmp_path, policy, monkeypatch):
    from transformers import AutoModelForCausalLM

    model, tok = policy
    target = tmp_path / "checkpoints" / "epoch-1"

    def fail(*a, **k):
        raise Boom("disk full")

    monkeypatch.setattr(tok, "save_pretrained", fail)  # the weights are written, then the write dies
    with pytest.raises(Boom):
        save_checkpoint(target, model, tok, {"epoch": 1})
    assert not target.exists()
    assert os.listdir(tmp_path / "checkpoints") == []  # no half-written temporary directory either
    with pytest.raises(OSError):
        AutoModelForCausalLM.from_pretrained(target)


def test_interrupted_overwrite_keeps_the_previous_checkpoint(tmp_path, policy, monkeypatch):
    from transformers import AutoModelForCausalLM

    model, tok = policy
    target = tmp_path / "final"
    save_checkpoint(target, model, tok, {"step": 1})
    ref = {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(target).state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing
    assert sorted(os.listdir(tmp_path)) == ["final"]
    assert json.loads((target / "trainer_state.json").read_text()) == {"step": 1}
    reloaded = AutoModelForCausalLM.from_pretrained(target).state_dict()
    assert all(torch.equal(reloaded[k], ref[k]) for k in ref)
    # a completed overwrite replaces it
    save_checkpoint(target, model, tok, {"step": 2})
    assert json.loads((target / "trainer_state.json").read_text()) == {"step": 2}
    assert sorted(os.listdir(tmp_path)) == ["final"]


def test_non_finite_weights_are_never_written(tmp_path, policy):
    model, tok = policy
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeights):
        save_checkpoint(tmp_path / "bad", model, tok)
    assert not (tmp_path / "bad").exists() and os.listdir(tmp_path) == []
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    with pytest.raises(NonFiniteWeights):
        save_checkpoint(tmp_path / "bad", model, tok)


def test_atomic_write_text_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "summary.json"
    atomic_write_text(p, "old")

    def fail(*a):
        raise Boom

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(Boom):
        atomic_write_text(p, "new")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["summary.json"]


def ringrl_command() -> list[str]:
    """The installed console script, else the same entry function through the interpreter."""
    script = shutil.which("ringrl") or str(Path(sys.executable).parent / "ringrl")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-c", "import sys; from ringrl.cli import main; sys.exit(main())"]


GOOD = {"prompt": "What is 1 + 1?", "domain": "math", "response": "1 + 1 = 2. \\boxed{2}"}


@pytest.mark.parametrize(
    "line2, field, what",
    [
        ('{"prompt": "What is 2 + 2?", "domain": "math"}', "response", "missing"),
        ('{"prompt": "What is 2 + 2?", "response": 4}', "response", "non-empty string"),
        ('{"response": "4"}', "prompt", "missing"),
        ('{"prompt": "x", "domain": "chemistry", "response": "y"}', "domain", "unknown domain"),
        ('{"prompt": "What is 2 + 2?", "response": "4"', None, "invalid JSON"),
        ("[1, 2]", None, "JSON object"),
    ],
)
def test_malformed_row_one_line_via_cli(tmp_path, capsys, ringrl_moe_dir, line2, field, what):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(GOOD) + "\n" + line2 + "\n" + json.dumps(GOOD) + "\n")
    code = main(
        [
            "sft",
            f"data.train={data}",
            f"out={tmp_path / 'run'}",
            f"model.path={ringrl_moe_dir}",
            "model.device=cpu",
            "progress=false",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ringrl sft: error: ") and f"{data}:2:" in lines[0] and what in lines[0]
    if field:
        assert f"field '{field}'" in lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before training


def test_cli_errors_have_no_traceback_subprocess(tmp_path, ringrl_moe_dir):
    """The real entry point: exit status 2 and one line on stderr (config key, data row)."""
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(GOOD) + "\n\n" + '{"prompt": "p", "domain": "math"}\n')
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run(
        [*ringrl_command(), "sft", f"data.train={data}", f"out={tmp_path / 'run'}", f"model.path={ringrl_moe_dir}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert (
        run.stderr.strip()
        == f"ringrl sft: error: {data}:3: field 'response' missing (SFT rows need the target response)"
    )


def test_cli_unknown_key_and_bad_value(capsys):
    assert main(["sft", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ringrl sft: error: config key 'optim.lrr': unknown key") and "\n" not in err
    assert main(["sft", "epochs=0"]) == 2
    assert "config key 'epochs'" in capsys.readouterr().err


def test_cli_model_path_not_a_causal_lm(tmp_path, capsys):
    from transformers import BertConfig

    BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        architectures=["BertForMaskedLM"],
    ).save_pretrained(tmp_path / "bert")
    assert (
        main(
            [
                "sft",
                f"model.path={tmp_path / 'bert'}",
                f"out={tmp_path / 'run'}",
                "data.train_size=2",
                "data.eval_size=1",
                "progress=false",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "not a causal language model" in err and len(err.splitlines()) == 1
