import json
import os
import shutil
import subprocess
import sys

import pytest

from ringrl.cli import main

from .nsprobe import namespaces_unsupported

ROWS = [
    {"id": "a", "domain": "math", "answer": "1/2", "response": "\\boxed{0.5}", "extra": [1, 2]},
    {"id": "b", "domain": "astrology", "response": "x"},
    {
        "id": "c",
        "domain": "code",
        "tests": [{"input": "1", "output": "2"}],
        "response": "```python\nprint(int(input())+1)\n```",
    },
    {"id": "d", "domain": "math", "response": "\\boxed{3}"},
    {"id": "e", "domain": "logic", "answer": "Yes", "response": "\\boxed{ yes }"},
    {"id": "f", "domain": "science", "answer": "A", "response": "no box"},
]


def write(tmp_path, rows):
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_verify_writes_rows_in_order_and_reports_bad_rows(tmp_path, capsys):
    inp, out = write(tmp_path, ROWS), tmp_path / "out.jsonl"
    # an honest program only: where namespaces are unsupported it may run with rlimits only
    unsafe = ["--unsafe-no-sandbox"] if namespaces_unsupported() is not None else []
    assert main(["verify", str(inp), "--output", str(out), "--workers", "2", "--no-progress", *unsafe]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == list("abcdef")
    assert [g["status"] for g in got] == ["correct", "error", "correct", "error", "correct", "no_answer"]
    assert [g["reward"] for g in got] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert set(got[0]) == {"id", "reward", "status", "detail"}
    err = capsys.readouterr().err
    assert f"{inp}:2: field 'domain'" in err and f"{inp}:4: field 'answer'" in err
    assert "Traceback" not in err
    assert "rows/s" in err and "correct" in err  # the summary table


def test_verify_strict_stops_with_one_line(tmp_path):
    inp, out = write(tmp_path, ROWS), tmp_path / "out.jsonl"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ringrl.cli import main; sys.exit(main(sys.argv[1:]))",
            "verify",
            str(inp),
            "-o",
            str(out),
            "--strict",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"ringrl verify: error: {inp}:2: field 'domain' unknown domain 'astrology' (one of code, logic, math, science)"
    ]
    assert not out.exists()


def test_verify_bad_json_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "domain": "math", "answer": "1", "response": "x"}\n{not json\n')
    assert main(["verify", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert main(["verify", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "not found" in err and "Traceback" not in err


def one_line_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ringrl verify: error: "), err
    return err[0]


def test_verify_timeout_must_be_a_positive_finite_number(tmp_path, capsys):
    inp, out = write(tmp_path, ROWS[:1]), tmp_path / "out.jsonl"
    for bad in ("nan", "-1", "0", "inf"):
        line = one_line_exit_2(["verify", str(inp), "-o", str(out), "--timeout", bad], capsys)
        assert "--timeout must be a positive number of seconds" in line
    assert not out.exists()


def test_verify_non_utf8_input_names_file_and_line(tmp_path, capsys):
    inp = tmp_path / "latin1.jsonl"
    inp.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + '{"id": "caf\xe9"}\n'.encode("latin-1"))
    line = one_line_exit_2(["verify", str(inp), "-o", str(tmp_path / "out.jsonl")], capsys)
    assert f"{inp}:2:" in line and "not UTF-8" in line


def test_verify_unwritable_outputs_are_one_line_before_grading(tmp_path, capsys):
    inp = write(tmp_path, ROWS[:1])
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = {
        str(tmp_path): "is a directory",
        str(a_file / "out.jsonl"): "is a file, not a directory",
        str(a_file / "deeper" / "out.jsonl"): "is a file, not a directory",
    }
    for out, text in cases.items():
        line = one_line_exit_2(["verify", str(inp), "-o", out, "--no-progress"], capsys)
        assert f"--output {out}" in line and text in line, line


def test_verify_output_on_a_read_only_mount(tmp_path):
    """A read-only mount (root ignores file modes, so a chmod would not do): one line, exit 2."""
    ro = tmp_path / "ro"
    ro.mkdir()
    inp = write(tmp_path, ROWS[:1])
    verify = f"{sys.executable} -m ringrl verify {inp} -o {ro}/out.jsonl --no-progress"
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("unshare not installed: cannot make a read-only mount as root")
        cmd = ["unshare", "--mount", "sh", "-c", f"mount --bind -o ro {ro} {ro} && exec {verify}"]
    else:
        ro.chmod(0o555)
        cmd = ["sh", "-c", verify]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--output {ro}/out.jsonl" in lines[0] and "read-only" in lines[0], lines
