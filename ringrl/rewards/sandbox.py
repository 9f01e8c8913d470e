"""Parent side of the code sandbox: launching zygotes in namespaces and talking to them.

A :class:`Sandbox` is one long-lived zygote process (``_zygote.py``) that runs as uid
65534 inside new user, PID, network, mount, IPC and UTS namespaces with private tmpfs
mounts over /tmp, /var/tmp, /run/lock and /dev/shm. It runs one job at a time; the
parent adds an outer deadline and kills and replaces a zygote that does not answer.

Launch chain (util-linux only, no extra Debian package)::

    setpriv --reuid=65534 --regid=65534 --clear-groups \
      unshare --user --map-root-user --pid --fork --kill-child --net --mount --ipc --uts --mount-proc \
        sh -c 'mount -t tmpfs ... /tmp ...; exec unshare --user --map-user=65534 --map-group=65534 PY -I -c ZYGOTE'

The outer user namespace has the capabilities to mount the tmpfs; the inner one maps the
sandbox uid to a non-root uid, so after ``exec`` nothing inside holds any capability
(programs cannot ptrace the zygote, mount, or change limits back). Where this chain does
not work (no user namespaces, no util-linux), :func:`namespaces_available` is False and
the zygote runs with rlimits only (as uid 65534 when we are root), with one loud warning.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("ringrl.rewards.sandbox")

SANDBOX_UID = 65534
_ZYGOTE_SRC = Path(__file__).with_name("_zygote.py")
_PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run/lock", "/dev/shm")


@dataclass(frozen=True)
class Limits:
    """Per-execution limits of one sandboxed run (one test case in stdin/stdout mode)."""

    timeout: float = 10.0  # wall seconds per execution; CPU limit is ceil(timeout) seconds
    mem_mb: int = 512  # RLIMIT_AS per process
    mem_total_mb: int = 1024  # resident memory of all the run's processes together (checked every 0.1 s)
    nproc: int = 16  # RLIMIT_NPROC (processes and threads of the sandbox uid in its namespace)
    fsize_mb: int = 16  # RLIMIT_FSIZE
    output_cap: int = 1 << 20  # bytes of stdout kept per execution; more kills it (output_limit)


def _world_usable(path: str) -> bool:
    """True if uid 65534 can execute ``path`` (every parent directory searchable)."""
    p = Path(path).resolve()
    try:
        if not (p.stat().st_mode & stat.S_IXOTH):
            return False
        return all(q.stat().st_mode & stat.S_IXOTH for q in p.parents)
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def sandbox_python() -> str:
    """The interpreter used inside the sandbox: ``RINGRL_SANDBOX_PYTHON``, else ours if
    the unprivileged uid can run it, else the system ``python3``."""
    env = os.environ.get("RINGRL_SANDBOX_PYTHON")
    if env:
        return env
    if os.geteuid() != 0 or _world_usable(sys.executable):
        return sys.executable
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if _world_usable(cand):
            return cand
    return sys.executable


def _ns_command(python: str, src: str) -> list[str]:
    mounts = " ".join(
        f"if [ -d {d} ]; then mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev tmpfs {d} || exit 111; fi;"
        for d in _PRIVATE_DIRS
    )
    inner = f'{mounts} exec unshare --user --map-user={SANDBOX_UID} --map-group={SANDBOX_UID} -- "$0" -I -c "$1"'
    cmd = [
        "unshare",
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--kill-child",
        "--net",
        "--mount",
        "--ipc",
        "--uts",
        "--mount-proc",
        "--",
        "sh",
        "-c",
        inner,
        python,
        src,
    ]
    if os.geteuid() == 0:
        cmd = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"] + cmd
    return cmd


def _fallback_command(python: str, src: str) -> list[str]:
    cmd = [python, "-I", "-c", src]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        cmd = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"] + cmd
    return cmd


def _env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Probe once per process whether the namespace launch chain works here."""
    if os.environ.get("RINGRL_SANDBOX_NO_NAMESPACES") == "1":
        return False
    if not (shutil.which("unshare") and (os.geteuid() != 0 or shutil.which("setpriv"))):
        return False
    probe = "import os,sys; sys.stdout.write('%d %d' % (os.getuid(), os.getpid()))"
    try:
        r = subprocess.run(_ns_command(sandbox_python(), probe), capture_output=True, timeout=30, env=_env(), cwd="/")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and r.stdout.decode(errors="replace").strip() == f"{SANDBOX_UID} 1"


_warned = False


def warn_no_namespaces() -> None:
    """Say once, loudly, that code runs with rlimits only."""
    global _warned
    if _warned:
        return
    _warned = True
    msg = (
        "ringrl sandbox: Linux namespaces are unavailable here; untrusted code runs with "
        "rlimits only (no PID/network/mount isolation). Do not run untrusted code on this machine."
    )
    if log.hasHandlers():  # otherwise logging's last-resort handler would print it a second time
        log.warning(msg)
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


class SandboxDied(RuntimeError):
    """The zygote did not answer (killed, crashed or past the outer deadline)."""


class Sandbox:
    """One zygote process; :meth:`run` sends a job and waits for its result."""

    def __init__(self, start_timeout: float = 30.0):
        src = _ZYGOTE_SRC.read_text(encoding="utf-8")
        self.isolated = namespaces_available()
        self._fallback_dir: str | None = None
        env = _env()
        if self.isolated:
            cmd = _ns_command(sandbox_python(), src)
        else:
            warn_no_namespaces()
            self._fallback_dir = tempfile.mkdtemp(prefix="ringrl-sandbox-")
            if os.geteuid() == 0:
                os.chown(self._fallback_dir, SANDBOX_UID, SANDBOX_UID)
            os.chmod(self._fallback_dir, 0o700)
            env["RINGRL_SANDBOX_BASE"] = self._fallback_dir
            cmd = _fallback_command(sandbox_python(), src)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        self._buf = b""
        try:
            ready = json.loads(self._readline(time.monotonic() + start_timeout))
        except (SandboxDied, ValueError) as e:
            self.close()
            raise SandboxDied(f"sandbox did not start: {e}") from None
        if not ready.get("ready"):
            self.close()
            raise SandboxDied("sandbox did not start")

    def _readline(self, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxDied("no answer before the deadline")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise SandboxDied("sandbox exited")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def submit(self, job: dict[str, Any]) -> None:
        """Send one job; the zygote must be idle."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            raise SandboxDied("sandbox exited") from None

    def fileno(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def poll_result(self) -> dict[str, Any] | None:
        """Read what is available (call when :meth:`fileno` is readable); the result or None."""
        if b"\n" not in self._buf:
            chunk = os.read(self.fileno(), 1 << 16)
            if not chunk:
                raise SandboxDied("sandbox exited")
            self._buf += chunk
        if b"\n" not in self._buf:
            return None
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            raise SandboxDied("garbled answer from the sandbox") from None

    def run(self, job: dict[str, Any], deadline_s: float) -> dict[str, Any]:
        """Run one job and wait; raise :class:`SandboxDied` if the zygote fails or overruns."""
        self.submit(job)
        try:
            return json.loads(self._readline(time.monotonic() + deadline_s))
        except ValueError:
            raise SandboxDied("garbled answer from the sandbox") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        if self._fallback_dir:
            shutil.rmtree(self._fallback_dir, ignore_errors=True)
            self._fallback_dir = None
