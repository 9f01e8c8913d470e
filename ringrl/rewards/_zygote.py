"""Sandbox zygote: a long-lived interpreter inside the sandbox that forks one child per run.

Standard library only: this file is passed as ``python -I -c SOURCE`` to an interpreter
running as an unprivileged uid inside fresh user/PID/network/mount/IPC/UTS namespaces
(see ``ringrl/rewards/sandbox.py``). It is PID 1 of its PID namespace, so it survives
``kill(-1)`` from its children and can kill every other process of the namespace after
each run. It never runs untrusted code itself: each run is a forked child with rlimits.

Protocol (stdin/stdout, one JSON object per line): it first prints ``{"ready": ...}``;
then for each job line it prints one result ``{"status", "detail", "runs"}``.

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

HARNESS_SRC = r'''
import builtins as _b, os as _os, signal as _signal, _thread, _socket, sys as _sys, io as _io
_exit = _os._exit
_count = _thread._count
_SockT = _socket.socket
_AF_UNIX = _socket.AF_UNIX
_STREAM = _socket.SOCK_STREAM
_sig = _signal.signal
_setitimer = _signal.setitimer
_IGN = _signal.SIG_IGN
_valid = sorted(_signal.valid_signals())
_addhook = _sys.addaudithook
_compile = compile
_exec = exec
_fsdecode = _os.fsdecode
_basename = _os.path.basename
_BaseException = BaseException
_AssertionError = AssertionError
_MemoryError = MemoryError
_SyntaxError = SyntaxError
_RecursionError = RecursionError
_type = type
_str = str
_dict = dict
_isinstance = isinstance
_pristine = dict(_b.__dict__)
_FunctionType = type(lambda: None)
_mro_of = type.__dict__["__mro__"].__get__
_dict_of = type.__dict__["__dict__"].__get__
_flags_of = type.__dict__["__flags__"].__get__
_HEAPTYPE = 1 << 9
_list_iter, _tuple_iter, _set_iter, _fset_iter = list.__iter__, tuple.__iter__, set.__iter__, frozenset.__iter__
_dict_keys, _dict_values = dict.keys, dict.values
_list, _len, _range = list, len, range
# Methods that make a returned object compare, test or subtract as anything: overriding them
# in a class the program defines is the "always equal" reward hack.
_SUSPECT = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__abs__",
            "__sub__", "__rsub__", "__float__", "__round__", "__len__")


def _trusted_types():
    """Library classes, each with a snapshot of its comparison methods (a program may patch them)."""
    import collections, fractions, decimal, datetime, enum
    found = {}
    for mod in (collections, fractions, decimal, datetime, enum):
        for v in list(vars(mod).values()):
            if isinstance(v, type):
                d = _dict_of(v)
                found[v] = tuple(d.get(n) for n in _SUSPECT)
    return found


_TRUSTED = _trusted_types()


def _rigged(value):
    """True if ``value`` (or anything in the lists, tuples, sets and dicts it holds) is an
    instance of a class defined at run time that overrides comparison or truth."""
    stack = [value]
    seen = 0
    while stack:
        x = stack.pop()
        seen += 1
        if seen > 100000:
            return False
        t = _type(x)
        for c in _mro_of(t):
            if c is object or not (_flags_of(c) & _HEAPTYPE):
                continue
            d = _dict_of(c)
            snap = _TRUSTED.get(c)
            if snap is not None:
                for i in _range(_len(_SUSPECT)):
                    if d.get(_SUSPECT[i]) is not snap[i]:
                        return True  # a library class whose comparison was patched
                continue
            for name in _SUSPECT:
                if name in d:
                    return True
        if _isinstance(x, _list):
            stack.extend(_list_iter(x))
        elif _isinstance(x, tuple):
            stack.extend(_tuple_iter(x))
        elif _isinstance(x, set):
            stack.extend(_set_iter(x))
        elif _isinstance(x, frozenset):
            stack.extend(_fset_iter(x))
        elif _isinstance(x, dict):
            stack.extend(_dict_keys(x))
            stack.extend(_dict_values(x))
    return False


def _guard(fn, denied, rigged):
    def candidate(*args, **kwargs):
        result = fn(*args, **kwargs)
        if rigged(result):
            raise denied("sandbox: the candidate returned an object whose class overrides comparison")
        return result
    return candidate
_Denied = type("SandboxDenied", (RuntimeError,), {})
_FrameDenied = type("SandboxFrameDenied", (ValueError,), {})
_BLOCK_EVENTS = frozenset(("sys._current_frames", "sys.settrace", "sys.setprofile",
    "sys.addaudithook", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "os.exec", "os.posix_spawn", "os.spawn", "os.system",
    "os.fork", "os.forkpty", "subprocess.Popen", "pty.spawn", "os.startfile",
    "code.__new__", "function.__new__", "sys.setrecursionlimit_never"))
_BLOCK_PREFIXES = ("ctypes.", "socket.", "cpython.", "_xxsubinterpreters", "os.symlink", "os.link")
_FRAME_ATTRS = frozenset(("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_locals", "f_globals"))
_BLOCK_MODULES = frozenset(("ctypes", "_ctypes", "_posixsubprocess", "subprocess", "multiprocessing",
    "_multiprocessing", "_xxsubinterpreters", "_testcapi", "_testinternalcapi", "gc_never"))


def _name(e):
    try:
        n = _type(e).__name__
        return n if _isinstance(n, _str) else "Exception"
    except _BaseException:
        return "Exception"


def _msg(e):
    try:
        s = _str(e)
        return s[:200] if _isinstance(s, _str) else ""
    except _BaseException:
        return ""


def unit_target(code, test_code, entry_point, sockname):
    # Everything the finish uses is bound here, before any program code runs: even a
    # program that reached this module's globals could not change what the finish does.
    count, setitimer, sig, ign, valid, exit_ = _count, _setitimer, _sig, _IGN, _valid, _exit
    SockT, AF_UNIX, STREAM, BaseExc = _SockT, _AF_UNIX, _STREAM, _BaseException
    done = [False]

    def hook(event, args):
        if done[0]:
            return
        if event == "sys._getframe" or (event == "object.__getattr__" and len(args) > 1 and args[1] in _FRAME_ATTRS):
            raise _FrameDenied("sandbox: frame access is not allowed")
        if event in _BLOCK_EVENTS or event.startswith(_BLOCK_PREFIXES):
            raise _Denied("sandbox: " + event + " is not allowed")
        if event == "import" and args and _isinstance(args[0], _str):
            if args[0].partition(".")[0] in _BLOCK_MODULES:
                raise ImportError("sandbox: import of " + args[0] + " is not allowed")
        if event == "open" and args and _isinstance(args[0], (_str, bytes)):
            p = _fsdecode(args[0])
            if p.startswith("/proc") or _basename(p.rstrip("/")) in ("mem", "maps", "pagemap"):
                raise _Denied("sandbox: opening " + p + " is not allowed")

    _addhook(hook)
    verdict = b"FAIL error harness"
    prog = {"__name__": "__candidate__", "__builtins__": _b}
    tns = None
    try:
        try:
            compiled = _compile(code, "<program>", "exec")
        except _BaseException as e:
            verdict = ("FAIL compile_error " + _name(e) + ": " + _msg(e)).encode("utf-8", "replace")
            compiled = None
        if compiled is not None:
            _exec(compiled, prog)
            tns = _dict(prog)
            for k in _list(prog):
                if _type(prog[k]) is _FunctionType:  # the tests call the program's functions through the guard
                    tns[k] = _guard(prog[k], _Denied, _rigged)
            tns["__builtins__"] = _dict(_pristine)
            tns["__name__"] = "__tests__"
            _exec(_compile(test_code, "<tests>", "exec"), tns)
            if entry_point:
                if entry_point not in prog:
                    verdict = ("FAIL wrong entry point " + entry_point + " not defined").encode()
                    raise _AssertionError("entry point missing")
                if "check" not in tns:
                    verdict = b"FAIL error test code defines no check()"
                    raise _AssertionError("no check")
                tns["check"](_guard(prog[entry_point], _Denied, _rigged))
            verdict = b"PASS"
    except _BaseException as e:
        if verdict == b"PASS" or verdict == b"FAIL error harness":
            n = _name(e)
            kind = "wrong" if _isinstance(e, _AssertionError) else (
                "memory_limit" if _isinstance(e, _MemoryError) else "runtime_error")
            verdict = ("FAIL " + kind + " " + n + ": " + _msg(e)).encode("utf-8", "replace")
    # Finish: no program code may run from here on.
    try:
        if count() != 0:
            verdict = b"FAIL runtime_error threads still running after the tests"
        for s in (0, 1, 2):
            setitimer(s, 0)
        for s in valid:
            try:
                sig(s, ign)
            except BaseExc:
                pass
        done[0] = True
        s = SockT(AF_UNIX, STREAM)
        s.settimeout(5.0)
        s.connect(sockname)
        nonce = s.recv(64)
        s.sendall(nonce + b" " + verdict[:400])
        s.close()
    except BaseExc:
        exit_(3)
    exit_(0)


def stdio_target(code):
    _sys.stdin = _io.TextIOWrapper(_io.BufferedReader(_io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="replace")
    _sys.stdout = _io.TextIOWrapper(_io.BufferedWriter(_io.FileIO(1, "w", closefd=False)), encoding="utf-8", errors="replace")
    _sys.stderr = _io.TextIOWrapper(_io.BufferedWriter(_io.FileIO(2, "w", closefd=False)), encoding="utf-8", errors="replace")
    try:
        compiled = _compile(code, "<program>", "exec")
    except _BaseException as e:
        try:
            _os.write(2, ("compile_error " + _name(e) + ": " + _msg(e)).encode("utf-8", "replace"))
        finally:
            _exit(97)
    status = 0
    try:
        _exec(compiled, {"__name__": "__main__", "__builtins__": _b})
    except SystemExit as e:
        status = 0 if e.code is None or e.code == 0 else 1
    except _BaseException as e:
        status = 98 if _isinstance(e, _MemoryError) else 1
        try:
            _sys.stderr.write(_name(e) + ": " + _msg(e) + "\n")
        except _BaseException:
            pass
    for f in (_sys.stdout, _sys.stderr):
        try:
            f.flush()
        except _BaseException:
            pass
    _exit(status)
'''


def build_harness():
    ns = {"__builtins__": dict(builtins.__dict__), "__name__": "_ringrl_harness"}
    exec(compile(HARNESS_SRC, "<harness>", "exec"), ns)
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
    def __init__(self, base):
        self.base = base
        self.init = os.getpid() == 1
        self.unit_target, self.stdio_target = build_harness()

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

    def wait_exit(self, pid, pidfd, deadline):
        """Wait for the child until the deadline; return its wait status or None on timeout."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([pidfd], [], [], left)
            if r:
                _, status = os.waitpid(pid, 0)
                return status

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
        pidfd = os.pidfd_open(pid)
        deadline = time.monotonic() + CPP_COMPILE_S
        err = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([err_r], [], [], left)
            if not r:
                continue
            chunk = os.read(err_r, 65536)
            if not chunk:
                break
            if len(err) < 4096:
                err += chunk
        status = self.wait_exit(pid, pidfd, deadline)
        self.kill_all(pid)
        os.close(err_r)
        os.close(pidfd)
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
            pidfd = os.pidfd_open(pid)
            deadline = time.monotonic() + timeout
            out, err = bytearray(), bytearray()
            next_check = time.monotonic() + TICK
            open_fds = {out_r, err_r}
            verdict = None
            while open_fds:
                left = deadline - time.monotonic()
                if left <= 0:
                    verdict = ("timeout", f"test {i}: wall time limit {timeout:g}s")
                    break
                r, _, _ = select.select(list(open_fds), [], [], min(left, TICK))
                if time.monotonic() >= next_check and self.sandbox_rss() > mem_total:
                    verdict = (
                        "memory_limit",
                        f"test {i}: sandbox processes used more than {mem_total >> 20} MiB together",
                    )
                    break
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + TICK
                for fd in r:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        open_fds.discard(fd)
                    elif fd == out_r:
                        out += chunk
                        if len(out) > cap:
                            verdict = ("output_limit", f"test {i}: more than {cap} bytes of output")
                    elif len(err) < 4096:
                        err += chunk
                if verdict:
                    break
            status = None
            if verdict is None:
                status = self.wait_exit(pid, pidfd, deadline)
                if status is None:
                    verdict = ("timeout", f"test {i}: wall time limit {timeout:g}s")
            self.kill_all(pid)
            for fd in (out_r, err_r, pidfd):
                os.close(fd)
            if verdict is None:
                verdict = self.judge(i, status, bytes(out), bytes(err), case, job.get("lang") != "cpp")
            if verdict[0] != "correct":
                return {"status": verdict[0], "detail": verdict[1], "runs": runs}
        return {"status": "correct", "detail": f"{runs} tests passed", "runs": runs}

    def judge(self, i, status, out, err, case, python=True):
        errs = err.decode("utf-8", "replace").strip()
        last = errs.splitlines()[-1][:200] if errs else ""
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU or sig == signal.SIGKILL:
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
        pidfd = os.pidfd_open(pid)
        deadline = time.monotonic() + timeout
        report = None
        status = None
        mem_total = int(job.get("mem_total_mb", 2 * int(job.get("mem_mb", 512)))) << 20
        too_big = False
        next_check = time.monotonic() + TICK
        try:
            while status is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([lsock, pidfd], [], [], min(left, TICK))
                if time.monotonic() >= next_check:
                    if self.sandbox_rss() > mem_total:
                        too_big = True
                        break
                    next_check = time.monotonic() + TICK
                if lsock in r:
                    conn, _ = lsock.accept()
                    try:
                        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                        peer = struct.unpack("3i", cred)[0]
                        if peer == pid and report is None:
                            conn.settimeout(max(0.05, deadline - time.monotonic()))
                            conn.sendall(nonce)
                            data = b""
                            while len(data) < 1024:
                                chunk = conn.recv(1024)
                                if not chunk:
                                    break
                                data += chunk
                            report = data
                    except OSError:
                        pass
                    finally:
                        conn.close()
                if pidfd in r:
                    _, status = os.waitpid(pid, 0)
        finally:
            self.kill_all(pid)
            lsock.close()
            os.close(pidfd)
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
            if sig in (signal.SIGXCPU, signal.SIGKILL):
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
        """Remove everything the run left in the private temporary directories."""
        import shutil

        bases = [self.base] + (
            [d for d in ("/var/tmp", "/dev/shm", "/run/lock") if os.path.isdir(d)] if self.init else []
        )

        def onerror(func, path, exc):
            try:
                os.chmod(os.path.dirname(path) or ".", 0o700)
                os.chmod(path, 0o700)
                func(path)
            except OSError:
                pass

        entries = []
        for b in bases:
            with contextlib.suppress(OSError):
                entries += [os.path.join(b, e) for e in os.listdir(b)]
        for p in entries:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, onerror=onerror)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(p)

    def run(self, job):
        workdir = os.path.join(self.base, "run-" + secrets.token_hex(8))
        os.mkdir(workdir, 0o700)
        try:
            if job.get("mode") == "stdio":
                return self.run_stdio(job, workdir)
            return self.run_unit(job, workdir)
        finally:
            self.clean()


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
    base = os.environ.get("RINGRL_SANDBOX_BASE") or "/tmp"
    z = Zygote(base)
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    ready = {"ready": True, "pid": os.getpid(), "uid": os.getuid(), "init": z.init}
    out.write(json.dumps(ready).encode() + b"\n")
    out.flush()
    while True:
        line = inp.readline()
        if not line:
            return
        try:
            job = json.loads(line)
            res = z.run(job)
        except Exception as e:  # a zygote bug must not leave the parent waiting
            res = {"status": "error", "detail": f"sandbox: {type(e).__name__}: {e}"[:300], "runs": 0}
        out.write(json.dumps(res).encode() + b"\n")
        out.flush()


if __name__ == "__main__":  # run as `python -I -c SOURCE`; importing this module does nothing
    main()
