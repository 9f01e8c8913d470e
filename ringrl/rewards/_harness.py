"""The harness that runs untrusted code inside the sandbox: the only code a sandboxed child runs.

Standard library only, and never imported by ringrl itself: the zygote (``_zygote.py``)
receives this file's text from the parent and executes it once, at start-up, in a private
namespace with a copy of the builtins, before any program runs. So every name bound here
(``_exit``, ``_SockT``, ``_compile``, ...) is a reference taken before a program could patch
``builtins``, ``os`` or ``socket``; a program that reached the zygote's module globals would
still not reach these. It is a real module so that it is linted and can be read and tested
like any other (``tests/rewards/test_harness.py`` runs its functions in a child interpreter).

Two entry points, each called in a forked child with its rlimits set:

- :func:`stdio_target`: run the program with stdin/stdout/stderr on fds 0/1/2; exit status
  97 for a syntax error, 98 for ``MemoryError``, 1 for another exception.
- :func:`unit_target`: run the program, then the tests (with pristine builtins), behind an
  audit hook; report ``NONCE PASS`` or ``NONCE FAIL kind detail`` over the abstract unix
  socket ``sockname`` (see docs/rewards.md, "Positive evidence of passing").
"""

import _socket
import _thread
import builtins as _b
import io as _io
import os as _os
import signal as _signal
import sys as _sys

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
_SUSPECT = (
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__bool__",
    "__abs__",
    "__sub__",
    "__rsub__",
    "__float__",
    "__round__",
    "__len__",
)


def _trusted_types():
    """Library classes, each with a snapshot of its comparison methods (a program may patch them)."""
    import collections
    import datetime
    import decimal
    import enum
    import fractions
    import numbers

    found = {}
    # numbers: Fraction's bases (Rational, Real, Complex) define __eq__, __bool__, __abs__, ...
    for mod in (collections, fractions, decimal, datetime, enum, numbers):
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
_BLOCK_EVENTS = frozenset(
    (
        "sys._current_frames",
        "sys.settrace",
        "sys.setprofile",
        "sys.addaudithook",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "os.fork",
        "os.forkpty",
        "subprocess.Popen",
        "pty.spawn",
        "os.startfile",
        "code.__new__",
        "function.__new__",
        "sys.setrecursionlimit_never",
    )
)
_BLOCK_PREFIXES = ("ctypes.", "socket.", "cpython.", "_xxsubinterpreters", "os.symlink", "os.link")
_FRAME_ATTRS = frozenset(("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_locals", "f_globals"))
_BLOCK_MODULES = frozenset(
    (
        "ctypes",
        "_ctypes",
        "_posixsubprocess",
        "subprocess",
        "multiprocessing",
        "_multiprocessing",
        "_xxsubinterpreters",
        "_testcapi",
        "_testinternalcapi",
        "gc_never",
    )
)


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
        if event == "import" and args and _isinstance(args[0], _str) and args[0].partition(".")[0] in _BLOCK_MODULES:
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
            kind = (
                "wrong"
                if _isinstance(e, _AssertionError)
                else ("memory_limit" if _isinstance(e, _MemoryError) else "runtime_error")
            )
            verdict = ("FAIL " + kind + " " + n + ": " + _msg(e)).encode("utf-8", "replace")
    # Finish: no program code may run from here on.
    try:
        if count() != 0:
            verdict = b"FAIL runtime_error threads still running after the tests"
        for s in (0, 1, 2):
            setitimer(s, 0)
        for s in valid:
            try:  # noqa: SIM105  (no contextlib here: a program may have patched it)
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
    _sys.stdin = _io.TextIOWrapper(
        _io.BufferedReader(_io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="replace"
    )
    _sys.stdout = _io.TextIOWrapper(
        _io.BufferedWriter(_io.FileIO(1, "w", closefd=False)), encoding="utf-8", errors="replace"
    )
    _sys.stderr = _io.TextIOWrapper(
        _io.BufferedWriter(_io.FileIO(2, "w", closefd=False)), encoding="utf-8", errors="replace"
    )
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
        try:  # noqa: SIM105  (no contextlib here: a program may have patched it)
            _sys.stderr.write(_name(e) + ": " + _msg(e) + "\n")
        except _BaseException:
            pass
    for f in (_sys.stdout, _sys.stderr):
        try:  # noqa: SIM105  (no contextlib here: a program may have patched it)
            f.flush()
        except _BaseException:
            pass
    _exit(status)
