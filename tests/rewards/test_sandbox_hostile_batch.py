"""A hostile program can end only itself: kill(-1), kills of the parent, of the process group, of
every PID, and fork bombs, mixed into one batch with honest rows; the honest rows keep their
verdicts, the batch completes, and each hostile row gets its own specific status.

Each batch runs in a child process under a hard outer ``timeout -s KILL`` (DESIGN.md, "Sandbox
safety"), and only where namespaces work (independent probe, ``nsprobe.py``); where they work
but the sandbox is not isolated, the test fails. Run once with the default interpreter and once
from a virtual environment under /tmp (its prefix is hidden by the sandbox's private /tmp
unless the launch binds it back).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .nsprobe import namespaces_unsupported, world_usable_python

WHY_NOT = namespaces_unsupported()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no Linux namespaces on this machine: {WHY_NOT}")
REPO = Path(__file__).resolve().parents[2]
OUTER_TIMEOUT_S = 240

SCRIPT = r"""
import json, shutil, sys
from ringrl.rewards import RewardPool
from ringrl.rewards.sandbox import interpreter_binds, isolation_problem, sandbox_python

problem = isolation_problem()
if problem is not None:
    print(json.dumps({"isolation_problem": problem}))
    sys.exit(0)
OK = {"domain": "code", "tests": [{"input": "", "output": "ok"}]}
UNIT = {"domain": "code", "test_code": "assert f(2) == 4\nassert f(3) == 9\n"}
MATH = {"domain": "math", "answer": "2"}
hostile = {
    "kill(-1) with a sibling": "import os, signal, time\nif os.fork() == 0:\n    time.sleep(60)\nos.kill(-1, signal.SIGKILL)\nprint('pwned')",
    "kill(-1) alone": "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('pwned')",
    "kill the parent (PID 1)": "import os, signal\nfor s in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):\n    os.kill(os.getppid(), s)\nprint('pwned')",
    "kill every other PID": "import os, signal\nfor p in range(1, 1 << 15):\n    if p != os.getpid():\n        try:\n            os.kill(p, signal.SIGKILL)\n        except OSError:\n            pass\nprint('pwned')",
    "killpg(0)": "import os, signal\nos.killpg(0, signal.SIGKILL)\nprint('pwned')",
    "fork bomb": "import os\nwhile True:\n    os.fork()",
    "fork bomb, errors ignored": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
}
if shutil.which("g++"):
    hostile["C++ fork bomb"] = "```cpp\n#include <unistd.h>\nint main() { while (true) fork(); }\n```"
rows, responses, names = [], [], []
for name, code in hostile.items():
    fenced = code if code.startswith("```") else "```python\n" + code + "\n```"
    rows += [OK, OK, UNIT, MATH]
    responses += [fenced, "```python\nprint('ok')\n```", "```python\ndef f(x):\n    return x * x\n```", "\\boxed{2}"]
    names += [name, "honest stdio", "honest unit", "honest math"]
with RewardPool(workers=2, code_timeout=3.0) as pool:
    got = pool.score(rows, responses)
    after = pool.score([OK, UNIT], responses[1:3])
    stats = vars(pool.stats)
prog = "import sys\nprint(sys.prefix)"
with RewardPool(workers=1) as pool:
    prefix = pool.score([{"domain": "code", "tests": [{"input": "", "output": sys.prefix}]}], ["```python\n" + prog + "\n```"])[0]
print(json.dumps({
    "results": [[n, v.status, v.detail] for n, v in zip(names, got)],
    "after": [v.status for v in after],
    "stats": stats,
    "binds": list(interpreter_binds(sandbox_python())),
    "prefix": [prefix.status, prefix.detail],
}))
"""

# hostile name -> the statuses it may get, each with a text its detail must contain
EXPECTED = {
    "kill(-1) with a sibling": {"wrong": "output differs"},  # it killed its sibling, itself survived
    "kill(-1) alone": {"runtime_error": "ProcessLookupError"},  # nothing else in its namespace to kill
    "kill the parent (PID 1)": {"wrong": "output differs"},  # the kernel drops signals to init
    "kill every other PID": {"wrong": "output differs"},
    "killpg(0)": {"runtime_error": "killed by signal 9"},
    "fork bomb": {"runtime_error": "BlockingIOError", "timeout": "limit"},
    "fork bomb, errors ignored": {"timeout": "limit"},
    "C++ fork bomb": {"timeout": "limit"},
}


def run_batch(python: str, env: dict[str, str]) -> dict:
    cmd = ["timeout", "-s", "KILL", str(OUTER_TIMEOUT_S), python, "-c", SCRIPT]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=OUTER_TIMEOUT_S + 30)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "isolation_problem" not in out, f"unshare works here but the sandbox is not isolated: {out}"
    return out


def check(out: dict) -> None:
    for name, status, detail in out["results"]:
        if name.startswith("honest"):
            assert status == "correct", (name, status, detail)
        else:
            allowed = EXPECTED[name]
            assert status in allowed and allowed[status] in detail, (name, status, detail)
    assert out["after"] == ["correct", "correct"]
    assert out["stats"]["code_retries"] == 0  # no zygote failed: every verdict is the program's own


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGRL_SANDBOX")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def test_hostile_batch_default_interpreter():
    out = run_batch(sys.executable, clean_env())
    check(out)
    assert out["prefix"][0] in ("correct", "wrong")  # the sandbox's interpreter may be the system one


@pytest.fixture(scope="module")
def tmp_venv():
    base = world_usable_python()
    if base is None:
        pytest.skip("no interpreter that uid 65534 can run, to build a virtual environment from")
    top = tempfile.mkdtemp(prefix="ringrl-venv-test-", dir="/tmp")
    os.chmod(top, 0o755)
    venv = Path(top) / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True, timeout=120)
    yield venv
    shutil.rmtree(top, ignore_errors=True)


def test_hostile_batch_from_a_venv_under_tmp(tmp_venv):
    out = run_batch(str(tmp_venv / "bin" / "python"), clean_env())
    assert out["binds"] == [str(tmp_venv)], out["binds"]  # the venv was bound back into the sandbox
    assert out["prefix"] == ["correct", "1 tests passed"], out["prefix"]  # and runs the programs
    check(out)


def test_verify_survives_kill_everything_programs(tmp_path):
    """`ringrl verify` itself is out of reach: exit 0 and every row has its verdict."""
    ok = {"domain": "code", "tests": [{"input": "", "output": "ok"}]}
    programs = [
        "print('ok')",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('ok')",
        "import os, signal\nos.killpg(0, signal.SIGKILL)",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('ok')",
        "print('ok')",
    ]
    rows = [dict(ok, id=i, response=f"```python\n{p}\n```") for i, p in enumerate(programs)]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = ["timeout", "-s", "KILL", "120", sys.executable, "-m", "ringrl", "verify", str(inp), "-o", str(out)]
    r = subprocess.run(
        [*cmd, "--no-progress", "--workers", "2"], capture_output=True, text=True, env=clean_env(), timeout=150
    )
    assert r.returncode == 0, r.stderr[-2000:]
    got = [(g["id"], g["status"]) for g in map(json.loads, out.read_text().splitlines())]
    assert got == [(0, "correct"), (1, "runtime_error"), (2, "runtime_error"), (3, "correct"), (4, "correct")]
