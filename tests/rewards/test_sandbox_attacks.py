"""Sandbox attacks and reward hacks: each gets its specific status, and the verifier and host stay healthy.

These tests skip only where plain ``unshare --user`` cannot create namespaces (an independent
probe, ``nsprobe.py``, printed as the skip reason); where it can, a sandbox that does not
launch isolated fails them. Attacks that could hurt the machine if isolation were missing
(fork bomb, ``kill(-1)``) run in ``test_sandbox_hostile_batch.py``, in a child process under a
hard outer ``timeout -s KILL`` (DESIGN.md, "Sandbox safety"). No assertion here is on time.
"""

import os
import secrets
import signal
import socket
import subprocess
import threading

import pytest

from ringrl.rewards import Limits, RewardPool
from ringrl.rewards.sandbox import SANDBOX_UID, interpreter_binds, isolation_problem, sandbox_python

from .nsprobe import namespaces_unsupported

WHY_NOT = namespaces_unsupported()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no Linux namespaces on this machine: {WHY_NOT}")

OK = {"domain": "code", "tests": [{"input": "", "output": "ok"}]}
UNIT = {"domain": "code", "test_code": "assert f(2) == 4\nassert f(3) == 9\n"}
HUMANEVAL = {
    "domain": "code",
    "prompt": "def f(x):\n",
    "entry_point": "f",
    "tests": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n",
}
WRONG_F = "def f(x):\n    return 0\n"


def py(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.fixture(scope="module")
def pool():
    problem = isolation_problem()
    if problem is not None:  # namespaces work here (the probe said so): this is our bug
        pytest.fail(f"unshare works on this machine but the sandbox launch is not isolated: {problem}")
    with RewardPool(workers=1, code_timeout=2.0) as p:
        yield p


def assert_healthy(pool):
    """The verifier still grades a correct program correctly (same or replaced zygote)."""
    v = pool.score([OK, UNIT], [py("print('ok')"), py("def f(x):\n    return x * x")])
    assert [x.status for x in v] == ["correct", "correct"], v


def one(pool, row, code):
    return pool.score([row], [py(code)])[0]


# -- isolation facts, proved by a program that can only pass if the fact holds ----------------
def test_launch_is_isolated_where_namespaces_work():
    assert isolation_problem() is None


def test_runs_as_unprivileged_uid_in_own_pid_namespace(pool):
    v = one(pool, OK, f"import os\nprint('ok' if os.getuid() == {SANDBOX_UID} and os.getppid() == 1 else os.getuid())")
    assert v.status == "correct", v


def test_no_network_namespace_loopback_server_unreachable(pool):
    """A server listening on the host's loopback: the host reaches it, the sandbox must not,
    and the sandbox has no interface but ``lo``. Offline alone would not pass this."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = []

    def serve():
        server.settimeout(10)
        try:
            while True:
                conn, _ = server.accept()
                accepted.append(conn.recv(16))
                conn.close()
        except OSError:
            return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:  # control: reachable from here
            c.sendall(b"host")
        code = (
            "import socket\n"
            "ifaces = sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:])\n"
            "try:\n"
            f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    s.sendall(b'sandbox')\n"
            "    print('reached host')\n"
            "except OSError as e:\n"
            "    print(ifaces, type(e).__name__)\n"
        )
        row = {"domain": "code", "tests": [{"input": "", "output": "['lo'] OSError"}]}
        v = pool.score([row], [py(code.replace("type(e).__name__", "'OSError'"))])[0]
        assert v.status == "correct", v
    finally:
        server.close()
        t.join(5)
    assert accepted[:1] == [b"host"] and b"sandbox" not in accepted


def test_host_tmp_is_private_and_host_dirs_not_writable(pool, tmp_path):
    name = f"ringrl-escape-{secrets.token_hex(6)}"
    markers = [f"{d}/{name}" for d in ("/tmp", "/var/tmp", "/dev/shm")]
    probe = tmp_path / "probe.txt"  # a host dir owned by root
    host_marker = f"/tmp/ringrl-host-{secrets.token_hex(6)}"
    open(host_marker, "w").close()
    # what /tmp may hold inside: the run's own directory, the marker, and the interpreter's binds
    allowed = sorted({b.split("/")[2] for b in interpreter_binds(sandbox_python()) if b.startswith("/tmp/")})
    code = (
        f"import os\nfor m in {markers!r}:\n    open(m, 'w').write('x')\n"
        f"host = sorted(e for e in os.listdir('/tmp') if not e.startswith('run-') and e != {name!r})\n"
        f"assert not os.path.exists({host_marker!r})\n"
        f"try:\n    open({str(probe)!r}, 'w').write('x')\n    print('wrote host')\nexcept OSError:\n"
        f"    print('ok' if host == {allowed!r} else host)"
    )
    try:
        v = one(pool, OK, code)
        assert v.status == "correct", v
        assert not any(os.path.exists(m) for m in markers) and not probe.exists()
        assert os.path.exists(host_marker)  # the host's /tmp file is neither seen nor removed
    finally:
        os.unlink(host_marker)


def test_workdir_is_removed_between_runs(pool):
    one(
        pool,
        OK,
        "open('left-behind', 'w').write('x')\nfor d in ('/tmp', '/var/tmp', '/dev/shm'):\n    open(d + '/also', 'w').write('x')\nprint('ok')",
    )
    v = one(
        pool,
        OK,
        "import os\nleft = [d for d in ('left-behind', '/tmp/also', '/var/tmp/also', '/dev/shm/also') if os.path.exists(d)]\nprint('ok' if not left else left)",
    )
    assert v.status == "correct", v


def test_private_dirs_restored_after_a_program_breaks_them(pool):
    """The program runs as the same uid as the zygote: chmod 0 of /tmp must not break later rows."""
    assert one(pool, OK, "import os\nos.chmod('/tmp', 0)\nos.chmod('/dev/shm', 0)\nprint('ok')").status == "correct"
    v = one(pool, OK, "import os\nprint('ok' if os.stat('/tmp').st_mode & 0o7777 == 0o1777 else 'ko')")
    assert v.status == "correct", v
    assert_healthy(pool)


# -- early exits and reward hacks in unit-test mode: (program, status, detail) for both row kinds ----
DENIED = "SandboxDenied: sandbox: "
HACKS = {
    "sys.exit(0) before tests": ("import sys\n" + WRONG_F + "sys.exit(0)", "runtime_error", "SystemExit: 0"),
    "os._exit(0) before tests": (
        "import os\n" + WRONG_F + "os._exit(0)",
        "runtime_error",
        "the program ended before the tests finished (exit status 0, no verdict",
    ),
    "SystemExit raised from the candidate": ("def f(x):\n    raise SystemExit(0)", "runtime_error", "SystemExit: 0"),
    "KeyboardInterrupt from the candidate": (
        "def f(x):\n    raise KeyboardInterrupt",
        "runtime_error",
        "KeyboardInterrupt",
    ),
    "excepthook rebinding": ("import sys\nsys.excepthook = lambda *a: None\n" + WRONG_F, "wrong", "AssertionError"),
    "atexit os._exit(0)": (
        "import atexit, os\natexit.register(lambda: os._exit(0))\n" + WRONG_F,
        "wrong",
        "AssertionError",
    ),
    "builtins.exec patched": (
        "import builtins\nbuiltins.exec = lambda *a, **k: None\n" + WRONG_F,
        "wrong",
        "AssertionError",
    ),
    "builtins.AssertionError patched": (
        "import builtins\nbuiltins.AssertionError = KeyError\n" + WRONG_F,
        "wrong",
        "AssertionError",
    ),
    "builtins patched for the tests": (
        "import builtins\nbuiltins.compile = lambda *a, **k: compile('pass', 'x', 'exec')\n" + WRONG_F,
        "wrong",
        "AssertionError",
    ),
    "fake success marker": (
        "import os\nfor fd in range(0, 64):\n    try:\n        os.write(fd, b'PASS all tests passed\\n')\n"
        "    except OSError:\n        pass\n" + WRONG_F,
        "wrong",
        "AssertionError",
    ),
    "stdout closed": ("import os\nos.close(1)\nos.close(2)\n" + WRONG_F, "wrong", "AssertionError"),
    "thread keeps running": (
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\n" + WRONG_F,
        "runtime_error",
        "threads still running after the tests",
    ),
    "signal handler at the end": (
        "import signal\nsignal.signal(signal.SIGALRM, lambda *a: None)\nsignal.setitimer(signal.ITIMER_REAL, 0.01)\n"
        + WRONG_F,
        "wrong",
        "AssertionError",
    ),
    "frame walking": (
        "import sys\nf = sys._getframe()\nwhile f.f_back: f = f.f_back\nf.f_locals['done'][0] = True\n" + WRONG_F,
        "runtime_error",
        "SandboxFrameDenied: sandbox: frame access is not allowed",
    ),
    "gc walking": (
        "import gc\nfor o in gc.get_objects():\n    pass\n" + WRONG_F,
        "runtime_error",
        DENIED + "gc.get_objects is not allowed",
    ),
    "abstract socket forging": (
        "import socket\ns = socket.socket(socket.AF_UNIX)\n" + WRONG_F,
        "runtime_error",
        DENIED + "socket.__new__ is not allowed",
    ),
    "ctypes": ("import ctypes\n" + WRONG_F, "runtime_error", "ImportError: sandbox: import of ctypes is not allowed"),
    "subprocess": (
        "import subprocess\nsubprocess.run(['true'])\n" + WRONG_F,
        "runtime_error",
        "ImportError: sandbox: import of subprocess is not allowed",
    ),
    "fork to survive": (
        "import os\nif os.fork():\n    os._exit(0)\n" + WRONG_F,
        "runtime_error",
        DENIED + "os.fork is not allowed",
    ),
    "kill the parent": (
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + WRONG_F,
        "wrong",
        "AssertionError",
    ),
    # kill(-1) reaches no other process of the namespace (PID 1, the zygote, is immune): ESRCH
    "kill(-1)": ("import os, signal\nos.kill(-1, signal.SIGKILL)\n" + WRONG_F, "runtime_error", "ProcessLookupError"),
    "proc self mem": (
        "open('/proc/self/mem', 'rb')\n" + WRONG_F,
        "runtime_error",
        DENIED + "opening /proc/self/mem is not allowed",
    ),
    "settrace": ("import sys\nsys.settrace(lambda *a: None)\n" + WRONG_F, "runtime_error", DENIED + "sys.settrace"),
    "always-equal object": (
        "class A:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return A()",
        "runtime_error",
        "overrides comparison",
    ),
    "always-equal int subclass": (
        "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\ndef f(x):\n    return I(0)",
        "runtime_error",
        "overrides comparison",
    ),
    "patched library class": (
        "from collections import Counter\nCounter.__eq__ = lambda s, o: True\ndef f(x):\n    return Counter()",
        "runtime_error",
        "overrides comparison",
    ),
    "always-equal posing as builtin": (
        "class A:\n    __module__ = 'builtins'\n    __qualname__ = 'int'\n    __eq__ = lambda s, o: True\ndef f(x):\n    return A()",
        "runtime_error",
        "overrides comparison",
    ),
}


def test_early_exit_and_hacks_get_their_status(pool):
    names = list(HACKS)
    rows = [UNIT, HUMANEVAL] * len(names)
    got = pool.score(rows, [py(HACKS[n][0]) for n in names for _ in (0, 1)])
    for k, name in enumerate(names):
        _, status, detail = HACKS[name]
        for v in got[2 * k : 2 * k + 2]:
            assert (v.reward, v.status) == (0.0, status) and detail in v.detail, (name, v)


def test_always_equal_inside_containers(pool):
    row = {"domain": "code", "test_code": "assert f(2) == [4, (5, {'k': 6})]\n"}
    hack = "class A:\n    __eq__ = lambda s, o: True\n    __hash__ = object.__hash__\nclass L(list):\n    pass\ndef f(x):\n    return L([A(), (5, {'k': A()})])"
    honest = "def f(x):\n    return [x * x, (5, {'k': 6})]"
    got = pool.score([row, row], [py(hack), py(honest)])
    assert [v.status for v in got] == ["runtime_error", "correct"], got
    assert "overrides comparison" in got[0].detail


def test_hacks_do_not_break_honest_programs_in_the_same_batch(pool):
    honest = "def f(x):\n    return x * x"
    rows = [UNIT] * (len(HACKS) + 2)
    responses = [py(honest)] + [py(c) for c, _, _ in HACKS.values()] + [py(honest)]
    got = pool.score(rows, responses)
    assert got[0].status == got[-1].status == "correct"
    assert [v.status for v in got[1:-1]] == [s for _, s, _ in HACKS.values()]


def test_stdio_fake_exit_status_and_fake_output(pool):
    got = pool.score(
        [OK] * 3,
        [
            py("import os\nos._exit(0)"),
            py("import sys\nprint('ko')\nsys.exit(0)"),
            py("import os\nos.close(1)\nprint('ok')"),
        ],
    )
    assert [v.status for v in got] == ["wrong", "wrong", "wrong"], got


# -- resource attacks ---------------------------------------------------------------------------
def test_infinite_loop_times_out(pool):
    v = one(pool, UNIT, "while True:\n    pass")
    assert (v.status, v.reward) == ("timeout", 0.0), v
    assert one(pool, OK, "import time\ntime.sleep(100)").status == "timeout"
    assert_healthy(pool)


def test_memory_bomb():
    # a long wall limit: filling 512 MiB ten MB at a time took over 2 s on a busy 2-core machine
    # (the shared pool's limit), which turned the verdict into a timeout
    with RewardPool(workers=1, code_timeout=30.0) as pool:
        v1 = one(pool, OK, "x = bytearray(8 * 1024 ** 3)\nprint('ok')")
        v2 = one(pool, UNIT, "a = []\nwhile True:\n    a.append(' ' * 10 ** 7)")
        assert v1.status == "memory_limit" and v2.status == "memory_limit", (v1, v2)
        assert_healthy(pool)


def test_memory_bomb_spread_over_processes():
    # each process stays under its address-space limit; together they pass the total (256 MiB
    # here, and a long wall limit, so that a busy machine cannot turn it into a timeout)
    code = (
        "import os, time\nfor _ in range(4):\n    if os.fork() == 0:\n        b = bytearray(120 * 1024 ** 2)\n"
        "        time.sleep(60)\n        os._exit(0)\ntime.sleep(60)\nprint('ok')"
    )
    with RewardPool(workers=1, limits=Limits(timeout=30.0, mem_total_mb=256)) as p:
        v = one(p, OK, code)
        assert v.status == "memory_limit" and "more than 256 MiB together" in v.detail, v
        assert_healthy(p)


def test_endless_output(pool):
    v = one(pool, OK, "while True:\n    print('x' * 4096)")
    assert (v.status, v.reward) == ("output_limit", 0.0), v
    assert one(pool, UNIT, "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)").status == "timeout"
    assert_healthy(pool)


def test_file_size_limit(pool):
    v = one(pool, OK, "open('big', 'wb').write(b'x' * (64 << 20))\nprint('ok')")
    assert v.status == "runtime_error" and "File too large" in v.detail, v  # RLIMIT_FSIZE: EFBIG
    assert_healthy(pool)


def test_kill_process_group_does_not_reach_the_launcher(pool):
    zygotes = [b.sandbox.proc.pid for b in pool._boxes]
    started = pool.stats.sandboxes_started
    for _ in range(3):
        v = one(pool, OK, "import os, signal\nos.killpg(0, signal.SIGKILL)")
        assert v.status == "runtime_error" and "signal 9" in v.detail, v
        v = one(pool, OK, "import os, signal\nos.kill(0, signal.SIGTERM)")
        assert v.status == "runtime_error" and "signal 15" in v.detail, v
    assert [b.sandbox.proc.pid for b in pool._boxes] == zygotes  # the same zygote, never replaced
    assert pool.stats.sandboxes_started == started
    assert_healthy(pool)


def test_background_process_does_not_outlive_its_run(pool):
    one(pool, OK, "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('ok')")
    v = one(
        pool,
        OK,
        "import os\nprint('ok' if sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) == [1, os.getpid()] else 'leftover')",
    )
    assert v.status == "correct", v


def test_signals_to_the_zygote_are_dropped(pool):
    code = "import os, signal\nfor s in (signal.SIGTERM, signal.SIGKILL, signal.SIGSTOP):\n    os.kill(os.getppid(), s)\nprint('ok')"
    assert one(pool, OK, code).status == "correct"  # it survived its own signals to PID 1 and answered
    assert_healthy(pool)


def test_a_host_process_of_the_same_uid_cannot_be_signalled(pool):
    """A host process running as the sandbox uid, outside the sandbox: invisible, unkillable."""
    sleeper = subprocess.Popen(
        ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "sleep", "60"]
    )
    try:
        code = (
            "import os, signal\n"
            f"try:\n    os.kill({sleeper.pid}, signal.SIGKILL)\n    print('killed')\nexcept ProcessLookupError:\n"
            "    print('ok')"
        )
        v = one(pool, OK, code)
        assert v.status == "correct", v
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


# -- failures of the sandbox itself never cost a row its verdict -------------------------------
def test_a_zygote_killed_while_idle_is_replaced_and_the_row_run_again(pool):
    assert_healthy(pool)
    started = pool.stats.sandboxes_started
    for b in pool._boxes:  # killed from outside, as by the OOM killer
        os.killpg(b.sandbox.proc.pid, signal.SIGKILL)
        b.sandbox.proc.wait()
    assert_healthy(pool)  # seen dead before use: replaced, nothing to run again
    assert pool.stats.sandboxes_started == started + 1
    # the race: it dies after the pool checked it (alive() forced True once): the row runs again
    retries = pool.stats.code_retries
    for b in pool._boxes:
        os.killpg(b.sandbox.proc.pid, signal.SIGKILL)
        b.sandbox.proc.wait()
        b.sandbox.alive = lambda: True  # type: ignore[method-assign]
    assert_healthy(pool)
    assert pool.stats.code_retries == retries + 1 and pool.stats.sandboxes_started == started + 2


def test_a_zygote_failure_is_answered_as_internal_then_the_zygote_exits():
    from ringrl.rewards.sandbox import Sandbox

    box = Sandbox()
    try:
        res = box.run({"mode": "unit"}, 30)  # no code: the zygote itself fails, not a program
        assert res["status"] == "error" and res["internal"] is True and "KeyError" in res["detail"], res
        box.proc.wait(timeout=30)
        assert not box.alive()
    finally:
        box.close()


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (host PIDs, from /proc)."""
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        try:
            with open(f"/proc/{q}/task/{q}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def test_a_program_cannot_signal_another_sandbox():
    with RewardPool(workers=2, code_timeout=5.0) as p:
        assert_healthy(p)
        assert_healthy(p)  # both zygotes started
        outer = [b.sandbox.proc.pid for b in p._boxes]
        targets = [q for pid in outer for q in descendants(pid)]  # the launchers and the zygotes, host PIDs
        assert len(targets) >= 4
        code = (
            "import os, signal\nhit = []\n"
            f"for pid in {targets!r}:\n    try:\n        os.kill(pid, signal.SIGKILL)\n        hit.append(pid)\n"
            "    except ProcessLookupError:\n        pass\nprint('ok' if not hit else hit)"
        )
        got = p.score([OK, OK], [py(code), py(code)])
        assert [v.status for v in got] == ["correct", "correct"], got
        assert all(b.sandbox.alive() for b in p._boxes) and [b.sandbox.proc.pid for b in p._boxes] == outer
        assert all(os.path.exists(f"/proc/{q}") for q in targets)
        assert p.stats.sandboxes_started == 2
        assert_healthy(p)
