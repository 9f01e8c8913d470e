"""Without isolation the sandbox refuses to run code unless the user opts in; then it says so once, loudly.

Only honest programs run here: without a PID namespace and an unprivileged user namespace,
rlimits are all that contain a program (DESIGN.md, "Sandbox safety").
"""

import json
import os
import subprocess
import sys

SCRIPT = """
import sys
from ringrl.rewards import RewardPool
rows = [{"domain": "code", "tests": [{"input": "2", "output": "4"}]}] * 2 + [{"domain": "math", "answer": "2"}]
unsafe = sys.argv[1] == "flag"
for _ in range(2):
    with RewardPool(workers=1, code_timeout=3, unsafe_no_sandbox=unsafe) as p:
        v = p.score(rows, ["```python\\nprint(int(input()) ** 2)\\n```", "```python\\nprint(5)\\n```", "\\\\boxed{2}"])
        print([x.status for x in v])
        print(v[0].detail)
"""


def run(mode: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "RINGRL_SANDBOX_UNSAFE"}
    full.update(RINGRL_SANDBOX_NO_NAMESPACES="1", **env)
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, env=full)


def test_without_isolation_code_is_refused_with_the_reason():
    r = run("default")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == lines[2] == "['error', 'error', 'correct']"  # math still graded
    assert lines[1].startswith("sandbox isolation is unavailable, so code is not run")
    assert lines[1].endswith(": RINGRL_SANDBOX_NO_NAMESPACES=1 is set")
    assert "RINGRL_SANDBOX_UNSAFE=1" in lines[1] and "--unsafe-no-sandbox" in lines[1]
    assert "WARNING" not in r.stderr


def test_opt_in_by_env_or_argument_grades_and_warns_once():
    for mode, env in (("default", {"RINGRL_SANDBOX_UNSAFE": "1"}), ("flag", {})):
        r = run(mode, **env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[::2] == ["['correct', 'wrong', 'correct']"] * 2, (mode, r.stdout)
        assert r.stderr.count("rlimits only") == 1, r.stderr


def test_verify_refuses_code_rows_without_isolation_in_one_line(tmp_path):
    rows = [
        {"id": 1, "domain": "math", "answer": "2", "response": "\\boxed{2}"},
        {"id": 2, "domain": "code", "tests": [{"input": "", "output": "1"}], "response": "```python\nprint(1)\n```"},
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "ringrl", "verify", str(inp), "-o", str(tmp_path / "out.jsonl"), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k != "RINGRL_SANDBOX_UNSAFE"}
    env["RINGRL_SANDBOX_NO_NAMESPACES"] = "1"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "isolation is unavailable" in lines[0] and "--unsafe-no-sandbox" in lines[0], lines
    assert not (tmp_path / "out.jsonl").exists()
    r = subprocess.run(cmd + ["--unsafe-no-sandbox"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    got = [json.loads(line)["status"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert got == ["correct", "correct"]
    assert r.stderr.count("rlimits only") == 1
