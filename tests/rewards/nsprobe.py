"""Whether this machine can create the sandbox's namespaces, checked independently of ringrl.

The sandbox tests skip only where this probe fails, and print why. It deliberately does not
reuse ringrl's launch command (:func:`ringrl.rewards.sandbox.isolation_problem`): where plain
``unshare`` works, a bug in ringrl's launch must fail the tests, not skip them.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

SANDBOX_UID = 65534


@functools.lru_cache(maxsize=1)
def namespaces_unsupported() -> str | None:
    """Why user, PID, network and mount namespaces cannot be created here, or None if they can."""
    tools = ["unshare"] + (["setpriv"] if os.geteuid() == 0 else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    cmd = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--net", "--mount", "true"]
    if os.geteuid() == 0:
        cmd = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--", *cmd]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`unshare --user` did not run: {e}"
    if r.returncode != 0:
        return f"`unshare --user --pid --net --mount` fails here (exit {r.returncode}): {r.stderr.strip()[:200]}"
    return None


def world_usable_python() -> str | None:
    """An interpreter that uid 65534 can run (to build a virtual environment from), or None."""
    import sys
    from pathlib import Path

    for cand in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        p = Path(cand).resolve()
        try:
            if p.stat().st_mode & 0o001 and all(q.stat().st_mode & 0o001 for q in p.parents):
                return str(p)
        except OSError:
            continue
    return None
