"""Sandbox zygote: a long-lived interpreter inside the sandbox that forks one child per run.

Standard library only: this file is passed as ``python -I -c SOURCE HARNESS`` to an
interpreter running as an unprivileged uid inside fresh user/PID/network/mount/IPC/UTS
namespaces (see ``ringrl/rewards/sandbox.py``); ``HARNESS`` is the text of ``_harness.py``,
the code that the forked children run, executed here once in a private namespace. It is PID 1 of its PID namespace, so it survives
``kill(-1)`` from its children and can kill every other process of the namespace after
each run. It never runs untrusted code itself: each run is a forked child with rlimits.

Protocol (stdin/stdout, one JSON object per line): it first prints ``{"ready": ...}``;
then for each job line it prints one result ``{"status", "detail", "runs"}``. A failure of
the zygote itself (not of the program) is ``{"status": "error", "internal": true, ...}``,
after which the zygote exits: the parent starts a fresh one and runs the job again there.

Jobs:
- ``{"mode": "stdio", "code", "tests": [{"input", "output"}], ...limits}``: one child per
  test case, stdin from a file, stdout read through a capped pipe and compared here
  (whitespace-normalised). The first failing case stops the job.
- ``{"mode": "unit", "code", "test_code", "entry_point", ...limits}``: one child runs the
  program then the tests; it reports through an abstract unix socket whose random name
  only the harness knows. The zygote accepts a verdict only from the child's own pid
  (SO_PEERCRED), only after sending a fresh random nonce, and only as the exact bytes
  ``NONCE PASS``, and only if the child then exits with status 0. See docs/rewards.md
  for the threat model.
"""

import builtins
import contextlib
import json
import os
import resource
import secrets
import select
import signal
import socket
import stat
import struct
import sys
import time

# Modules a typical solution imports, preloaded so that a forked child starts warm.
for _m in (
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "math",
    "re",
    "string",
    "typing",
    "fractions",
    "decimal",
    "random",
    "statistics",
    "dataclasses",
    "copy",
    "operator",
    "traceback",
    "io",
    "enum",
    "datetime",
    "array",
):
    with contextlib.suppress(Exception):
        __import__(_m)


def build_harness(source):
    """``(unit_target, stdio_target)`` of the harness, executed in a private namespace."""
    ns = {"__builtins__": dict(builtins.__dict__), "__name__": "_ringrl_harness"}
    exec(compile(source, "<harness>", "exec"), ns)
    return ns["unit_target"], ns["stdio_target"]


def set_limits(job):
    t = max(1, int(job.get("cpu_s", 10)))
    mem = int(job.get("mem_mb", 512)) * 1024 * 1024
    lim = [
        (resource.RLIMIT_CPU, t, t + 1),
        (resource.RLIMIT_AS, mem, mem),
        (resource.RLIMIT_NPROC, int(job.get("nproc", 16)), int(job.get("nproc", 16))),
        (resource.RLIMIT_FSIZE, int(job.get("fsize_mb", 16)) << 20, int(job.get("fsize_mb", 16)) << 20),
        (resource.RLIMIT_NOFILE, 64, 64),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_MEMLOCK, 0, 0),
    ]
    for res, soft, hard in lim:
        resource.setrlimit(res, (soft, hard))


CPP_COMPILE_S = 30
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = 0.1  # seconds between checks of the sandbox's total memory during a run


def exec_target(argv):
    os.execv(argv[0], argv)


def norm_lines(text):
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    return lines


class Zygote:
    def __init__(self, base, harness):
        self.base = base
        self.init = os.getpid() == 1
        self.unit_target, self.stdio_target = build_harness(harness)
        self.cpu_s = 0.0  # CPU seconds of the last child reaped by watch()

    # -- process control ------------------------------------------------------
    def fork(self, workdir, in_fd, out_fd, err_fd, job, target, args):
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.chdir(workdir)
                os.dup2(in_fd, 0)
                os.dup2(out_fd, 1)
                os.dup2(err_fd, 2)
                os.closerange(3, 1 << 16)
                if not self.init:
                    os.setsid()
                os.umask(0o077)
                set_limits(job)
                target(*args)
            except BaseException:
                pass
            os._exit(99)
        return pid

    def kill_all(self, pid):
        """Kill every process of the sandbox except this one, and reap them all."""
        if self.init:
            while True:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(-1, signal.SIGKILL)
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    return
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            self._kill_orphans()

    def _kill_orphans(self):
        # Fallback mode (no PID namespace): we are a child subreaper; kill what got reparented to us.
        me = os.getpid()
        for _ in range(50):
            found = False
            try:
                pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
            except OSError:
                pids = []
            for p in pids:
                try:
                    with open(f"/proc/{p}/stat", "rb") as f:
                        stat = f.read()
                    ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == me:
                    found = True
                    with contextlib.suppress(OSError):
                        os.kill(p, signal.SIGKILL)
            while True:
                try:
                    r, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    r = 0
                if r == 0:
                    break
            if not found:
                return

    def sandbox_rss(self):
        """Resident bytes of every other process in the PID namespace (0 outside one)."""
        if not self.init:
            return 0
        total = 0
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
        except OSError:
            return 0
        for p in pids:
            try:
                with open(f"/proc/{p}/statm", "rb") as f:
                    total += int(f.read().split()[1]) * PAGE
            except (OSError, ValueError, IndexError):
                pass
        return total

    def watch(self, pid, deadline, mem_total, readers, drain):
        """The one watch loop of every run: wait for child ``pid`` until ``deadline``.

        ``readers`` maps a file descriptor to a callback called when it is readable; a callback
        returns ``"eof"`` (stop watching that fd), a ``(status, detail)`` verdict that ends the
        run, or None. Every ``TICK`` seconds the resident memory of the whole sandbox is checked
        against ``mem_total``. The run ends when the child has exited and, with ``drain``, every
        reader has reached end of file. Returns ``(verdict, wait_status)``: the verdict is None
        when the run ended normally, ``("timeout", ...)`` or ``("memory_limit", ...)`` when the
        loop stopped it; the wait status is None if the child was not reaped (its CPU seconds are
        then in ``self.cpu_s``). The caller kills everything that is left (:meth:`kill_all`).
        """
        pidfd = os.pidfd_open(pid)
        open_fds = set(readers)
        status = None
        self.cpu_s = 0.0
        next_check = time.monotonic() + TICK
        try:
            while status is None or (drain and open_fds):
                left = deadline - time.monotonic()
                if left <= 0:
                    return ("timeout", "wall time limit"), status
                watched = list(open_fds) + ([pidfd] if status is None else [])
                r, _, _ = select.select(watched, [], [], min(left, TICK))
                if time.monotonic() >= next_check:
                    if self.sandbox_rss() > mem_total:
                        return (
                            "memory_limit",
                            f"sandbox processes used more than {mem_total >> 20} MiB together",
                        ), status
                    next_check = time.monotonic() + TICK
                for fd in r:
                    if fd == pidfd:
                        _, status, usage = os.wait4(pid, 0)
                        self.cpu_s = usage.ru_utime + usage.ru_stime
                        continue
                    got = readers[fd](fd)
                    if got == "eof":
                        open_fds.discard(fd)
                    elif got is not None:
                        return got, status
            return None, status
        finally:
            os.close(pidfd)

    # -- jobs -----------------------------------------------------------------
    def compile_cpp(self, job, workdir):
        """Compile the C++ program in a child with wider limits; (argv, None) or (None, error result)."""
        src = os.path.join(workdir, "main.cpp")
        exe = os.path.join(workdir, "main")
        with open(src, "w", encoding="utf-8") as f:
            f.write(job["code"])
        limits = dict(job, cpu_s=CPP_COMPILE_S, mem_mb=max(2048, int(job.get("mem_mb", 512))), fsize_mb=64)
        err_r, err_w = os.pipe()
        null_r = os.open(os.devnull, os.O_RDONLY)
        cxx = job.get("cxx") or "/usr/bin/g++"
        pid = self.fork(
            workdir, null_r, err_w, err_w, limits, exec_target, ([cxx, "-O2", "-std=c++17", "-pipe", "-o", exe, src],)
        )
        os.close(err_w)
        os.close(null_r)
        err = bytearray()

        def read_err(fd):
            chunk = os.read(fd, 65536)
            if not chunk:
                return "eof"
            if len(err) < 4096:
                err.extend(chunk)
            return None

        mem = int(limits["mem_mb"]) << 21
        stopped, status = self.watch(pid, time.monotonic() + CPP_COMPILE_S, mem, {err_r: read_err}, drain=True)
        self.kill_all(pid)
        os.close(err_r)
        if stopped is not None and stopped[0] == "memory_limit":
            return None, {"status": "compile_error", "detail": "the compiler ran out of memory", "runs": 0}
        if stopped is not None:
            status = None
        if status is None:
            return None, {
                "status": "compile_error",
                "detail": f"compilation took longer than {CPP_COMPILE_S}s",
                "runs": 0,
            }
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            msg = err.decode("utf-8", "replace")
            first = next((line for line in msg.splitlines() if "error" in line), msg[:200])
            return None, {"status": "compile_error", "detail": first[:300], "runs": 0}
        return [exe], None

    def run_stdio(self, job, workdir):
        cap = int(job.get("output_cap", 1 << 20))
        timeout = float(job.get("timeout", 10.0))
        runs = 0
        mem_total = int(job.get("mem_total_mb", 2 * int(job.get("mem_mb", 512)))) << 20
        target, args = self.stdio_target, (job["code"],)
        if job.get("lang") == "cpp":
            argv, failed = self.compile_cpp(job, workdir)
            if failed is not None:
                return failed
            target, args = exec_target, (argv,)
        for i, case in enumerate(job["tests"]):
            inp = os.path.join(workdir, ".stdin")
            with open(inp, "w", encoding="utf-8") as f:
                f.write(str(case.get("input", "")))
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            in_fd = os.open(inp, os.O_RDONLY)
            os.unlink(inp)
            pid = self.fork(workdir, in_fd, out_w, err_w, job, target, args)
            os.close(out_w)
            os.close(err_w)
            os.close(in_fd)
            runs += 1
            out, err = bytearray(), bytearray()

            def read(fd, out=out, err=err, out_r=out_r, i=i):
                chunk = os.read(fd, 65536)
                if not chunk:
                    return "eof"
                if fd == out_r:
                    out.extend(chunk)
                    if len(out) > cap:
                        return ("output_limit", f"test {i}: more than {cap} bytes of output")
                elif len(err) < 4096:
                    err.extend(chunk)
                return None

            deadline = time.monotonic() + timeout
            verdict, status = self.watch(pid, deadline, mem_total, {out_r: read, err_r: read}, drain=True)
            if verdict is not None:
                if verdict[0] == "timeout":
                    verdict = ("timeout", f"test {i}: wall time limit {timeout:g}s")
                elif verdict[0] == "memory_limit":
                    verdict = ("memory_limit", f"test {i}: {verdict[1]}")
            self.kill_all(pid)
            for fd in (out_r, err_r):
                os.close(fd)
            if verdict is None:
                verdict = self.judge(
                    i, status, bytes(out), bytes(err), case, job.get("lang") != "cpp", max(1, int(job.get("cpu_s", 10)))
                )
            if verdict[0] != "correct":
                return {"status": verdict[0], "detail": verdict[1], "runs": runs}
        return {"status": "correct", "detail": f"{runs} tests passed", "runs": runs}

    def cpu_limited(self, sig, cpu_limit):
        """True if signal ``sig`` was the CPU limit's: SIGXCPU, or the hard limit's SIGKILL after
        the child used its CPU seconds (a program that kills itself is a runtime error)."""
        return sig == signal.SIGXCPU or (sig == signal.SIGKILL and self.cpu_s >= cpu_limit - 0.05)

    def judge(self, i, status, out, err, case, python=True, cpu_limit=10):
        errs = err.decode("utf-8", "replace").strip()
        last = errs.splitlines()[-1][:200] if errs else ""
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if self.cpu_limited(sig, cpu_limit):
                return ("timeout", f"test {i}: killed by signal {sig} (CPU time limit)")
            if "bad_alloc" in errs:
                return ("memory_limit", f"test {i}: std::bad_alloc")
            return ("runtime_error", f"test {i}: killed by signal {sig}")
        code = os.WEXITSTATUS(status)
        if python and code == 97:
            return ("compile_error", errs[:200])
        if (python and (code == 98 or "MemoryError" in last)) or (not python and "bad_alloc" in errs):
            return ("memory_limit", f"test {i}: {last}")
        if code != 0:
            return ("runtime_error", f"test {i}: exit status {code}: {last}")
        got = norm_lines(out.decode("utf-8", "replace"))
        want = norm_lines(str(case.get("output", "")))
        if got != want:
            return ("wrong", f"test {i}: output differs")
        return ("correct", "")

    def run_unit(self, job, workdir):
        timeout = float(job.get("timeout", 10.0))
        name = "\0ringrl-" + secrets.token_hex(16)
        nonce = secrets.token_hex(16).encode()
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(name)
        lsock.listen(4)
        devnull_w = os.open(os.devnull, os.O_WRONLY)
        devnull_r = os.open(os.devnull, os.O_RDONLY)
        pid = self.fork(
            workdir,
            devnull_r,
            devnull_w,
            devnull_w,
            job,
            self.unit_target,
            (job["code"], job["test_code"], job.get("entry_point") or "", name),
        )
        os.close(devnull_w)
        os.close(devnull_r)
        report = []
        mem_total = int(job.get("mem_total_mb", 2 * int(job.get("mem_mb", 512)))) << 20
        deadline = time.monotonic() + timeout

        def accept(fd):
            conn, _ = lsock.accept()
            try:
                cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                if struct.unpack("3i", cred)[0] == pid and not report:
                    conn.settimeout(max(0.05, deadline - time.monotonic()))
                    conn.sendall(nonce)
                    data = b""
                    while len(data) < 1024:
                        chunk = conn.recv(1024)
                        if not chunk:
                            break
                        data += chunk
                    report.append(data)
            except OSError:
                pass
            finally:
                conn.close()
            return None

        try:
            stopped, status = self.watch(pid, deadline, mem_total, {lsock.fileno(): accept}, drain=False)
        finally:
            self.kill_all(pid)
            lsock.close()
        too_big = stopped is not None and stopped[0] == "memory_limit"
        report = report[0] if report else None
        if too_big:
            return {
                "status": "memory_limit",
                "detail": f"sandbox processes used more than {mem_total >> 20} MiB together",
                "runs": 1,
            }
        if status is None:
            return {"status": "timeout", "detail": f"wall time limit {timeout:g}s", "runs": 1}
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if self.cpu_limited(sig, max(1, int(job.get("cpu_s", 10)))):
                return {"status": "timeout", "detail": f"killed by signal {sig} (CPU time limit)", "runs": 1}
            return {"status": "runtime_error", "detail": f"killed by signal {sig}", "runs": 1}
        code = os.WEXITSTATUS(status)
        if report is None or not report.startswith(nonce + b" "):
            return {
                "status": "runtime_error",
                "detail": f"the program ended before the tests finished (exit status {code}, no verdict from the harness)",
                "runs": 1,
            }
        body = report[len(nonce) + 1 :].decode("utf-8", "replace")
        if body == "PASS" and code == 0:
            return {"status": "correct", "detail": "all tests passed", "runs": 1}
        if body == "PASS":
            return {"status": "runtime_error", "detail": f"exit status {code} after the tests", "runs": 1}
        parts = body.split(" ", 2)
        kind = parts[1] if len(parts) > 1 else "error"
        if kind not in ("wrong", "runtime_error", "compile_error", "memory_limit", "error"):
            kind = "runtime_error"
        return {"status": kind, "detail": parts[2] if len(parts) > 2 else body, "runs": 1}

    def clean(self):
        """Empty the private temporary directories after a run and give them back mode 1777
        (the program runs as the same uid and may have changed it). Never crosses into another
        mount: the interpreter's read-only binds under /tmp stay. Raises if a directory is left
        unusable; the zygote then exits after answering, and the parent starts a fresh one."""
        bases = [self.base] + ([d for d in PRIVATE_DIRS[1:] if os.path.isdir(d)] if self.init else [])
        for b in bases:
            if self.init:
                os.chmod(b, 0o1777)
            wipe(b)
            if not os.access(b, os.W_OK | os.X_OK):
                raise OSError(f"{b} is not writable after the run")

    def run(self, job):
        workdir = os.path.join(self.base, "run-" + secrets.token_hex(8))
        os.mkdir(workdir, 0o700)
        if job.get("mode") == "stdio":
            return self.run_stdio(job, workdir)
        return self.run_unit(job, workdir)


PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


def wipe(top):
    """Remove everything under ``top`` that is on ``top``'s own file system (iteratively: a
    program may leave directories nested deeper than the recursion limit)."""
    dev = os.lstat(top).st_dev
    stack = [(top, False)]
    while stack:
        path, visited = stack.pop()
        if visited:
            with contextlib.suppress(OSError):
                os.rmdir(path)
            continue
        try:
            entries = os.listdir(path)
        except OSError:
            with contextlib.suppress(OSError):
                os.chmod(path, 0o700)
            try:
                entries = os.listdir(path)
            except OSError:
                continue
        for name in entries:
            p = os.path.join(path, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if st.st_dev != dev:
                continue  # a mount point (the interpreter's bind): not ours to remove
            if stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(OSError):
                    os.chmod(p, 0o700)
                stack.append((p, True))
                stack.append((p, False))
            else:
                with contextlib.suppress(OSError):
                    os.unlink(p)


def main():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if os.getpid() == 1:
        # Our own session: killpg(0) from a child must not reach the launcher processes
        # outside the PID namespace (same uid, same inherited process group).
        with contextlib.suppress(OSError):
            os.setsid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: children cannot ptrace or read our memory
        if os.getpid() != 1:
            libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER (fallback mode)
    except Exception:
        pass
    for m in ("ctypes", "_ctypes", "ctypes._endian"):
        sys.modules.pop(m, None)
    harness = sys.argv[1] if len(sys.argv) > 1 else ""
    del sys.argv[1:]
    base = os.environ.get("RINGRL_SANDBOX_BASE") or "/tmp"
    z = Zygote(base, harness)
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    ready = {"ready": True, "pid": os.getpid(), "uid": os.getuid(), "init": z.init}
    out.write(json.dumps(ready).encode() + b"\n")
    out.flush()
    while True:
        line = inp.readline()
        if not line:
            return
        healthy = True
        try:
            res = z.run(json.loads(line))
        except Exception as e:  # a zygote failure: answer, then let the parent start a fresh zygote
            res = {"status": "error", "detail": f"sandbox: {type(e).__name__}: {e}"[:300], "runs": 0, "internal": True}
            healthy = False
        try:
            z.clean()
        except Exception:
            healthy = False
        out.write(json.dumps(res).encode() + b"\n")
        out.flush()
        if not healthy:
            return


if __name__ == "__main__":  # run as `python -I -c SOURCE HARNESS`; importing this module does nothing
    main()
