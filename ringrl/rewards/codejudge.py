"""Code verifier: from a row and a response to a sandbox job, and from its result to a Verdict.

- The program is the last fenced code block (``python``, ``py``, ``python3`` or no
  language), or a ``cpp``/``c++`` block when ``g++`` is installed (stdin/stdout mode
  only; compiled with ``g++ -O2 -std=c++17`` inside the sandbox). Other languages are
  ``unsupported_language`` (reward 0).
- HumanEval-style rows (``entry_point`` set and the prompt defines that function):
  if the response has no fenced block, the program is ``prompt + response`` (the model
  continued the function body); if the block does not define the entry point, the
  program is ``prompt + block``.
- ``tests`` (or ``test_code``) is either a list of ``{"input", "output"}`` pairs
  (stdin/stdout mode, one execution per case, whitespace-normalised comparison, all
  must match) or a string of assert-style test code (unit mode); with ``entry_point``
  the test code must define ``check(candidate)``, which is called with the function.
- Reward 1 only if every test passes (the paper's sparse reward, no partial credit).
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Mapping
from typing import Any

from ringrl.rewards.extract import extract_code_block
from ringrl.rewards.sandbox import Limits
from ringrl.rewards.types import Verdict

PYTHON_LANGS = ("", "python", "py", "python3", "py3")
CPP_LANGS = ("cpp", "c++", "cc", "cxx")
CPP_COMPILE_S = 30.0  # compile wall limit inside the sandbox (see _zygote.CPP_COMPILE_S)


@functools.lru_cache(maxsize=1)
def cxx_compiler() -> str | None:
    """``g++`` if installed (C++ programs are judged only then)."""
    return shutil.which("g++")


MAX_PROGRAM_CHARS = 256_000


def _prompt(row: Mapping[str, Any]) -> str:
    for k in ("prompt", "problem", "question"):
        v = row.get(k)
        if isinstance(v, str):
            return v
    return ""


def build_job(row: Mapping[str, Any], response: str, limits: Limits) -> dict[str, Any] | Verdict:
    """The zygote job for ``(row, response)``, or a final Verdict (no code, unsupported)."""
    entry = row.get("entry_point") or ""
    prompt = _prompt(row)
    humaneval = bool(entry) and re.search(rf"def\s+{re.escape(entry)}\s*\(", prompt) is not None
    block = extract_code_block(response)
    if block is None:
        if humaneval and response.strip():
            program = prompt + response
        else:
            return Verdict.of("no_answer", "no fenced code block")
    tests = row.get("tests", row.get("test_code"))
    lang = ""
    if block is not None:
        lang, program = block
        if lang in CPP_LANGS:
            if cxx_compiler() is None:
                return Verdict.of("unsupported_language", "C++ needs g++, which is not installed")
            if not isinstance(tests, list):
                return Verdict.of("unsupported_language", "C++ is judged in stdin/stdout mode only")
        elif lang not in PYTHON_LANGS:
            return Verdict.of("unsupported_language", f"language {lang!r} is not supported (Python and C++ only)")
        elif humaneval and re.search(rf"def\s+{re.escape(entry)}\s*\(", program) is None:
            program = prompt + program
    if not program.strip():
        return Verdict.of("no_answer", "empty code block")
    if len(program) > MAX_PROGRAM_CHARS:
        return Verdict.of("compile_error", f"program longer than {MAX_PROGRAM_CHARS} characters")
    job: dict[str, Any] = {
        "code": program,
        "timeout": limits.timeout,
        "cpu_s": int(limits.timeout + 0.999),
        "mem_mb": limits.mem_mb,
        "mem_total_mb": limits.mem_total_mb,
        "nproc": limits.nproc,
        "fsize_mb": limits.fsize_mb,
        "output_cap": limits.output_cap,
    }
    if isinstance(tests, list):
        job.update(mode="stdio", tests=[{"input": str(t["input"]), "output": str(t["output"])} for t in tests])
        if lang in CPP_LANGS:
            job.update(lang="cpp", cxx=cxx_compiler())
    else:
        job.update(mode="unit", test_code=str(tests), entry_point=entry)
    return job


def job_seconds(job: Mapping[str, Any]) -> float:
    """Most wall seconds the zygote may take for ``job`` (compilation included)."""
    runs = len(job["tests"]) if job.get("mode") == "stdio" else 1
    return float(job["timeout"]) * runs + (CPP_COMPILE_S if job.get("lang") == "cpp" else 0.0)


def to_verdict(result: Mapping[str, Any]) -> Verdict:
    status = str(result.get("status", "error"))
    return Verdict.of(status, str(result.get("detail", "")))
