"""Parent side of the code sandbox: launching zygotes in namespaces and talking to them.

A :class:`Sandbox` is one long-lived zygote process (``_zygote.py``) that runs as uid
65534 inside new user, PID, network, mount, IPC and UTS namespaces with private tmpfs
mounts over /tmp, /var/tmp, /run/lock and /dev/shm. It runs one job at a time; the
parent adds an outer deadline and kills and replaces a zygote that does not answer.

Launch chain (util-linux only, no extra Debian package)::

    setpriv --reuid=65534 --regid=65534 --clear-groups \
      unshare --user --map-root-user --pid --fork --kill-child --net --mount --ipc --uts --mount-proc \
        sh -c 'exec 3<PREFIX; mount -t tmpfs ... /tmp ...; bind /proc/self/fd/3 at PREFIX read-only;
               exec unshare --user --map-user=65534 --map-group=65534 PY -I -c ZYGOTE HARNESS'

``PREFIX`` are the interpreter's directories that lie under a private directory (a virtual
environment in /tmp, :func:`interpreter_binds`): opened before the tmpfs hides them and
bound back afterwards, read-only. The outer user namespace has the capabilities to mount;
the inner one maps the sandbox uid to a non-root uid, so after ``exec`` nothing inside
holds any capability (programs cannot ptrace the zygote, mount, or change limits back).

Where this chain does not work (no user namespaces, no util-linux), the sandbox refuses
to run code (:class:`SandboxRefused`, with :func:`isolation_problem` as the reason) unless
the user opted in (``RINGRL_SANDBOX_UNSAFE=1``, ``--unsafe-no-sandbox``): then the zygote
runs with rlimits only (as uid 65534 when we are root), with one loud warning.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import select
import shlex
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
_HARNESS_SRC = Path(__file__).with_name("_harness.py")
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


@functools.lru_cache(maxsize=8)
def interpreter_binds(python: str) -> tuple[str, ...]:
    """Directories of ``python`` (its prefixes and the directories of its executable) that lie
    under one of the private directories; the launch binds them back, read-only, over the
    sandbox's fresh tmpfs, so a virtual environment in /tmp still runs inside the sandbox."""
    query = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]))"
    paths = [os.path.dirname(os.path.abspath(python)), os.path.dirname(os.path.realpath(python))]
    try:
        r = subprocess.run([python, "-I", "-c", query], capture_output=True, timeout=30, env=_env(), cwd="/")
        if r.returncode == 0:
            paths += [p for p in json.loads(r.stdout) if isinstance(p, str)]
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    private = [os.path.realpath(d) for d in _PRIVATE_DIRS]
    found: list[str] = []
    for p in sorted({os.path.realpath(p) for p in paths if p}):
        if any(p.startswith(d + "/") for d in private) and not any(p.startswith(f + "/") for f in found):
            found.append(p)
    return tuple(found)


def _top_below(path: str) -> str:
    """``/tmp/a`` for ``/tmp/a/b/c``: the first directory below the private directory."""
    for d in _PRIVATE_DIRS:
        rd = os.path.realpath(d)
        if path.startswith(rd + "/"):
            return rd + "/" + path[len(rd) + 1 :].split("/")[0]
    raise ValueError(path)


def _ns_command(python: str, src: str, harness: str, binds: tuple[str, ...] = ()) -> list[str]:
    q = shlex.quote
    if len(binds) > 7:  # sh redirects single-digit descriptors only (3..9)
        raise ValueError(f"too many interpreter directories under the private mounts: {binds}")
    # Open each bind source before the tmpfs hides it; bind it back afterwards, read-only. A bind
    # deeper than the first level gets a read-only tmpfs at that first level, so that the sandboxed
    # program can neither rename nor remove the directories leading to the interpreter.
    opens = "".join(f"exec {3 + i}<{q(b)} || exit 112; " for i, b in enumerate(binds))
    mounts = " ".join(
        f"if [ -d {d} ]; then mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev tmpfs {d} || exit 111; fi;"
        for d in _PRIVATE_DIRS
    )
    tops: dict[str, list[int]] = {}
    for i, b in enumerate(binds):
        tops.setdefault(_top_below(b), []).append(i)
    rebind = ""
    for top, idx in tops.items():
        deep = any(binds[i] != top for i in idx)
        if deep:
            rebind += (
                f"mkdir -p {q(top)} && mount -t tmpfs -o size=1m,mode=755,nosuid,nodev tmpfs {q(top)} || exit 113; "
            )
        for i in idx:
            b = q(binds[i])
            rebind += (
                f"mkdir -p {b} && mount --no-canonicalize --bind /proc/self/fd/{3 + i} {b} "
                f"&& mount --no-canonicalize -o remount,bind,ro {b} || exit 113; exec {3 + i}<&-; "
            )
        if deep:
            rebind += f"mount --no-canonicalize -o remount,bind,ro {q(top)} || exit 113; "
    inner = (
        f"{opens}{mounts} {rebind}exec unshare --user --map-user={SANDBOX_UID} --map-group={SANDBOX_UID} "
        '-- "$0" -I -c "$1" "$2"'
    )
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
        harness,
    ]
    if os.geteuid() == 0:
        cmd = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"] + cmd
    return cmd


def _fallback_command(python: str, src: str, harness: str) -> list[str]:
    cmd = [python, "-I", "-c", src, harness]
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


_EXIT_REASONS = {
    111: "mounting the private tmpfs failed",
    112: "opening the interpreter's directory failed",
    113: "binding the interpreter's directory into the sandbox failed",
}


def _launch(python: str, src: str, harness: str) -> list[str]:
    return _ns_command(python, src, harness, interpreter_binds(python))


@functools.lru_cache(maxsize=1)
def isolation_problem() -> str | None:
    """Why the namespace launch chain does not work here (probed once per process), or None."""
    if os.environ.get("RINGRL_SANDBOX_NO_NAMESPACES") == "1":
        return "RINGRL_SANDBOX_NO_NAMESPACES=1 is set"
    for tool in ("unshare", "sh", "mount") + (("setpriv",) if os.geteuid() == 0 else ()):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    python = sandbox_python()
    probe = (
        "import os, sys; sys.stdout.write('%d %d %s' % (os.getuid(), os.getpid(), "
        "sorted(os.listdir('/tmp')) == sorted(a for a in sys.argv[1].split(':') if a)))"
    )
    tops = ":".join(
        sorted({_top_below(b).rsplit("/", 1)[1] for b in interpreter_binds(python) if b.startswith("/tmp/")})
    )
    try:
        r = subprocess.run(_launch(python, probe, tops), capture_output=True, timeout=30, env=_env(), cwd="/")
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return f"the namespace launch failed: {type(e).__name__}: {e}"
    got = r.stdout.decode(errors="replace").strip()
    if r.returncode == 0 and got == f"{SANDBOX_UID} 1 True":
        return None
    err = [line.strip() for line in r.stderr.decode(errors="replace").splitlines() if "dmesg" not in line]
    err = [line for line in err if line]
    why = _EXIT_REASONS.get(r.returncode, f"exit status {r.returncode}")
    return f"the namespace launch with {python} failed ({why}){': ' + err[0][:200] if err else ''}" + (
        f"; it printed {got[:80]!r}" if got else ""
    )


def namespaces_available() -> bool:
    """True if the sandbox runs isolated in user, PID, network and mount namespaces here."""
    return isolation_problem() is None


def unsafe_allowed(explicit: bool = False) -> bool:
    """True if the user opted in to running code without isolation (``--unsafe-no-sandbox``
    or ``RINGRL_SANDBOX_UNSAFE=1``)."""
    return explicit or os.environ.get("RINGRL_SANDBOX_UNSAFE") == "1"


def refusal() -> str:
    """The one-line reason code is not run, for errors and ``ringrl verify``."""
    return (
        "sandbox isolation is unavailable, so code is not run (to run it with rlimits only, never for "
        f"untrusted code: RINGRL_SANDBOX_UNSAFE=1 or --unsafe-no-sandbox): {isolation_problem()}"
    )


def require_isolation(rows: Any, what: str) -> None:
    """A one-line UserError, before any work, when ``rows`` hold code rows that the sandbox would
    refuse (no isolation here and no opt-in): a run must not train or score on refusals."""
    if any(isinstance(r, dict) and r.get("domain") == "code" for r in rows) and not (
        namespaces_available() or unsafe_allowed()
    ):
        from ringrl.errors import UserError

        raise UserError(f"{what}: {refusal()}")


_warned = False


def warn_no_namespaces() -> None:
    """Say once, loudly, that code runs with rlimits only (the user opted in)."""
    global _warned
    if _warned:
        return
    _warned = True
    msg = (
        f"ringrl sandbox: isolation is unavailable ({isolation_problem()}) and unsafe mode is on; untrusted "
        "code runs with rlimits only (no PID/network/mount isolation). Do not run untrusted code on this machine."
    )
    if log.hasHandlers():  # otherwise logging's last-resort handler would print it a second time
        log.warning(msg)
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


class SandboxDied(RuntimeError):
    """The zygote did not answer (killed, crashed or past the outer deadline)."""


class SandboxRefused(SandboxDied):
    """Isolation is unavailable and the user did not opt in to running code without it."""


class Sandbox:
    """One zygote process; :meth:`run` sends a job and waits for its result.

    Raises :class:`SandboxRefused` when isolation is unavailable, unless ``allow_unsafe``
    (or ``RINGRL_SANDBOX_UNSAFE=1``): then the zygote runs with rlimits only.
    """

    def __init__(self, start_timeout: float = 30.0, allow_unsafe: bool = False):
        src = _ZYGOTE_SRC.read_text(encoding="utf-8")
        harness = _HARNESS_SRC.read_text(encoding="utf-8")
        self.isolated = namespaces_available()
        self._fallback_dir: str | None = None
        env = _env()
        if self.isolated:
            cmd = _launch(sandbox_python(), src, harness)
        elif not unsafe_allowed(allow_unsafe):
            raise SandboxRefused(refusal())
        else:
            warn_no_namespaces()
            self._fallback_dir = tempfile.mkdtemp(prefix="ringrl-sandbox-")
            if os.geteuid() == 0:
                os.chown(self._fallback_dir, SANDBOX_UID, SANDBOX_UID)
            os.chmod(self._fallback_dir, 0o700)
            env["RINGRL_SANDBOX_BASE"] = self._fallback_dir
            cmd = _fallback_command(sandbox_python(), src, harness)
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
