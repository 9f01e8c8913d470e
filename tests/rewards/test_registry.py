"""One row validator (the verifier registry's), shared by RL data loading, `verify` and the pool."""

import json

import pytest

from ringrl.errors import DataError
from ringrl.rewards import RewardPool, register_verifier
from ringrl.rewards.registry import row_problem
from ringrl.rl.config import RLDataConfig
from ringrl.rl.data import load_rl_rows

from .helpers import keyword

# (row, field the error must name, text the message must contain)
UNSCORABLE = [
    ({"prompt": "p", "domain": "general"}, "domain", "no verifier for domain 'general'"),
    ({"prompt": "p", "domain": "astrology", "answer": "1"}, "domain", "unknown domain 'astrology'"),
    ({"prompt": "p"}, "domain", "missing"),
    ({"prompt": "p", "domain": "math", "answer": ""}, "answer", "must not be empty"),
    ({"prompt": "p", "domain": "math", "answer": "   "}, "answer", "must not be empty"),
    ({"prompt": "p", "domain": "math"}, "answer", "missing"),
    ({"prompt": "p", "domain": "science", "answer": None}, "answer", "missing"),
    ({"prompt": "p", "domain": "math", "answer": True}, "answer", "non-empty string or a number"),
    ({"prompt": "p", "domain": "logic", "checker": "nope", "answer": "x"}, "checker", "unknown logic checker"),
    ({"prompt": "p", "domain": "logic", "checker": "countdown", "numbers": [1], "target": "24"}, "target", "integer"),
    ({"prompt": "p", "domain": "logic", "checker": "countdown", "target": 24}, "numbers", "missing"),
    ({"prompt": "p", "domain": "code", "tests": []}, "tests", "must not be empty"),
    ({"prompt": "p", "domain": "code", "test_code": "  "}, "test_code", "non-empty string"),
    ({"prompt": "p", "domain": "code"}, "tests", "missing"),
    ({"prompt": "p", "domain": "code", "tests": [{"input": "1"}]}, "tests", "item 0"),
    (
        {"prompt": "p", "domain": "code", "tests": "assert 1", "entry_point": "not valid"},
        "entry_point",
        "function name",
    ),
]


@pytest.mark.parametrize("row,field,text", UNSCORABLE)
def test_row_problem_names_the_field(row, field, text):
    got = row_problem(row)
    assert got is not None and got[0] == field and text in got[1], got


@pytest.mark.parametrize("row,field,text", UNSCORABLE)
def test_rl_loading_rejects_unscorable_rows_naming_file_line_field(tmp_path, row, field, text):
    good = {"prompt": "1+1?", "domain": "math", "answer": "2"}
    path = tmp_path / "rl.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as e:
        load_rl_rows(RLDataConfig(train=str(path)))
    assert (e.value.path, e.value.line, e.value.field) == (str(path), 2, field)
    assert text in str(e.value) and str(e.value).startswith(f"{path}:2: field '{field}'")


def test_rl_loading_still_needs_a_prompt(tmp_path):
    path = tmp_path / "rl.jsonl"
    path.write_text(json.dumps({"domain": "math", "answer": "2"}) + "\n")
    with pytest.raises(DataError) as e:
        load_rl_rows(RLDataConfig(train=str(path)))
    assert e.value.field == "prompt"


def test_registered_domain_is_accepted_everywhere(tmp_path):
    register_verifier("kw-reg", keyword, ("keyword",))
    rows = [
        {"prompt": "say yes", "domain": "kw-reg", "keyword": "yes"},
        {"prompt": "1+1", "domain": "math", "answer": 2},
    ]
    path = tmp_path / "rl.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_rl_rows(RLDataConfig(train=str(path))) == rows
    assert row_problem({"domain": "kw-reg"}) == ("keyword", "missing (kw-reg rows need 'keyword')")
    with RewardPool(workers=1) as pool:
        got = pool.score(rows + [{"domain": "kw-reg"}], ["oh yes", "\\boxed{2}", "yes"])
    assert [v.status for v in got] == ["correct", "correct", "error"]
    assert "field 'keyword'" in got[2].detail


def test_pool_and_verify_use_the_same_validator(tmp_path):
    from ringrl.cli import main

    rows = [dict(r, id=i, response="\\boxed{1}") for i, (r, _, _) in enumerate(UNSCORABLE)]
    with RewardPool(workers=1) as pool:
        got = pool.score(rows, [r["response"] for r in rows])
    for v, (_, field, text) in zip(got, UNSCORABLE):
        assert v.status == "error" and f"field '{field}'" in v.detail and text in v.detail, v
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["verify", str(inp), "-o", str(out), "--no-progress", "--workers", "1"]) == 0
    details = [json.loads(line)["detail"] for line in out.read_text().splitlines()]
    assert details == [v.detail for v in got]
