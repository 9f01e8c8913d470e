"""The in-sandbox harness is a real module: its entry points run here, outside any sandbox,
in a child interpreter (honest or trivially failing programs only)."""

import subprocess
import sys

import pytest

from ringrl.rewards import _harness

RUN_STDIO = "import sys\nfrom ringrl.rewards._harness import stdio_target\nstdio_target(sys.argv[1])"


def stdio(code: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_STDIO, code], input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "code,status,out,err",
    [
        ("print(int(input()) * 2)", 0, "42\n", ""),
        ("import sys\nprint('x')\nsys.exit(0)", 0, "x\n", ""),
        ("import sys\nsys.exit(3)", 1, "", ""),
        ("print(1", 97, "", "compile_error SyntaxError"),
        ("raise ValueError('no')", 1, "", "ValueError: no"),
        ("raise MemoryError", 98, "", "MemoryError"),
    ],
)
def test_stdio_target_exit_statuses(code, status, out, err):
    r = stdio(code, "21\n")
    assert (r.returncode, r.stdout) == (status, out), r
    assert err in r.stderr


def test_rigged_detection_walks_containers_and_spares_library_types():
    from collections import Counter, OrderedDict
    from fractions import Fraction

    class AlwaysEqual:
        def __eq__(self, other):
            return True

        __hash__ = object.__hash__

    class Mine(Counter):
        pass

    assert _harness._rigged(AlwaysEqual())
    assert _harness._rigged([1, (2, {"k": AlwaysEqual()})])
    assert _harness._rigged({AlwaysEqual(): 1})
    assert not _harness._rigged([1, "a", (2.0, {"k": [None]}), Fraction(1, 3), OrderedDict(a=1), Mine("aab")])


def test_the_zygote_runs_this_file():
    from ringrl.rewards import sandbox

    assert sandbox._HARNESS_SRC.resolve() == __import__("pathlib").Path(_harness.__file__).resolve()
    ns: dict = {"__name__": "_ringrl_harness"}
    exec(compile(sandbox._HARNESS_SRC.read_text(), "<harness>", "exec"), ns)  # what the zygote does once
    assert callable(ns["unit_target"]) and callable(ns["stdio_target"])
