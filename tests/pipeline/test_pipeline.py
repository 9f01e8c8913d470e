"""Pipeline specs (validation before any stage runs) and the runner's skip/resume logic."""

from __future__ import annotations

import textwrap

import pytest

from ringrl.errors import UserError
from ringrl.pipeline import load_pipeline, run_pipeline
from ringrl.pipeline import runner as runner_mod
from ringrl.pipeline.runner import _nested


def write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent(text))
    return p


GOOD = """\
out: OUT
stages:
  - name: sft
    kind: sft
    config: {epochs: 1}
  - name: select
    kind: select
    from: sft
  - name: rl
    kind: rl
    from: select
    config: {steps: 2}
  - name: eval
    kind: eval
    models: [select, rl]
    benchmarks: [synthetic-math]
"""


def test_good_spec_parses(tmp_path):
    spec = load_pipeline(write(tmp_path, GOOD))
    assert [s.name for s in spec.stages] == ["sft", "select", "rl", "eval"]
    assert spec.stage("rl").source == "select"
    assert spec.stage("eval").options["models"] == ["select", "rl"]


@pytest.mark.parametrize(
    "bad, line, words",
    [
        (GOOD.replace("kind: rl", "kind: rlhf"), 9, "unknown stage kind 'rlhf'"),
        (GOOD.replace("name: rl\n", "name: sft\n"), 9, "writes the same directory"),
        (
            GOOD.replace("from: select\n    config: {steps: 2}", "from: nowhere\n    config: {steps: 2}"),
            9,
            "not an earlier stage",
        ),
        (GOOD.replace("models: [select, rl]", "models: [select, later]"), 13, "not an earlier stage"),
    ],
)
def test_bad_spec_names_the_line(tmp_path, bad, line, words):
    """The error names the line where the offending stage starts."""
    with pytest.raises(UserError) as e:
        load_pipeline(write(tmp_path, bad))
    assert f"p.yaml:{line}:" in str(e.value)
    assert words in str(e.value)


def test_select_needs_an_sft_source(tmp_path):
    bad = GOOD.replace("kind: select\n    from: sft", "kind: select\n    from: rl0").replace(
        "stages:\n", "stages:\n  - {name: rl0, kind: rl, config: {model.path: x}}\n"
    )
    with pytest.raises(UserError, match="select stage needs 'from' naming an earlier sft stage"):
        load_pipeline(write(tmp_path, bad))


def test_nested_dotted_keys():
    assert _nested({"optim.lr": 1e-3, "optim": {"schedule": "constant"}, "steps": 3}) == {
        "optim": {"lr": 1e-3, "schedule": "constant"},
        "steps": 3,
    }


@pytest.fixture
def fake_runners(monkeypatch):
    """Stage runners that record calls; 'rl' can be made to fail once (an interruption)."""
    calls: list[str] = []
    state = {"fail_rl": False}

    def make(kind):
        def run(spec, stage, outputs, overrides):
            calls.append(stage.name)
            if kind == "rl" and state["fail_rl"]:
                state["fail_rl"] = False
                raise KeyboardInterrupt
            src = outputs[stage.source]["model"] if stage.source else None
            return {"model": f"{stage.name}-model", "from_model": src}

        return run

    monkeypatch.setattr(runner_mod, "RUNNERS", {k: make(k) for k in runner_mod.RUNNERS})
    return calls, state


def test_finished_stages_are_skipped_and_an_interrupted_one_runs_again(tmp_path, fake_runners):
    calls, state = fake_runners
    spec = load_pipeline(write(tmp_path, GOOD), out=str(tmp_path / "run"))
    state["fail_rl"] = True
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(spec)
    assert calls == ["sft", "select", "rl"]
    assert (tmp_path / "run" / "select" / "stage.json").is_file()
    assert not (tmp_path / "run" / "rl" / "stage.json").exists()

    calls.clear()
    result = run_pipeline(spec)
    assert calls == ["rl", "eval"]  # sft and select were done
    rl = next(s for s in result["stages"] if s["name"] == "rl")
    assert rl["from_model"] == "select-model"  # started from the skipped stage's recorded output

    calls.clear()
    run_pipeline(spec)
    assert calls == []  # everything done


def test_select_stage_with_a_fixed_epoch(tmp_path):
    import json

    from ringrl.pipeline.runner import _run_select
    from ringrl.pipeline.spec import parse_pipeline

    sft = tmp_path / "run" / "sft"
    sft.mkdir(parents=True)
    ckpts = [
        {"name": f"epoch-{e}", "path": f"checkpoints/epoch-{e}", "epoch": e, "tokens_seen": 100 * e, "entropy": 1.0 / e}
        for e in (1, 2, 3)
    ]
    (sft / "summary.json").write_text(json.dumps({"kind": "sft", "checkpoints": ckpts}))
    spec = parse_pipeline(
        {
            "out": str(tmp_path / "run"),
            "stages": [{"name": "sft", "kind": "sft"}, {"name": "e2", "kind": "select", "from": "sft", "epoch": 2}],
        },
        "t",
    )
    out = _run_select(spec, spec.stage("e2"), {"sft": {"dir": str(sft)}}, [])
    assert out["model"] == str((sft / "checkpoints" / "epoch-2").resolve())
    assert out["selection"]["entropy"] == 0.5 and out["selection"]["in_band"] is None
    assert json.loads((tmp_path / "run" / "e2" / "selection.json").read_text()) == out["selection"]
    spec3 = parse_pipeline(
        {
            "out": str(tmp_path / "run"),
            "stages": [{"name": "sft", "kind": "sft"}, {"name": "e9", "kind": "select", "from": "sft", "epoch": 9}],
        },
        "t",
    )
    with pytest.raises(UserError, match="no checkpoint for epoch 9"):
        _run_select(spec3, spec3.stage("e9"), {"sft": {"dir": str(sft)}}, [])


def test_an_adopted_sft_run_is_not_trained_again(tmp_path, fake_runners):
    """``ringrl experiment --sft DIR``: the pipeline's sft stage is the finished run in DIR."""
    import json

    from ringrl.pipeline.runner import adopt_sft_run

    calls, _ = fake_runners
    done = tmp_path / "done-sft"
    done.mkdir()
    ckpts = [{"name": f"epoch-{e}", "path": f"checkpoints/epoch-{e}", "epoch": e, "entropy": 0.1} for e in (1, 2)]
    (done / "summary.json").write_text(json.dumps({"checkpoints": ckpts, "tokens_seen": 200}))
    spec = load_pipeline(write(tmp_path, GOOD), out=str(tmp_path / "run"))
    assert adopt_sft_run(tmp_path / "run", "sft", done)
    assert not adopt_sft_run(tmp_path / "run", "sft", done)  # already has a result: unchanged
    result = run_pipeline(spec)
    assert calls == ["select", "rl", "eval"]
    sft = next(s for s in result["stages"] if s["name"] == "sft")
    assert sft["dir"] == str(done.resolve()) and sft["model"] == str((done / "checkpoints" / "epoch-2").resolve())
    with pytest.raises(UserError, match="not a finished SFT run"):
        adopt_sft_run(tmp_path / "other", "sft", tmp_path / "nowhere")


@pytest.mark.parametrize(
    "item, words",
    [
        ("select.band=[0.1,0.2]", "a select stage has no config to override"),
        ("nope.steps=1", "no such stage"),
    ],
)
def test_cli_overrides_that_would_not_apply_are_one_line_errors(tmp_path, capsys, item, words):
    from ringrl.cli import main

    cfg = write(tmp_path, GOOD.replace("OUT", str(tmp_path / "out")))
    assert main(["pipeline", str(cfg), item]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "out").exists()  # nothing ran
