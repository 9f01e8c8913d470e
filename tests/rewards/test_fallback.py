"""Without namespaces the sandbox falls back to rlimits only and says so once, loudly."""

import os
import subprocess
import sys

SCRIPT = """
from ringrl.rewards import RewardPool
rows = [{"domain": "code", "tests": [{"input": "2", "output": "4"}]}] * 2
for _ in range(2):
    with RewardPool(workers=1, code_timeout=3) as p:
        v = p.score(rows, ["```python\\nprint(int(input()) ** 2)\\n```", "```python\\nprint(5)\\n```"])
        print([x.status for x in v])
"""


def test_fallback_warns_once_and_still_grades():
    env = dict(os.environ, RINGRL_SANDBOX_NO_NAMESPACES="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["['correct', 'wrong']"] * 2
    assert r.stderr.count("namespaces are unavailable") == 1
