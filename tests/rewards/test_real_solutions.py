"""No false negatives on real data: every canonical HumanEval and MBPP solution passes the
sandbox (audit hook and always-equal guard included). The data directory is found the way
the CLI finds it (``$RINGRL_DATA_DIR``, else ``shared/data`` beside the project); skipped,
with the reason, where there is none."""

import ast
import json

import pytest

from ringrl.eval.benchmarks import resolve_data_dir
from ringrl.rewards import RewardPool

from .nsprobe import namespaces_unsupported

DATA, HOW = resolve_data_dir()


def _list(v):
    return ast.literal_eval(v) if isinstance(v, str) else list(v or [])


@pytest.mark.skipif(
    DATA is None or not (DATA / "humaneval.jsonl").is_file() or not (DATA / "mbpp_sanitized.jsonl").is_file(),
    reason=f"humaneval.jsonl and mbpp_sanitized.jsonl not in the data directory ({DATA}: {HOW})",
)
def test_canonical_solutions_all_pass():
    rows, responses = [], []
    for line in (DATA / "humaneval.jsonl").read_text().splitlines():
        d = json.loads(line)
        rows.append({"domain": "code", "prompt": d["prompt"], "entry_point": d["entry_point"], "tests": d["test"]})
        responses.append(d["canonical_solution"])  # a continuation of the prompt, no fence
    for line in (DATA / "mbpp_sanitized.jsonl").read_text().splitlines():
        d = json.loads(line)
        test = "\n".join(_list(d.get("test_imports")) + [d.get("test_setup_code") or ""] + _list(d["test_list"]))
        rows.append({"domain": "code", "tests": test})
        responses.append("```python\n" + d["code"] + "\n```")
    assert DATA is not None
    # honest canonical programs only: where namespaces are unsupported they may run with rlimits only
    with RewardPool(code_timeout=10, unsafe_no_sandbox=namespaces_unsupported() is not None) as pool:
        got = pool.score(rows, responses)
    failed = [(r.get("entry_point"), v.status, v.detail) for r, v in zip(rows, got) if v.status != "correct"]
    assert not failed, failed[:5]
    assert len(got) > 500
