"""Evaluation end to end with fakes: a scripted model gives exactly known accuracies;
responses mode on a fixture; the per-sample JSONL; a tiny real transformers model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import FIXTURES, BoxedGrader, PlainTokenizer, ScriptedGenerator

from ringrl.data.prompts import MATH_SUFFIX
from ringrl.errors import DataError, UserError
from ringrl.eval import (
    EvalConfig,
    TransformersGenerator,
    evaluate_responses,
    load_benchmark,
    load_model,
    pass_at_k,
    read_responses,
    run_eval,
    run_responses,
    samples_path,
)

TOY = f"toy={FIXTURES / 'toy_math.jsonl'}"

# toy-1: 4/4 correct; toy-2: 2/4 (one no answer); toy-3: 1/4; toy-4: 0/4 (all no answer)
SCRIPT = {
    "2 + 3": ["\\boxed{5}", "so \\boxed{5}", "\\boxed{ 5 }", "a b \\boxed{5}"],
    "4 * 6": ["\\boxed{24}", "\\boxed{23}", "no idea", "\\boxed{24}"],
    "10 - 7": ["\\boxed{3}", "\\boxed{4}", "\\boxed{4}", "\\boxed{17}"],
    "9 / 3": ["x", "y", "z", "w"],
}


def test_scripted_model_gives_known_accuracies(tmp_path: Path, grader: BoxedGrader) -> None:
    gen = ScriptedGenerator(SCRIPT)
    out = tmp_path / "res.json"
    results = run_eval(
        None, [TOY], engine=gen, tokenizer=PlainTokenizer(), grader=grader, output=out, samples=4, batch_size=3, seed=7
    )
    r = results["toy"]
    assert (r["problems"], r["samples"], r["samples_per_problem"]) == (4, 16, 4)
    assert r["pass_at_1"] == pytest.approx((1 + 0.5 + 0.25 + 0) / 4)
    assert list(r["pass_at_k"]) == ["1", "2", "4"]
    assert r["pass_at_k"]["2"] == pytest.approx((1 + pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2) + 0) / 4)
    assert r["pass_at_k"]["4"] == pytest.approx(3 / 4)
    assert r["no_answer_fraction"] == pytest.approx(5 / 16)
    assert r["length_unit"] == "tokens"  # the scripted outputs carry token_ids (one per word)
    assert r["mean_length"] == pytest.approx(sum(len(t.split()) for ts in SCRIPT.values() for t in ts) / 16)
    assert r["settings"]["samples"] == 4 and r["settings"]["temperature"] == 1.0 and r["settings"]["top_p"] == 0.95
    # prompts are the paper's zero-shot math prompt; batches of 3 prompts, seeded by position
    assert len(gen.prompts) == 4 and all(p.endswith(MATH_SUFFIX + "\n") for p in gen.prompts)
    assert [c["seed"] for c in gen.calls] == [7, 10]
    assert json.loads(out.read_text()) == results
    lines = [json.loads(x) for x in samples_path(out).read_text().splitlines()]
    assert samples_path(out).name == "res.samples.jsonl" and len(lines) == 16
    assert lines[5] == {
        "benchmark": "toy",
        "id": "toy-2",
        "sample": 1,
        "response": "\\boxed{23}",
        "reward": 0.0,
        "status": "wrong",
        "length": 1,
        "detail": "got '23'",
    }


def test_evaluate_responses_pure(grader: BoxedGrader) -> None:
    rows = load_benchmark(TOY).rows
    d = evaluate_responses(
        rows, {"toy-1": ["\\boxed{5}", "\\boxed{4}"], "toy-3": ["\\boxed{3}"], "zzz": ["1"]}, grader, name="toy"
    )
    assert (d["problems"], d["samples"], d["samples_per_problem"]) == (2, 3, 1)
    assert d["pass_at_1"] == pytest.approx((0.5 + 1) / 2)
    assert d["length_unit"] == "characters" and d["mean_length"] == pytest.approx((9 + 9 + 9) / 3)
    assert d["unknown_ids"] == 1 and d["name"] == "toy"


def test_responses_mode_on_fixture(tmp_path: Path, grader: BoxedGrader) -> None:
    warnings: list[str] = []
    out = tmp_path / "r.json"
    results = run_responses(FIXTURES / "toy_responses.jsonl", [TOY], grader=grader, output=out, warn=warnings.append)
    r = results["toy"]
    # toy-1 2/3, toy-2 2/3 (one without an answer), toy-3 1/3; toy-4 has no responses and is not scored
    assert (r["problems"], r["samples"]) == (3, 9)
    assert r["pass_at_1"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    assert r["pass_at_k"]["3"] == pytest.approx(1.0)
    assert r["no_answer_fraction"] == pytest.approx(1 / 9)
    assert r["unknown_ids"] == 1 and r["settings"]["mode"] == "responses"
    assert len(warnings) == 1 and "1 response id(s) (2 rows)" in warnings[0] and "'not-a-problem'" in warnings[0]
    assert len(samples_path(out).read_text().splitlines()) == 9
    limited = run_responses(FIXTURES / "toy_responses.jsonl", [TOY], grader=grader, limit=2)
    assert limited["toy"]["problems"] == 2


def test_responses_mode_bad_input(tmp_path: Path, grader: BoxedGrader) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="no responses"):
        read_responses(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "toy-1", "response": "x"}\n{"id": "toy-2"}\n')
    with pytest.raises(DataError, match="bad.jsonl:2: field 'response' missing"):
        read_responses(bad)
    stray = tmp_path / "stray.jsonl"
    stray.write_text('{"id": "other", "response": "x"}\n')
    warnings: list[str] = []
    with pytest.raises(UserError, match="no response id matches a problem of toy"):
        run_responses(stray, [TOY], grader=grader, warn=warnings.append)
    assert "not scored" in warnings[0]


def test_config_is_validated(grader: BoxedGrader) -> None:
    with pytest.raises(UserError, match="samples"):
        run_eval(None, [TOY], engine=ScriptedGenerator(SCRIPT), tokenizer=PlainTokenizer(), grader=grader, samples=0)
    with pytest.raises(UserError, match="top_p"):
        EvalConfig(top_p=1.5).validate()


def test_transformers_generator_on_tiny_model(tiny_model_dir: Path, grader: BoxedGrader) -> None:
    model, tok = load_model(tiny_model_dir)
    gen = TransformersGenerator(model, tok)
    prompts = ["What is 2 + 3?\n", "Please reason step by step, and put"]  # different lengths: left padding
    kw = dict(temperature=1.0, top_p=0.95, max_new_tokens=6, seed=3)
    a = gen.generate(prompts, 3, **kw)
    assert [len(g) for g in a] == [3, 3]
    assert all(1 <= len(c.token_ids) <= 6 for g in a for c in g)
    assert gen.generate(prompts, 3, **kw) == a  # same seed, same samples
    # left padding does not change a prompt's samples: greedy alone equals greedy in the batch
    greedy = dict(temperature=0.0, top_p=1.0, max_new_tokens=6, seed=0)
    batch = gen.generate(prompts, 2, **greedy)
    alone = gen.generate(prompts[:1], 1, **greedy)
    assert batch[0][0] == batch[0][1] == alone[0][0]


def test_run_eval_from_model_dir(tiny_model_dir: Path, tmp_path: Path, grader: BoxedGrader) -> None:
    out = tmp_path / "res.json"
    results = run_eval(
        tiny_model_dir, [TOY], grader=grader, output=out, samples=2, max_new_tokens=5, limit=3, batch_size=2
    )
    r = results["toy"]
    assert (r["problems"], r["samples"], r["length_unit"]) == (3, 6, "tokens")
    assert 1 <= r["mean_length"] <= 5
    assert r["settings"]["model"] == str(tiny_model_dir)
    assert len(samples_path(out).read_text().splitlines()) == 6


def test_run_eval_accepts_the_rollout_engine(tiny_model_dir: Path, grader: BoxedGrader) -> None:
    from ringrl import rollout

    model, tok = load_model(tiny_model_dir)
    engine = rollout.HFEngine(model, tok)
    results = run_eval(None, [TOY], engine=engine, tokenizer=tok, grader=grader, samples=2, max_new_tokens=4, limit=2)
    assert results["toy"]["samples"] == 4 and results["toy"]["length_unit"] == "tokens"


def test_model_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config.json"):
        load_model(tmp_path)


def test_progress_bars_do_not_change_results(grader: BoxedGrader, capsys: pytest.CaptureFixture[str]) -> None:
    quiet = run_eval(
        None, [TOY], engine=ScriptedGenerator(SCRIPT), tokenizer=PlainTokenizer(), grader=grader, samples=4
    )
    shown = run_eval(
        None,
        [TOY],
        engine=ScriptedGenerator(SCRIPT),
        tokenizer=PlainTokenizer(),
        grader=grader,
        samples=4,
        progress=True,
    )
    assert shown == quiet
    assert "toy: generating" in capsys.readouterr().err
