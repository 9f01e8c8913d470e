"""Sandbox attacks and reward hacks: each must get reward 0 and leave the verifier and host healthy.

Run only once the namespace protections work (DESIGN.md, "Sandbox safety"): every test
here is skipped when :func:`namespaces_available` is False. The fork bomb is last.
"""

import os
import secrets
import shutil
import subprocess
import time

import pytest

from ringrl.rewards import RewardPool
from ringrl.rewards.sandbox import SANDBOX_UID, namespaces_available

pytestmark = pytest.mark.skipif(not namespaces_available(), reason="Linux namespaces unavailable here")

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
    with RewardPool(workers=1, code_timeout=2.0) as p:
        yield p


def assert_healthy(pool):
    """The verifier still grades a correct program correctly (same or replaced zygote)."""
    v = pool.score([OK, UNIT], [py("print('ok')"), py("def f(x):\n    return x * x")])
    assert [x.status for x in v] == ["correct", "correct"], v


def one(pool, row, code):
    return pool.score([row], [py(code)])[0]


# -- isolation facts, proved by a program that can only pass if the fact holds ----------------
def test_runs_as_unprivileged_uid_in_own_pid_namespace(pool):
    v = one(pool, OK, f"import os\nprint('ok' if os.getuid() == {SANDBOX_UID} and os.getppid() == 1 else os.getuid())")
    assert v.status == "correct", v


def test_no_network(pool):
    code = (
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n    print('net')\n"
        "except OSError:\n    print('ok')"
    )
    assert one(pool, OK, code).status == "correct"


def test_host_tmp_is_private_and_host_dirs_not_writable(pool, tmp_path):
    name = f"ringrl-escape-{secrets.token_hex(6)}"
    markers = [f"{d}/{name}" for d in ("/tmp", "/var/tmp", "/dev/shm")]
    probe = tmp_path / "probe.txt"  # a host dir owned by root
    code = (
        f"import os\nfor m in {markers!r}:\n    open(m, 'w').write('x')\nhost = os.listdir('/tmp')\n"
        f"try:\n    open({str(probe)!r}, 'w').write('x')\n    print('wrote host')\nexcept OSError:\n"
        f"    print('ok' if len(host) <= 2 else host)"
    )
    v = one(pool, OK, code)
    assert v.status == "correct", v
    assert not any(os.path.exists(m) for m in markers) and not probe.exists()


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


# -- early exits and reward hacks in unit-test mode -------------------------------------------
HACKS = {
    "sys.exit(0) before tests": "import sys\n" + WRONG_F + "sys.exit(0)",
    "os._exit(0) before tests": "import os\n" + WRONG_F + "os._exit(0)",
    "SystemExit raised from the candidate": "def f(x):\n    raise SystemExit(0)",
    "KeyboardInterrupt from the candidate": "def f(x):\n    raise KeyboardInterrupt",
    "excepthook rebinding": "import sys\nsys.excepthook = lambda *a: None\n" + WRONG_F,
    "atexit os._exit(0)": "import atexit, os\natexit.register(lambda: os._exit(0))\n" + WRONG_F,
    "builtins.exec patched": "import builtins\nbuiltins.exec = lambda *a, **k: None\n" + WRONG_F,
    "builtins.AssertionError patched": "import builtins\nbuiltins.AssertionError = KeyError\n" + WRONG_F,
    "builtins patched for the tests": "import builtins\nbuiltins.compile = lambda *a, **k: compile('pass', 'x', 'exec')\n"
    + WRONG_F,
    "fake success marker": "import os\nfor fd in range(0, 64):\n    try:\n        os.write(fd, b'PASS all tests passed\\n')\n    except OSError:\n        pass\n"
    + WRONG_F,
    "stdout closed": "import os\nos.close(1)\nos.close(2)\n" + WRONG_F,
    "thread keeps running": "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\n"
    + WRONG_F,
    "signal handler at the end": "import signal\nsignal.signal(signal.SIGALRM, lambda *a: None)\nsignal.setitimer(signal.ITIMER_REAL, 0.01)\n"
    + WRONG_F,
    "frame walking": "import sys\nf = sys._getframe()\nwhile f.f_back: f = f.f_back\nf.f_locals['done'][0] = True\n"
    + WRONG_F,
    "gc walking": "import gc\nfor o in gc.get_objects():\n    pass\n" + WRONG_F,
    "abstract socket forging": "import socket\ns = socket.socket(socket.AF_UNIX)\n" + WRONG_F,
    "ctypes": "import ctypes\n" + WRONG_F,
    "subprocess": "import subprocess\nsubprocess.run(['true'])\n" + WRONG_F,
    "fork to survive": "import os\nif os.fork():\n    os._exit(0)\n" + WRONG_F,
    "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + WRONG_F,
    "kill(-1)": "import os, signal\nos.kill(-1, signal.SIGKILL)\n" + WRONG_F,
    "proc self mem": "open('/proc/self/mem', 'rb')\n" + WRONG_F,
    "settrace": "import sys\nsys.settrace(lambda *a: None)\n" + WRONG_F,
    "always-equal object": "class A:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return A()",
    "always-equal int subclass": "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\ndef f(x):\n    return I(0)",
    "patched library class": "from collections import Counter\nCounter.__eq__ = lambda s, o: True\ndef f(x):\n    return Counter()",
    "always-equal posing as builtin": "class A:\n    __module__ = 'builtins'\n    __qualname__ = 'int'\n    __eq__ = lambda s, o: True\ndef f(x):\n    return A()",
}


@pytest.mark.parametrize("name", list(HACKS))
def test_early_exit_and_hacks_get_zero(pool, name):
    code = HACKS[name]
    v_unit, v_he = pool.score([UNIT, HUMANEVAL], [py(code), py(code)])
    assert (v_unit.reward, v_he.reward) == (0.0, 0.0), (name, v_unit, v_he)
    assert v_unit.status != "correct" and v_he.status != "correct"


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
    responses = [py(honest)] + [py(c) for c in HACKS.values()] + [py(honest)]
    got = pool.score(rows, responses)
    assert got[0].status == got[-1].status == "correct"
    assert all(v.reward == 0.0 for v in got[1:-1])


def test_stdio_fake_exit_status_and_fake_output(pool):
    got = pool.score(
        [OK] * 3,
        [
            py("import os\nos._exit(0)"),
            py("import sys\nprint('ko')\nsys.exit(0)"),
            py("import os\nos.close(1)\nprint('ok')"),
        ],
    )
    assert all(v.reward == 0.0 for v in got), got


# -- resource attacks ---------------------------------------------------------------------------
def test_infinite_loop_times_out(pool):
    t = time.perf_counter()
    v = one(pool, UNIT, "while True:\n    pass")
    assert v.status == "timeout" and v.reward == 0.0
    assert time.perf_counter() - t < 8
    assert one(pool, OK, "import time\ntime.sleep(100)").status == "timeout"
    assert_healthy(pool)


def test_memory_bomb(pool):
    v1 = one(pool, OK, "x = bytearray(8 * 1024 ** 3)\nprint('ok')")
    v2 = one(pool, UNIT, "a = []\nwhile True:\n    a.append(' ' * 10 ** 7)")
    assert v1.status == "memory_limit" and v2.status == "memory_limit", (v1, v2)
    assert_healthy(pool)


def test_memory_bomb_spread_over_processes(pool):
    # each process stays under its 512 MiB address-space limit; together they pass the 1 GiB total
    code = (
        "import os, time\nfor _ in range(6):\n    if os.fork() == 0:\n        b = bytearray(300 * 1024 ** 2)\n"
        "        time.sleep(30)\n        os._exit(0)\ntime.sleep(30)\nprint('ok')"
    )
    t = time.perf_counter()
    v = one(pool, OK, code)
    assert v.status == "memory_limit", v
    assert time.perf_counter() - t < 5
    assert_healthy(pool)


def test_endless_output(pool):
    t = time.perf_counter()
    v = one(pool, OK, "while True:\n    print('x' * 4096)")
    assert v.status == "output_limit" and v.reward == 0.0
    assert time.perf_counter() - t < 8
    assert one(pool, UNIT, "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)").status == "timeout"
    assert_healthy(pool)


def test_file_size_limit(pool):
    v = one(pool, OK, "open('big', 'wb').write(b'x' * (64 << 20))\nprint('ok')")
    assert v.reward == 0.0
    assert_healthy(pool)


def test_signals_to_parent_and_kill_all_leave_host_alive(pool):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        got = pool.score(
            [OK] * 3,
            [
                py(
                    "import os, signal\nfor s in (signal.SIGTERM, signal.SIGKILL, signal.SIGSTOP):\n    os.kill(os.getppid(), s)\nprint('ok')"
                ),
                py("import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('ok')"),
                py("import os, signal\nos.killpg(0, signal.SIGKILL)\nprint('ok')"),
            ],
        )
        # the program in the first row survived its own signals to PID 1 and answered
        assert got[0].status == "correct" and got[1].reward == 0.0 and got[2].reward == 0.0, got
        assert sleeper.poll() is None  # a host process of ours is untouched
        assert_healthy(pool)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_kill_process_group_does_not_reach_the_launcher(pool):
    zygotes = [b.sandbox.proc.pid for b in pool._boxes]
    for _ in range(3):
        assert one(pool, OK, "import os, signal\nos.killpg(0, signal.SIGKILL)").reward == 0.0
        assert one(pool, OK, "import os, signal\nos.kill(0, signal.SIGTERM)").reward == 0.0
    assert [b.sandbox.proc.pid for b in pool._boxes] == zygotes  # the same zygote, never replaced
    assert_healthy(pool)


def test_background_process_does_not_outlive_its_run(pool):
    one(pool, OK, "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('ok')")
    v = one(
        pool,
        OK,
        "import os\nprint('ok' if sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) == [1, os.getpid()] else 'leftover')",
    )
    assert v.status == "correct", v


def test_zz_fork_bomb_last(pool):
    t = time.perf_counter()
    rows = [OK, UNIT, OK]
    responses = [
        py("import os\nwhile True:\n    os.fork()"),
        py("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
        py("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
    ]
    if shutil.which("g++"):
        rows.append(OK)
        responses.append("```cpp\n#include <unistd.h>\nint main() { while (true) fork(); }\n```")
    got = pool.score(rows, responses)
    assert all(v.reward == 0.0 for v in got), got
    assert time.perf_counter() - t < 20
    assert_healthy(pool)
    assert os.getpid() > 0 and os.path.isdir("/tmp")
